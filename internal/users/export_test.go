package users

// SetWalkWithin sets walkWithin (see listFromDay) and returns how to restore it.
func SetWalkWithin(n int64) (restore func()) {
	old := walkWithin
	walkWithin = n
	return func() { walkWithin = old }
}
