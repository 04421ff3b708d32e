package users

import (
	"context"

	"github.com/usersvc/usersvc/internal/livecounts"
	"github.com/usersvc/usersvc/internal/sqlcgen"
)

// SetWalkWithin sets livecounts.WalkWithin and returns how to restore it.
func SetWalkWithin(n int64) (restore func()) {
	old := livecounts.WalkWithin
	livecounts.WalkWithin = n
	return func() { livecounts.WalkWithin = old }
}

// UsersInOrder is usersInOrder, for tests.
func (s *Service) UsersInOrder(ctx context.Context, ids []string) ([]User, error) {
	return usersInOrder(ctx, sqlcgen.New(s.db), ids)
}
