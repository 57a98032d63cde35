// Package request runs request managers on the group (seed 004).
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
//	    72     *  srTail       strings, pending calls, journal (below)
//
// The tail: four strings, each a 2-byte length and its bytes (the manager
// that wrote the record, the current step label, the request's reply-to
// queue and queue manager); then srPending pending calls, each attempt
// (4), sequence (4), sent time in Unix ns (8), timeout in ns (8) and the
// called queue as a string; then srJournal journal entries, each kind (1:
// call, 2: save, 3: reply, 4: final reply), outcome of a call (1: pending,
// 2: replied, 3: timed out, 4: timed out and withdrawn), one zero byte,
// attempt (4) and sequence (4) of a call, a string (the called queue, or
// the saved key) and a value, a 4-byte length and its bytes (the call's
// reply, or the saved value).
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
	srTail       = 72
	srSize       = 72
	srVersionNow = 1
)

// Unexpected Message Queue header layout (uhSize bytes, in front of the
// original body; Format FormatUnexpected):
//
//	offset  size  constant     field
//	     0     4  uhMagic      magic "RQUH"
//	     4     4  uhVersion    version (uhVersionNow)
//	     8     4  uhReason     why it is here (Reason: 1 purged, 2 ended, 3 stale attempt, 4 timed out, 5 not a reply, 6 cancelled, 7 unknown request, 8 bad request)
//	    12     4  -            zero
//	    16    24  uhRequestID  the request id, zero when not known (only the call id's key is)
//	    40    24  uhCorrelID   the original message's CorrelID (a reply's call id)
//	    64    48  uhOrigQ      the queue it was found on, NUL padded
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
