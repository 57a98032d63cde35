// Package unit runs recovery units (issue 16, seed 003,
// docs/design/recovery-units.md): a stateful, message-driven service run
// as replica processes of one program, a primary that takes the input and
// secondaries that replay the primary's inputs and non-deterministic
// choices from a log in the CF, one of them (the sender) putting the
// unit's output, so that a replica can die without losing state or
// output.
//
// The application supplies a Handler: Handle must be deterministic given
// its input and what its Ctx returns (the time, random numbers, any other
// choice through Ctx.Choose, each logged by the primary and replayed to
// the secondaries), and sends its outputs through Ctx.Send, never by
// putting them itself. Snapshot and Restore move its whole state.
//
// What is built (the design's section 14 says step by step): the records
// (packages unit/logrec and unit/role), and RunWith, a replica that
// registers in its position, runs as primary with LOGGING(LATE) (inputs
// got, processed, logged and, while it is the sender, their outputs put,
// in one unit of work per batch) or as a secondary that browses the log,
// replays it with the logged choices, takes the sender role by hand-over
// and puts the outputs exactly once: every output's MsgID carries the
// unit's source id, generation and a per-destination sequence number, and
// the OUT record, replaced under syncpoint with the outputs, says up to
// which output they are committed. A promoted secondary applies the rest
// of the log before it takes input; a joiner replays the log from LSN 1
// or receives a snapshot from a donor. Flow control: the primary takes no
// input while a replica or the sender's LSN_out is RESENDQ inputs behind
// it, or its resend queue holds RESENDMB MiB. A full destination is
// retried with backoff; an output refused for good goes to the queue
// manager's DEADQ behind a dead-letter header. An input the handler fails
// on goes to the input queue's BOQNAME (else the DEADQ), decided by the
// primary and logged, the same on every replica. Divergence (a handler
// that is not deterministic) is checked (diverge.go): every log message
// carries the primary's output hash, every CHKINT inputs a CHECK record
// its state hash, and a secondary whose own differ, or whose handler asks
// for other choices, sets the diverged flag in its progress record, logs
// unit_diverged and fails stop; its member replaces it, and the third
// divergence within ten minutes marks the unit DIVERGED (no secondary
// started until STOP and START SERVICE). An input from another unit (its
// MsgID that unit's output identity) reaches Handle once and in its
// source's sequence, with Input.Source set: the primary keeps a source
// table, per source unit and generation the next sequence number
// expected (framework state, in every snapshot), drops a duplicate
// unlogged, moves an early input to the unit's EARLY queue and takes it
// back when its turn comes (source.go). With three or four replicas,
// TOPOLOGY(FANOUT) lets every secondary read the log as it comes and a
// dead primary is replaced by the most advanced secondary;
// TOPOLOGY(CHAIN) gates each secondary at its predecessor's applied LSN
// (chain.go), so the chain's last, the sender, is never ahead of any
// other, and a dead primary is replaced by the chain's first. STOP
// SERVICE leaves a resting snapshot that START SERVICE restores; when
// every replica dies the next generation starts empty. With
// LOGGING(EARLY) (early.go) the primary logs each batch's inputs in the
// unit of work that gets them and processes them after its commit,
// logging their choices with its next batch (or alone when no input
// comes); a secondary applies an input once a log message's
// completed-through LSN covers it, with its logged choices, and a
// promoted primary makes and logs the choices its predecessor had not
// logged. LOGGING(INDEPENDENT) (independent.go) is EARLY with the inputs
// left on the input queue: the primary takes each as a view outside
// syncpoint and logs a reference to it (MsgID, length, a hash of its
// headers and body); a secondary reads it in place (a browse that
// includes held messages);
// the trim adopts the views into the unit of work that removes their log
// messages, so an input leaves its queue only once every replica has
// applied it; a promoted primary takes again, as views, the inputs the
// log names.
package unit
