package qsg

// SetConsumerFinishing sets the hook a consumer's finish runs between
// leaving its channel's table and giving back its group connection, and
// returns what puts the previous one back.
func SetConsumerFinishing(f func()) (restore func()) {
	old := consumerFinishing
	consumerFinishing = f
	return func() { consumerFinishing = old }
}
