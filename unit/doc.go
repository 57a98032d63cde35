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
// What is built (build steps 1-5 of the design's section 13): the
// records (packages unit/logrec and unit/role), and RunWith, a replica
// that registers in its position, runs as primary with LOGGING(LATE)
// (inputs got, processed, logged and, while it is the sender, their
// outputs put, in one unit of work per batch) or as a secondary that
// browses the log (stopping at uncommitted messages), replays it with the
// logged choices, takes the sender role by hand-over once it is caught up
// and puts the outputs exactly once: every output's MsgID carries the
// unit's source id, generation and a per-destination sequence number, and
// the OUT record, replaced under syncpoint with the outputs, says up to
// which LSN they are committed. A joiner replays the log from LSN 1 when
// the log still holds it (no snapshot transfer yet). Not yet built:
// supervision by members, promotion after a death, snapshot transfer,
// EARLY and INDEPENDENT logging, CHAIN gating, flow control, divergence
// checks (see the design's build order).
package unit
