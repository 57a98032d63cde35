package logrec

// Version is the layout version of every record of this package. Bump it
// whenever any layout below changes.
const Version = 1

// Sizes and limits.
const (
	logHeaderSize   = 64
	idSize          = 24 // MsgID and CorrelID
	recHeaderSize   = 8
	inputFixedSize  = 216
	inputRefSize    = 80
	choicesFixed    = 8
	checkSize       = 24
	choiceHdrSize   = 5
	outSize         = 64
	chunkHdrSize    = 48
	fsHeaderSize    = 40
	destSize        = 56
	sourceSize      = 24
	rsHeaderSize    = 16
	resendFixedSize = 240
	nameLen         = 48 // queue and queue manager names, NUL padded
	formatLen       = 8

	// MaxInputsPerMessage is the most inputs one log message carries.
	MaxInputsPerMessage = 64
	// MaxRecords is the most records one log message carries (inputs and
	// the CHOICES and CHECK records beside them).
	MaxRecords = 1024
	// MaxChoiceBytes bounds the choices of one input (their bytes and
	// headers together).
	MaxChoiceBytes = 1 << 20
	// MaxChoices bounds the number of choices of one input.
	MaxChoices = 1<<16 - 1
	// MaxChunkData is the most snapshot bytes one chunk carries.
	MaxChunkData = 256 << 10
	// MaxTableEntries bounds the destination and source tables of the
	// framework state.
	MaxTableEntries = 1 << 20
)

// Log message header (the first logHeaderSize bytes of every message on
// SYSTEM.UNIT.<n>.LOG, Format MQRULOG). Written by the primary, once, in
// the unit of work that gets its inputs; read by every secondary:
//
//	offset  size  constant     field
//	     0     4  lgMagic      magic "RULG"
//	     4     1  lgVersion    Version
//	     5     1  lgFlags      bit 0: holds a persistent input; others zero
//	     6     2  lgCount      number of records that follow (1..MaxRecords)
//	     8     8  lgEpoch      epoch of the primary that wrote it (a new primary's first message is the epoch mark)
//	    16     8  lgGen        generation
//	    24     8  lgFirst      first input LSN (0 with lgLast 0: no input records)
//	    32     8  lgLast       last input LSN; the input LSNs are lgFirst..lgLast in record order
//	    40     8  lgCompleted  completed-through: every input up to it has all its choices logged
//	    48     8  lgOutHash    primary's output hash at lgCompleted
//	    56     8  -            zero
//	    64     *  lgRecords    the records, each a record header and its body
const (
	lgMagic     = 0
	lgVersion   = 4
	lgFlags     = 5
	lgCount     = 6
	lgEpoch     = 8
	lgGen       = 16
	lgFirst     = 24
	lgLast      = 32
	lgCompleted = 40
	lgOutHash   = 48
	lgRecords   = 64
)

// Log message CorrelID (idSize bytes, big-endian so that CorrelIDs sort
// as the log does). Set by the primary on the put:
//
//	offset  size  constant  field
//	     0     8  lcEpoch   epoch of the message
//	     8     8  lcFirst   its first input LSN (0: none)
//	    16     8  -         zero
const (
	lcEpoch = 0
	lcFirst = 8
)

// Record header (recHeaderSize bytes before each record's body in a log
// message):
//
//	offset  size  constant  field
//	     0     1  rcKind    Kind
//	     1     1  rcFlags   zero (reserved)
//	     2     2  -         zero
//	     4     4  rcLen     length of the body that follows
//	     8     *  rcBody    the body (layouts below)
const (
	rcKind  = 0
	rcFlags = 1
	rcLen   = 4
	rcBody  = 8
)

// INPUT and INPUT_EARLY record body (inputFixedSize bytes, then the
// properties, the body and, for INPUT only, the input's choices list):
//
//	offset  size  constant       field
//	     0     8  inLSN          the input's LSN
//	     8     8  inSrcID        source id (from a unit: xxhash64 of its name; else 0)
//	    16     4  inSrcGen       source generation (0 unless from a unit)
//	    20     4  -              zero
//	    24     8  inSrcSeq       source sequence number (0 unless from a unit)
//	    32    24  inMsgID        the input's MsgID
//	    56    24  inCorrelID     its CorrelID
//	    80     8  inFormat       its Format, NUL padded
//	    88     1  inPriority     its priority (0..9)
//	    89     1  inPersistent   1 if persistent, else 0
//	    90     6  -              zero
//	    96     8  inExpiry       expiry, Unix ns (0: never)
//	   104     8  inPutTime      put time, Unix ns
//	   112    48  inReplyToQ     reply-to queue, NUL padded
//	   160    48  inReplyToQMgr  reply-to queue manager, NUL padded
//	   208     4  inPropsLen     length of the properties
//	   212     4  inBodyLen      length of the body
//	   216     *  inData         properties, body, then (INPUT) the choices list
const (
	inLSN         = 0
	inSrcID       = 8
	inSrcGen      = 16
	inSrcSeq      = 24
	inMsgID       = 32
	inCorrelID    = 56
	inFormat      = 80
	inPriority    = 88
	inPersistent  = 89
	inExpiry      = 96
	inPutTime     = 104
	inReplyToQ    = 112
	inReplyToQMgr = 160
	inPropsLen    = 208
	inBodyLen     = 212
	inData        = 216
)

