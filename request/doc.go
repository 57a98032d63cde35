// Package request runs request managers on the group (seed 004, issue 17):
// a request manager takes a request, calls subordinate servers (requests
// with a reply-to queue and a correlation id, and their replies), keeps
// the request's progress and sends its replies; how a failure costs is a
// per-request choice, its recovery mode.
//
//	m, err := request.Start(request.Config{Connect: opts, Input: "TRAVEL.IN", Program: book})
//	func book(ctx *request.Ctx, req *request.Request) error {
//		f, err := ctx.Call("FLIGHT", req.Body, request.CallOptions{})
//		...
//		return ctx.FinalReply(confirmation)
//	}
//	request.Serve(ctx, conn, "FLIGHT", func(call *mq.Message) ([]byte, error) { ... }) // a subordinate server
//
// # Modes
//
// A request's mode is in its request header (Format FormatRequest,
// RequestHeader; the table above rhSize), else the manager's
// Config.DefaultMode.
//
//   - Non-recoverable (ModeNonRecoverable): on any failure (its manager or
//     member dies, its program fails) the request is purged: no reply, no
//     recovery. Its late replies go to the Unexpected Message Queue saying
//     PURGED. Confirmed exchanges are refused (ErrNotConfirmable).
//   - Restartable (ModeRestartable): after a failure the program runs
//     again from the top, attempt after attempt; when attempt
//     Config.MaxAttempts (X) fails, the request ends with a final reply
//     (FormatRetried) saying it was retried X times and will not be
//     retried. Once its final reply is committed, a failure restarts from
//     that point: the journal up to the final reply is replayed (nothing
//     before it is done again), the rest runs again. A cancelled request
//     sends "request purged" (FormatPurged), commits and ends. No
//     confirmed exchanges.
//   - Request-level recoverable (ModeRecoverable): every call is a
//     confirmed exchange: {the call put, the record saying it was sent}
//     commit together, then {the reply got, the record saying it came}.
//     The state, the messages sent and the replies consumed commit
//     together, so a failure resumes the request at its last commit: a
//     recorded call is never sent again (its reply is taken when it
//     comes), with Serve a subordinate performs each call once, and one
//     final reply goes out, sent in the unit of work that records it. Its
//     messages are persistent (they survive the loss of a structure).
//     It is resumed Config.MaxResumes times at most (default 10): the
//     take after that ends it with a final reply (FormatRetried) saying
//     "request resumed N times and will not be resumed again", or without
//     one if it sent its final reply already, so that a request that
//     kills its process (or its manager's member) every time is not
//     resumed for ever.
//
// A request of the other modes writes its state, calls and replies with
// its request message's persistence: a persistent request that comes back
// after the loss of its structure finds its state and recovers as its
// mode says (purged; restarted, from its final reply if it sent it),
// instead of running again from the top as if it were new.
//
// The seed's text stops after its third mode. No other mode is added: a
// "checkpoint after each exchange" mode is what the recoverable mode
// already does (each exchange commits), and compensation of completed
// calls needs an undo that only the application knows (a program can
// call its servers' cancel operations itself, from what Load gives back).
//
// # How a request runs
//
// The lock of a request is its request message: a worker gets it under
// syncpoint on one connection (L) and holds it, uncommitted, for the
// whole run; each step commits on a sibling connection (W). If the
// manager's process or its member dies, the group backs L out: the request
// is back on the input queue, its backout count raised, and any manager of
// any member takes it and decides from its state record, as its mode says
// (a manager whose member died connects again through another member).
// That is why the input queue must have no backout threshold (Start
// refuses one, and one on the state, reply and cancel queues, whose
// messages are taken again after a backout too). It also bounds a request's run: a unit of work open longer
// than the member's --uow-max-age (default 10 minutes) is backed out and
// its connection broken, which to the request is a failure.
//
// Such a failure breaks L alone: the worker goes on with W until its next
// step while another run takes the request over. So every step's unit of
// work checks that the record it replaces is the one its run last read or
// committed (byte for byte), and a run that finds another one gets
// ErrTakenOver: its step is backed out and it writes nothing more. Every
// taker changes the record before anything else (attempts, or status),
// so the run that lost its lock is fenced from the taker's first commit.
// The commit that creates the state has no fence of its own: nothing of a
// run goes out before its first step, and a run whose lock was lost
// before its create committed finds, at that step, its record beside
// another run's that is further on, and is fenced
// (TestCreateAfterTheLockWasLost).
// (The lead's design let only the lock holder write, which a lock lost
// behind the holder's back does not ensure: two runs both sent final
// replies.)
//
// The state of a request lives on the group-wide state queue
// (DefaultStateQueue), and its tombstone on the tombstone queue
// (DefaultTombstoneQueue): three kinds of message whose CorrelID is the
// request's key and a tag (the table above ciSize):
//
//   - its state record (FormatState; the table above srSize): mode,
//     status, attempts, the next call's number, the pending calls, the
//     current step, and the journal. Only the lock holder replaces it, by
//     getting it by CorrelID and putting the new one in the step's unit of
//     work. A request taken back with no record never started (the record
//     is created before the program runs); one whose record says ended
//     (the manager died between its last two commits) is only removed.
//   - its live marker (FormatLive), put with the first record and removed
//     with the request: the record is invisible while it is replaced, and
//     the sweeper must not take a request in flight for one that ended.
//     (The lead's design had the record alone; this closes that window.)
//   - its tombstone (FormatTombstone, expiring after Config.TombstoneTTL),
//     left only by a request that ended with replies possibly still to
//     come (purged, cancelled, restarted, or with a call timed out without
//     being withdrawn), so that the sweeper can say which request and why.
//     A request that ended cleanly leaves nothing behind. A tombstone is
//     advisory, so it has a queue, and a MAXDEPTH, of its own: a storm of
//     failing requests (at 170 a second, 10 minutes of tombstones are
//     100,000) fills the tombstone queue, never the state queue, whose
//     records every request needs to run and end (on one queue, every
//     request looped, its state put failing: TestTombstoneStorm). A request
//     whose tombstone cannot be put (its queue is full) ends without it,
//     and the manager logs it: the sweeper then moves its late replies
//     saying UNKNOWN_REQUEST. Start refuses to start without the tombstone
//     queue (a deployment of an earlier version), naming the MQSC that
//     defines it; tombstones an earlier version left on the state queue
//     are still read until they expire.
//
// A request's id is its request message's MsgID, so it must be unique:
// put each request with a zero MsgID (mq generates one) and never put the
// same mq.Message twice (Put leaves the generated MsgID in it). A second
// message with the id of a request in flight is not a second lock on its
// state: the record keeps the token of the message that holds the request
// (Record.Lock, mq.Message.Token: the same when that message comes back
// after a failure, another for any other message), and a manager that
// takes a message whose token is not its (most advanced) record's moves
// it to the Unexpected Message Queue (ReasonDuplicate) and the request
// runs once. Two taken at the same moment may both create the state: each
// looks for the other's live marker after its create commits
// (Ctx.claim), and one that finds it withdraws its state and is taken
// again (then it finds the other's, or, both having given way, none). A
// manager that died between its create and its claim leaves both states:
// the first step of the run that goes on removes the other's record and
// its marker with it. A take decides only once it sees a record of every
// live marker (below): one held by a dead step is the record of one of
// the two messages, and deciding without it would move that message aside
// as the duplicate of the other, and the other once the record is back,
// the request lost (TestDuplicateWhileTheRecordIsHeld). A record of
// version 1 keeps no lock: the request message that resumes it writes its
// own, and its live marker (lock zero) stands for whichever record.
// What the manager cannot tell is a second message taken after the
// request ended, its state gone: that one runs again, as a new request
// (TestDuplicateRequestID).
//
// A member recovers a dead manager's connections one by one, so the one
// that held the request can be backed out before the one whose step was
// committing is carried out. A taker that sees a live marker of the
// request but not its record (no record with the marker's Record.Lock)
// backs the request out and takes it again later (the record is held by
// that step; it never starts a second run): its worker
// waits Config.ReconnectWait, then twice as long at each such take of the
// request, at most Config.MaxBackoff, or less if the record is back
// before, and logs each take, at Warn once it has lasted longer than
// Config.StateWaitWarn, with how long and how many takes. One that sees
// neither creates the state;
// if the dead manager's step was the commit that created it, carried out
// later, the request has two records and markers for a while: a taker
// resumes from the most advanced record (more attempts, else further in
// its status, else a longer journal, else more calls sent, else updated
// later: the managers' clocks only break a tie), a step replaces the one
// its run read and removes the other (unless the other is further on:
// then its own run is fenced, its lock lost while another run created the
// state and went on), and the end removes every record and marker
// (TestTakeoverWhileTheCreateIsInFlight, TestResumeFromTheMostAdvancedRecord).
//
// A request ends in two units of work: W marks the record ended (with the
// manager's final reply, if any, and its tombstone, if it leaves one),
// then L removes the request message, the record, the marker and any
// cancel together. The tombstone is there before the record and marker
// go: a sweep while L's unit of work runs (they are got, so invisible)
// still finds how the request ended (TestLateReplyWhileTheRequestIsRemoved).
//
// A manager's session (its connections through one member) ends when one
// of them breaks, or when a worker cannot open or take from the input
// queue, or a connection is refused; the manager connects again, through
// any member. After a session that lasted less than Config.MaxBackoff it
// waits first: Config.ReconnectWait, twice as long after each further
// such session, at most MaxBackoff. It logs each end at Warn with the
// error and its reason code (every connection slot of the group taken is
// MQRC 2025), so a session that ends at once every time does not spin.
//
// # Replay
//
// A program must be deterministic given its request and what its Ctx
// returns, like a workflow: resuming runs it again from the top, and the
// Ctx replays the journal (recorded calls return their recorded reply or
// timeout, recorded replies are not sent again, saved values come back)
// until it runs out, then goes live. A program that does something else
// than its journal at some point gets ErrNondeterministic: another kind of
// step, a call to another queue, or a call or reply with other bytes than
// the ones it sent the first time (the journal keeps their hash,
// Entry.Hash): a reply that depends on the time, on chance or on
// Ctx.Attempt (higher in a resumed request) must come from a value saved
// before (Save, Load). One that returns before the end
// of its journal fails with it. A recoverable
// request keeps its whole journal; a restartable one keeps it only up to
// its final reply (its restart point); a non-recoverable one none. So
// Save commits at once for a recoverable request and lives in memory for
// the others. Intermediate replies (Reply) are not sent again on replay,
// but a restartable request restarted from the top sends them again.
//
// The journal lives in the state record, one message: a recoverable
// request's record holds every reply it took and every value it saved, so
// it is bounded by the state queue's MAXMSGL. A step whose record would
// be bigger is backed out and fails with ErrStateTooBig, as does every
// later step of the run, and the request fails as its mode says (a
// recoverable one ends with a FormatFailed reply): taking it again would
// only replay it to the same step. Keep big payloads out of the journal
// (save a reference, not the bytes). A record marked ended keeps no
// values (no replay needs them), so neither does a tombstone.
//
// A program that returns an error: a non-recoverable request is purged, a
// restartable one restarts (or gets its FormatRetried reply), a
// recoverable one ends with a FormatFailed final reply unless it sent its
// final reply already (running it again would replay the same error). A
// panic is such an error.
//
// # Calls, timeouts, cancels
//
// A call's CorrelID is its call id: the request's key (16 bytes of
// SHA-256 of the request id), the attempt and the call's number, so a
// reply names its request, attempt and call. Its reply-to queue is the
// group-wide reply queue (DefaultReplyQueue, indexed by CorrelID), so that
// any manager that takes the request over can take its replies. A call
// that times out takes, in one unit of work, its reply if it came after
// all, or else its call back from the server's queue if it is still there
// (CallTimeoutError.Withdrawn: certainly never performed). A call its
// server gave up on gets a failure reply (a *CallFailedError; below,
// Subordinate servers). Calls still
// pending when a request ends, restarts or is purged are withdrawn the
// same way.
//
// A cancel is a message on the cancel queue (DefaultCancelQueue) whose
// CorrelID is the request id (Cancel; MQSC CANCEL REQUEST). The running
// manager looks for it before each step and every Config.CancelCheck while
// a call waits; a manager taking the request looks first. It is consumed
// by the unit of work that ends the request. A non-recoverable request
// cancelled ends without a reply; the others send "request purged" unless
// they sent their final reply already (a request sends one final reply at
// most: IsFinalFormat).
//
// # Unexpected Message Queue
//
// Each manager's sweeper (every Config.SweepInterval) moves to the
// Unexpected Message Queue (DefaultUnexpectedQueue), behind an
// UnexpectedHeader (the table above uhSize) that says which request and
// why: replies no request awaits (its request purged, cancelled or ended,
// its call timed out, or of an earlier attempt), messages on the reply
// queue that are not replies, and cancels of requests not in flight (one
// for a request not known to have ended only after Config.CancelGrace: a
// request not taken yet has no state, so a cancel of a request that waits
// on its input queue longer than that, because no manager runs or because
// they are all busy with a backlog, is moved and lost: the request runs).
// It reads the replies first and the
// state queue after; a call is recorded pending in the unit of work that
// sends it and never becomes pending again once it is not, so a reply
// pending in no record of its request read after it was seen, every record
// of every live marker in sight, is a stray for good (a request has two
// records for a while, and the one read last may be the stale one). The
// tombstone of a request not in flight is looked up by CorrelID, one by
// one, for the strays alone; a reply of no request in flight and with no
// tombstone is moved (UNKNOWN_REQUEST) once two sweeps in a row find it so
// (a request's end removes its marker and puts its tombstone in one unit
// of work, both out of sight while it commits).
//
// Three kinds go there from the manager itself: a request whose request
// header is malformed (BAD_REQUEST), a final reply of the manager's
// own (FAILED, RETRIED, PURGED) that the request's reply-to queue cannot
// take for good, because it does not exist or is no queue one can put to
// (UNDELIVERABLE; OrigQ names that queue), and a request whose state
// record cannot be read, corrupt or of a newer version than the manager
// knows (BAD_STATE): taking the request again would
// fail the same way for ever. A program's own reply that cannot be put is
// an error its Reply or FinalReply returns.
//
// A request with BAD_STATE is quarantined whole, in the one unit of work
// of its lock (L): its request message (OrigQ the input queue) and every
// record and live marker of it (OrigQ the state queue, OrigFormat
// FormatState or FormatLive), each with its bytes unchanged (a newer
// manager's record is kept, never overwritten), go to the Unexpected
// Message Queue and its cancels are removed; the manager logs it at Error.
// It is not run and sends no reply (whether it sent its final reply is
// in the record that cannot be read), and Config.Ended does not report
// it: an operator decides, from what the queue holds. A manager that dies
// inside that unit of work leaves everything as it was, and the next take
// does it again. A run that finds another record of its request it cannot
// read (written since it took the request) does not remove it: it is
// abandoned, and its next take quarantines the request. The sweeper takes
// a marker or record it cannot read for a request in flight (a newer
// manager's, during an upgrade, is): the request's replies and cancels
// wait while it is there, and are moved (UNKNOWN_REQUEST) once it is gone.
//
// Managers that wrote version 1 records (before Record.Lock and
// Entry.Hash) read no record of this version and skip them: their
// sweepers take such a request for one not in flight and move its
// replies away, and their takes fail on it again and again. Stop every
// manager of that version before one of this version starts (this one
// reads theirs: a request they left resumes here); do not run the two
// side by side.
//
// # Subordinate servers
//
// Serve gets a call under syncpoint, runs the handler, puts the reply
// (CorrelID the call's) and commits them with whatever the handler did
// through the same connection: a call is performed once with respect to
// the server's own unit of work. Give server queues a BOTHRESH and BOQNAME.
//
// A call whose handler fails, or whose server dies holding it, is backed
// out and taken again. One backed out BOTHRESH-1 times (or
// ServeOptions.MaxTries) is a poison call: Serve does not run it again,
// but, in one unit of work, answers it with a failure reply (Format
// FormatCallFailed, CorrelID the call's, the reason in text) and moves it
// to the queue's BOQNAME (one that names no queue: the call is removed,
// its failure reply says so). The request's Call returns a *CallFailedError
// (errors.Is ErrCallFailed) at once, journaled (OutcomeFailed) so that a
// resumption replays it, instead of waiting for its timeout after mq
// moved the call away at BOTHRESH (TestServePoisonCall). The call was
// never performed. A queue without BOTHRESH (or with BOTHRESH(1)) and no
// MaxTries has no such limit: a call its server dies on is taken again
// for ever.
//
// # Admin
//
// Definitions is the MQSC of the group-wide queues (state, tombstone,
// reply, cancel, Unexpected Message Queue). List reads the records
// (DISPLAY REQUESTS), Cancel cancels. Browse the Unexpected Message Queue
// with qmgr get --browse; ParseUnexpectedHeader decodes its messages.
//
// Crash points (package crashpoint) mark every step: request.start.*,
// request.call.*, request.reply.*, request.final.*, request.done.*,
// request.end.*, request.quarantine.put, and the server's request.serve.*.
package request

