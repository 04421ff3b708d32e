package users

import (
	"context"

	"github.com/usersvc/usersvc/internal/sqlcgen"
)

// SetWalkWithin sets walkWithin (see listFromDay) and returns how to restore it.
func SetWalkWithin(n int64) (restore func()) {
	old := walkWithin
	walkWithin = n
	return func() { walkWithin = old }
}

// UsersInOrder is usersInOrder, for tests.
func (s *Service) UsersInOrder(ctx context.Context, ids []string) ([]User, error) {
	return usersInOrder(ctx, sqlcgen.New(s.db), ids)
}