// INPUT_REF record body (inputRefSize bytes; LOGGING(INDEPENDENT): the
// secondaries read the input in place on the input queue):
//
//	offset  size  constant     field
//	     0     8  rfLSN        the input's LSN
//	     8     8  rfSrcID      source id
//	    16     4  rfSrcGen     source generation
//	    20     4  -            zero
//	    24     8  rfSrcSeq     source sequence number
//	    32    24  rfMsgID      the input's MsgID (the queue is INDXTYPE(MSGID))
//	    56     8  rfPutTime    its put time, Unix ns
//	    64     4  rfBodyLen    its body's length
//	    68     4  -            zero
//	    72     8  rfHash       Input.Hash: xxhash64 of its headers and body
const (
	rfLSN     = 0
	rfSrcID   = 8
	rfSrcGen  = 16
	rfSrcSeq  = 24
	rfMsgID   = 32
	rfPutTime = 56
	rfBodyLen = 64
	rfHash    = 72
)

// CHOICES record body (choicesFixed bytes, then a choices list):
//
//	offset  size  constant  field
//	     0     8  chLSN     the input whose choices these are
//	     8     *  chList    its choices list
const (
	chLSN  = 0
	chList = 8
)

// CHECK record body (checkSize bytes):
//
//	offset  size  constant  field
//	     0     8  ckLSN     the LSN the snapshot stands at
//	     8     8  ckHash    xxhash64 of the snapshot at ckLSN
//	    16     8  ckLen     its length
const (
	ckLSN  = 0
	ckHash = 8
	ckLen  = 16
)

// Choices list: a 2-byte count (little-endian, at most MaxChoices), then
// each choice (choiceHdrSize bytes, then its bytes), all of one input:
//
//	offset  size  constant  field
//	     0     1  ccKind    ChoiceKind
//	     1     4  ccLen     length of the choice's bytes
//	     5     *  ccData    the bytes
const (
	ccKind = 0
	ccLen  = 1
	ccData = 5
)

// OUT record (outSize bytes, the body of the one message with CorrelID
// "OUT" on SYSTEM.UNIT.<n>.STATE, Format MQRUOUT). Replaced by the
// sender under syncpoint with the outputs it commits; read by a new
// sender and the checker:
//
//	offset  size  constant      field
//	     0     4  otMagic       magic "RUOT"
//	     4     1  otVersion     Version
//	     5     1  otSender      position of the sender that wrote it
//	     6     2  -             zero
//	     8     8  otEpoch       epoch of that sender's take-over
//	    16     8  otGen         generation
//	    24     8  otLSNOut      LSN_out: every output of an LSN up to it is committed
//	    32     8  otOutputs     outputs committed in all
//	    40     8  otOutHash     output hash at LSN_out
//	    48     8  otUpdated     Unix ns of the replace
//	    56     8  otPart        outputs of LSN LSN_out+1 committed (a send stopped inside it by a full queue)
const (
	otMagic   = 0
	otVersion = 4
	otSender  = 5
	otEpoch   = 8
	otGen     = 16
	otLSNOut  = 24
	otOutputs = 32
	otOutHash = 40
	otUpdated = 48
	otPart    = 56
)

// Output MsgID (idSize bytes, big-endian), set by the sender on every
// output; a destination unit keys duplicates and early messages by it:
//
//	offset  size  constant  field
//	     0     2  oiMagic   "RU"
//	     2     1  oiVersion Version
//	     3     1  -         zero
//	     4     8  oiSource  source id: xxhash64 of the unit's name
//	    12     4  oiGen     generation of the unit
//	    16     8  oiSeq     per-destination sequence number, from 1
const (
	oiMagic   = 0
	oiVersion = 2
	oiSource  = 4
	oiGen     = 12
	oiSeq     = 16
)

// Snapshot transfer CorrelID (idSize bytes, big-endian): names the chunks
// of one transfer on SYSTEM.UNIT.<n>.SNAP. Set by the donor:
//
//	offset  size  constant     field
//	     0     4  scMagic      "RUSN"
//	     4     4  scGen        generation
//	     8     8  scEpoch      epoch when the transfer began
//	    16     1  scJoiner     joiner position (RestingJoiner: the resting snapshot)
//	    17     4  scJoinerTag  joiner's W connection tag
//	    21     3  -            zero
const (
	scMagic     = 0
	scGen       = 4
	scEpoch     = 8
	scJoiner    = 16
	scJoinerTag = 17
)