// The byte layouts of what this package writes to queues. Every one is
// little-endian unless said otherwise, and every decoder checks lengths
// and counts before it allocates, so that bytes another process wrote (or
// any bytes at all) give an error, never a panic.

// Request header layout (rhSize bytes, in front of the request's body when
// the request message's Format is FormatRequest):
//
//	offset  size  constant    field
//	     0     4  rhMagic     magic "RQH "
//	     4     4  rhVersion   version (rhVersionNow)
//	     8     4  rhMode      recovery mode: 0 the manager's default, 1 non-recoverable, 2 restartable, 3 request-level recoverable
//	    12     4  -           zero
//	    16     8  rhFormat    the body's own format, space padded
const (
	rhMagic      = 0
	rhVersion    = 4
	rhMode       = 8
	rhFormat     = 16
	rhSize       = 24
	rhVersionNow = 1
)

// State record layout (srSize bytes of fixed part, then the tail): one per
// request in flight on the state queue (Format FormatState), the same bytes
// as the request's live marker (FormatLive, the record as created) and its
// tombstone (FormatTombstone, the record as it ended).
//
//	offset  size  constant     field
//	     0     4  srMagic      magic "RQST"
//	     4     2  srVersion    version (srVersionNow)
//	     6     1  srMode       recovery mode (1..3)
//	     7     1  srStatus     status: 1 running, 2 final reply sent, 3 done, 4 purged, 5 cancelled
//	     8     4  srAttempts   attempts (restartable) or takes (the others) so far, the first is 1
//	    12     4  srNextSeq    the next call's sequence number (from 1)
//	    16     4  srFinalIdx   journal entries up to and including the final reply (0: none sent)
//	    20     4  srPending    how many pending calls the tail holds
//	    24    24  srRequestID  the request id (the request message's MsgID)
//	    48     8  srCreated    when the request started, Unix ns
//	    56     8  srUpdated    when the record was last written, Unix ns
//	    64     4  srJournal    how many journal entries the tail holds
//	    68     4  -            zero
//	    72     8  srLock       the token of the request message that holds the request (Record.Lock, mq.Message.Token)
//	    80     *  srTail       strings, pending calls, journal (below)
//
// The tail: four strings, each a 2-byte length and its bytes (the manager
// that wrote the record, the current step label, the request's reply-to
// queue and queue manager); then srPending pending calls, each attempt
// (4), sequence (4), sent time in Unix ns (8), timeout in ns (8) and the
// called queue as a string; then srJournal journal entries, each kind (1:
// call, 2: save, 3: reply, 4: final reply), outcome of a call (1: pending,
// 2: replied, 3: timed out, 4: timed out and withdrawn, 5: failed: its
// server gave up on it), one zero byte, attempt (4) and sequence (4) of a
// call, a string (the called queue, or the saved key), the hash of what
// was sent (8: Entry.Hash, SentHash) and a value, a 4-byte length and its
// bytes (the call's reply, its server's reason when it failed, or the
// saved value).
//
// Version 1 records (srSizeV1 bytes of fixed part: no srLock, and journal
// entries without their hash) are still read, as written before version 2;
// a record of a version above srVersionNow is not (ErrRecordVersion).
const (
	srMagic      = 0
	srVersion    = 4
	srMode       = 6
	srStatus     = 7
	srAttempts   = 8
	srNextSeq    = 12
	srFinalIdx   = 16
	srPending    = 20
	srRequestID  = 24
	srCreated    = 48
	srUpdated    = 56
	srJournal    = 64
	srLock       = 72
	srTail       = 80
	srSize       = 80
	srVersionNow = 2
	srSizeV1     = 72 // the fixed part of a version 1 record
)

