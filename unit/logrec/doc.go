// Package logrec encodes and decodes the bytes a recovery unit (package
// unit, docs/design/recovery-units.md sections 3.3-3.5) keeps in queues
// of the CF: the log messages the primary puts on SYSTEM.UNIT.<n>.LOG and
// their records (inputs, input references, choices, state-hash checks),
// the OUT record that marks what the sender has committed, the MsgID of
// every output, the CorrelID and chunks of a snapshot in transfer, and
// the framework state at the head of every snapshot.
//
// Every layout is a table beside its named offset constants in layout.go
// (checked by TestLayoutTables with internal/layouttable). Fixed fields
// are little-endian; identities that the queues index or that sort (the
// log's CorrelID, the output MsgID, the snapshot CorrelID) are
// big-endian.
//
// These bytes come from shared memory written by other processes, which
// may be of another version, damaged, or SIGKILLed half way. Every
// decoder checks each length against what remains before it slices or
// allocates, checks that reserved bytes are zero and strings canonical,
// and returns an error wrapping one of the package's sentinels, never
// panics (every decoder is a fuzz target). A decoder accepts exactly the
// bytes its encoder produces: what decodes re-encodes to the same bytes.
//
// The package is pure: no I/O, no shared state, safe for concurrent use.
package logrec