// Snapshot chunk (chunkHdrSize bytes, then up to MaxChunkData bytes of
// the snapshot stream; Format MQRUSNP). Written by the donor, read by the
// joiner:
//
//	offset  size  constant   field
//	     0     4  skMagic    "RUSC"
//	     4     1  skVersion  Version
//	     5     1  skFlags    bit 0: the last chunk; others zero
//	     6     2  -          zero
//	     8     4  skIndex    chunk index from 0
//	    12     4  -          zero
//	    16     8  skLSN      the LSN the snapshot stands at
//	    24     8  skOffset   offset of this chunk's bytes in the stream
//	    32     8  skTotal    last chunk: the stream's length; else zero
//	    40     8  skHash     last chunk: xxhash64 of the stream; else zero
//	    48     *  skData     the bytes
const (
	skMagic   = 0
	skVersion = 4
	skFlags   = 5
	skIndex   = 8
	skLSN     = 16
	skOffset  = 24
	skTotal   = 32
	skHash    = 40
	skData    = 48
)

// Framework state header (fsHeaderSize bytes), the head of every snapshot
// stream; then fsDests destination entries, fsSources source entries,
// then the handler's Snapshot bytes to the end. It holds no replica
// identity, so every replica's state hash at an LSN agrees:
//
//	offset  size  constant    field
//	     0     4  fsMagic     "RUFS"
//	     4     1  fsVersion   Version
//	     5     3  -           zero
//	     8     8  fsLSN       the LSN the state stands at
//	    16     8  fsGen       generation
//	    24     8  fsOutHash   output hash at fsLSN
//	    32     4  fsDests     destination entries that follow
//	    36     4  fsSources   source entries after them
//	    40     *  fsTables    the entries, then the handler's bytes
const (
	fsMagic   = 0
	fsVersion = 4
	fsLSN     = 8
	fsGen     = 16
	fsOutHash = 24
	fsDests   = 32
	fsSources = 36
	fsTables  = 40
)

// Destination entry of the framework state (destSize bytes), sorted by
// name, names unique:
//
//	offset  size  constant  field
//	     0    48  deName    destination queue as given to Send, NUL padded
//	    48     8  deNext    next sequence number to assign (from 1)
const (
	deName = 0
	deNext = 48
)

// Source entry of the framework state (sourceSize bytes), sorted by
// (id, generation), unique:
//
//	offset  size  constant  field
//	     0     8  srID      source id
//	     8     4  srGen     source generation
//	    12     4  -         zero
//	    16     8  srNext    next sequence number expected
const (
	srID   = 0
	srGen  = 8
	srNext = 16
)

// Resend section header (rsHeaderSize bytes), after the framework state
// in a snapshot stream and before the handler's bytes (design 14.1): the
// donor's resend queue above its LSN_out, so that a restored joiner holds
// every output a sender may still have to put. Then rsCount resend
// entries:
//
//	offset  size  constant   field
//	     0     4  rsMagic    "RURS"
//	     4     1  rsVersion  Version
//	     5     3  -          zero
//	     8     4  rsCount    resend entries that follow
//	    12     4  -          zero
//	    16     *  rsEntries  the entries, in LSN order (each LSN's outputs in send order)
const (
	rsMagic   = 0
	rsVersion = 4
	rsCount   = 8
	rsEntries = 16
)

// Resend entry (resendFixedSize bytes, then the properties and the body):
// one output of the resend queue as the handler sent it, numbered:
//
//	offset  size  constant        field
//	     0     8  reLSN           the LSN whose input made the output
//	     8     8  reSeq           per-destination sequence number, from 1
//	    16    48  reDest          destination as given to Send, NUL padded
//	    64    24  reMsgID         the output's MsgID (its identity)
//	    88    24  reCorrelID      its CorrelID
//	   112     8  reFormat        its Format, NUL padded
//	   120     1  rePriority      its priority (0..9, 0xff: the queue's default)
//	   121     1  rePersistence   mq.Persistence (0 as the queue's default, 1 persistent, 2 not)
//	   122     6  -               zero
//	   128     8  reExpiry        expiry, Unix ns (0: never)
//	   136    48  reReplyToQ      reply-to queue, NUL padded
//	   184    48  reReplyToQMgr   reply-to queue manager, NUL padded
//	   232     4  rePropsLen      length of the properties
//	   236     4  reBodyLen       length of the body
//	   240     *  reData          properties, then body
const (
	reLSN         = 0
	reSeq         = 8
	reDest        = 16
	reMsgID       = 64
	reCorrelID    = 88
	reFormat      = 112
	rePriority    = 120
	rePersistence = 121
	reExpiry      = 128
	reReplyToQ    = 136
	reReplyToQMgr = 184
	rePropsLen    = 232
	reBodyLen     = 236
	reData        = 240
)
