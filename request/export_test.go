package request

// SetTestHookBeforeCreate makes f run between a new request's read of its
// state and the commit that creates it, until the returned func restores
// the default.
func SetTestHookBeforeCreate(f func(ID)) (restore func()) {
	old := testHookBeforeCreate
	testHookBeforeCreate = f
	return func() { testHookBeforeCreate = old }
}

// SetTestHookBeforeFinishCommit makes f run before the commit of the unit
// of work that removes an ended request, until restore.
func SetTestHookBeforeFinishCommit(f func(ID)) (restore func()) {
	old := testHookBeforeFinishCommit
	testHookBeforeFinishCommit = f
	return func() { testHookBeforeFinishCommit = old }
}