// Unexpected Message Queue header layout (uhSize bytes, in front of the
// original body; Format FormatUnexpected):
//
//	offset  size  constant     field
//	     0     4  uhMagic      magic "RQUH"
//	     4     4  uhVersion    version (uhVersionNow)
//	     8     4  uhReason     why it is here (Reason: 1 purged, 2 ended, 3 stale attempt, 4 timed out, 5 not a reply, 6 cancelled, 7 unknown request, 8 bad request, 9 undeliverable, 10 duplicate, 11 bad state)
//	    12     4  -            zero
//	    16    24  uhRequestID  the request id, zero when not known (only the call id's key is)
//	    40    24  uhCorrelID   the original message's CorrelID (a reply's call id)
//	    64    48  uhOrigQ      the queue it was found on (undeliverable: the queue it was for), NUL padded
//	   112     8  uhTime       when it was moved, Unix ns
//	   120     8  uhFormat     the original format, space padded
const (
	uhMagic      = 0
	uhVersion    = 4
	uhReason     = 8
	uhRequestID  = 16
	uhCorrelID   = 40
	uhOrigQ      = 64
	uhTime       = 112
	uhFormat     = 120
	uhSize       = 128
	uhVersionNow = 1
	uhQueueLen   = 48
)

// Call id layout (ciSize bytes): the CorrelID of a call to a subordinate
// server and of its reply, and (with the reserved attempt ciTagAttempt) of
// a request's messages on the state queue. Big-endian, so that its hex
// reads in order.
//
//	offset  size  constant   field
//	     0    16  ciKey      the request's key: the first 16 bytes of SHA-256 of the request id
//	    16     4  ciAttempt  the attempt that sent the call (1 ..), or ciTagAttempt
//	    20     4  ciSeq      the call's sequence number in the request (1 ..), or a tag (ciTagRecord, ciTagLive, ciTagTomb)
const (
	ciKey        = 0
	ciAttempt    = 16
	ciSeq        = 20
	ciSize       = 24
	ciKeyLen     = 16
	ciTagAttempt = 0xffffffff
	ciTagRecord  = 0xfffffffe
	ciTagLive    = 0xfffffffd
	ciTagTomb    = 0xfffffffc
)
