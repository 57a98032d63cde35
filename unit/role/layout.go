package role

// Version is the layout version of the role and progress records.
const Version = 1

// Sizes and limits.
const (
	// RecordSize is the size of both records: a status slot's size.
	RecordSize = 256
	posSize    = 48
	chainLen   = 4
	nameLen    = 24
	// MaxReplicas is the most positions a unit has.
	MaxReplicas = 4
	// None is the position byte meaning "no position".
	None = 0xff
)

// Role record (status slot base of the unit's CFSTRUCT, RecordSize bytes,
// little-endian). Replaced whole by compare-and-swap: by members (claim,
// death, sweep, admin) and replicas (register, restored, hand-over);
// read by everyone:
//
//	offset  size  constant     field
//	     0     4  rlMagic      magic "RURL"
//	     4     1  rlVersion    Version
//	     5     1  rlState      UnitState
//	     6     1  rlConfig     bit 0: fan-out; bits 1-2: Logging
//	     7     1  rlReplicas   R, the positions in use (1..MaxReplicas)
//	     8     8  rlEpoch      counts changes of primary or sender
//	    16     8  rlGen        counts starts from empty state
//	    24     1  rlPrimary    primary position (None: none)
//	    25     1  rlSender     sender position (None: none)
//	    26     4  rlChain      active secondaries in logging order, None-terminated (fan-out: join order)
//	    30     1  rlDiverge    bits 0-1: divergences in the current window (0..DivergeLimit); bit 7: DIVERGED; others zero
//	    31     1  rlDivWindow  the minute (Unix minutes mod 256) the current window of divergences began
//	    32    24  rlName       unit name, NUL padded
//	    56     8  rlUpdated    Unix ns of the last change
//	    64   192  rlPositions  MaxReplicas position entries of posSize bytes
const (
	rlMagic     = 0
	rlVersion   = 4
	rlState     = 5
	rlConfig    = 6
	rlReplicas  = 7
	rlEpoch     = 8
	rlGen       = 16
	rlPrimary   = 24
	rlSender    = 25
	rlChain     = 26
	rlDiverge   = 30
	rlDivWindow = 31
	rlName      = 32
	rlUpdated   = 56
	rlPositions = 64
)

// Position entry (posSize bytes at rlPositions + k*posSize):
//
//	offset  size  constant        field
//	     0     1  peState         PosState
//	     1     1  peDonor         joining: the donor position (None: none)
//	     2     1  pePeer          member peer slot hosting it
//	     3     1  peReason        last exit reason (ExitReason)
//	     4     4  peTag           the replica's W connection tag
//	     8     8  peIncarnation   the hosting member's incarnation
//	    16     4  pePid           the replica's pid
//	    20     4  peRestarts      deaths of this position so far
//	    24     8  peStartTime     the replica process's start time (procid)
//	    32     8  peSince         starting: the claim id; else Unix ns of the last change
//	    40     8  peSnapLSN       joining: the LSN its snapshot stands at; active: the LSN it joined at
const (
	peState       = 0
	peDonor       = 1
	pePeer        = 2
	peReason      = 3
	peTag         = 4
	peIncarnation = 8
	pePid         = 16
	peRestarts    = 20
	peStartTime   = 24
	peSince       = 32
	peSnapLSN     = 40
)

// Progress record (status slot base+1+k, RecordSize bytes). Written only
// by the replica in position k (its batches by CAS, its heartbeat by
// UpdateStatus); read by the primary (trim, flow control), its successor
// (chain gate), members (SVSTATUS, heartbeat, metrics):
//
//	offset  size  constant        field
//	     0     4  pgMagic         magic "RUPG"
//	     4     1  pgVersion       Version
//	     5     1  pgFlags         Flag bits
//	     6     1  pgPosition      k
//	     7     1  pgRole          the Role the replica last saw itself in
//	     8     4  pgTag           the replica's W tag (not the entry's: a stale record)
//	    12     4  pgChunks        joiner: snapshot chunks restored
//	    16     8  pgEpoch         epoch seen
//	    24     8  pgReceived      highest LSN read into memory
//	    32     8  pgApplied       highest LSN processed
//	    40     8  pgHold          a donor keeps the log above it for its joiner (0 none)
//	    48     8  pgLSNOut        sender: LSN_out committed; others: last seen
//	    56     8  pgResendInputs  inputs in its resend queue
//	    64     8  pgResendBytes   bytes in its resend queue
//	    72     8  pgOutHash       output hash at pgApplied
//	    80     8  pgCheckLSN      LSN of its last state hash
//	    88     8  pgCheckHash     its state hash at pgCheckLSN
//	    96     8  pgHeartbeat     Unix ns, every 100 ms
//	   104     8  pgInputs        inputs applied in all
//	   112     8  pgOutputs       outputs committed in all
//	   120     8  pgDivergedLSN   LSN of a divergence (0 none)
//	   128    24  pgLastMsgID     MsgID of the last input applied
//	   152     1  pgXferJoiner    donor: joiner position of the transfer in progress (None: none)
//	   153     3  -               zero
//	   156     4  pgXferTag       donor: that joiner's W tag
//	   160    96  -               zero
const (
	pgMagic        = 0
	pgVersion      = 4
	pgFlags        = 5
	pgPosition     = 6
	pgRole         = 7
	pgTag          = 8
	pgChunks       = 12
	pgEpoch        = 16
	pgReceived     = 24
	pgApplied      = 32
	pgHold         = 40
	pgLSNOut       = 48
	pgResendInputs = 56
	pgResendBytes  = 64
	pgOutHash      = 72
	pgCheckLSN     = 80
	pgCheckHash    = 88
	pgHeartbeat    = 96
	pgInputs       = 104
	pgOutputs      = 112
	pgDivergedLSN  = 120
	pgLastMsgID    = 128
	pgXferJoiner   = 152
	pgXferTag      = 156
)
