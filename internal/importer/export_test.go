package importer

import "github.com/usersvc/usersvc/internal/users"

// SetAfterCheck sets the hook between a chunk's check and its insert, until restore.
func SetAfterCheck(f func(users.NewUser)) (restore func()) {
	afterCheck = f
	return func() { afterCheck = nil }
}
