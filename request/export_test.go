package request

// SetTestHookBeforeCreate makes f run between a new request's read of its
// state and the commit that creates it, until the returned func restores
// the default.
func SetTestHookBeforeCreate(f func(ID)) (restore func()) {
	old := testHookBeforeCreate
	testHookBeforeCreate = f
	return func() { testHookBeforeCreate = old }
}
