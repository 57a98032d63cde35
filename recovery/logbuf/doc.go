// Package logbuf hands log records from the processes of a member's
// connections (applications in bindings mode, the channel initiator) to
// the member's recovery log writer, through shared memory, and tells them
// when their records are durable.
//
// Each member has one log buffer, a file in the CF directory's "logbuf"
// subdirectory named after the member, holding a fixed number of rings.
// A connection claims a ring of its own (Claim), so every ring has one
// producer and one consumer and needs no locks: the producer writes a
// record after the ring's head and then publishes it by storing the new
// head; the member's consumer (Consumer, a goroutine of the member)
// copies what is published, frees the space by storing the tail, hands
// the records to the log (rlog) and, once the log says they are durable,
// stores the ring's durable position and wakes the producers waiting on
// the buffer's futex. A producer killed half way through a record never
// published it, so the consumer never sees half a record; what it did
// publish is logged even after it died (its unit of work may have been
// decided already; see package qm).
//
// Records of different rings reach the log in the order the consumer
// finds them. That order is enough: a record that must follow another (a
// get after the commit of the put it consumes) is only written after its
// predecessor was durable, so it is published after the consumer logged
// the predecessor.
//
// A record larger than half a ring travels in pieces; the consumer joins
// them before logging. The consumer copies what it takes and frees the
// ring before the log writes it, so a consumer that dies loses at most
// records nobody was told are durable, and never logs one twice.
//
// # Death of the consumer
//
// A consumer stamps the buffer with its process identity and a
// generation when it starts. A producer remembers the generation it
// claimed its ring under; Wait fails with ErrConsumerGone when the
// generation changes or the consumer's process is gone, because whatever
// it was waiting for may never be logged (the member died; peers recover
// its connections). A new consumer logs whatever the old one left
// published, then frees every ring. When the old consumer had taken the
// first pieces of a record and died, the new one finds the rest of it
// (bit 2 of its flags, with no first piece): it drops that and whatever
// follows it in the ring, none of which was durable, so the log holds a
// prefix of every ring's records, each whole.
//
// A producer checks the generation before every piece it writes, so one
// of the old consumer that goes on appending stops at its next piece; it
// could still write one piece into its old ring after the new consumer
// freed it, if the new consumer started in the moment between that check
// and the write (a window of one copy of at most half a ring).
//
// # A buffer file truncated, removed or damaged
//
// Every access to the mapping is guarded (shm.BeginGuard): a file
// truncated under it makes the access fail instead of killing the
// process with SIGBUS. A producer whose access faults fails with
// ErrBufferLost from then on, which means for its records not yet durable
// what ErrConsumerGone means: their outcome is unknown (the application
// connects again). Buffer.InFlight and OldestUOW fail with it too (a
// backup cannot know the units of work of that buffer).
//
// The consumer checks its file every 100 ms when idle (one fstat) and
// after every fault. Finding it truncated or removed, it replaces it
// (replace): it bumps the old buffer's generation where the old pages
// still answer, so its producers stop, then puts a new, empty buffer of
// the configured geometry in its place in one step (shm.Recreate: a
// temporary file renamed over the name, so an application attaching
// finds the old file or the new one, whole), and logs what it dropped.
// Records the old buffer's producers had published and the consumer had
// not taken are lost; none was reported durable. Records already handed
// to the log are still made durable, but their producers are no longer
// told, as when a consumer dies.
//
// Start (the member's way in) replaces a buffer file it cannot use: one
// shorter than a header or than its header says, with a damaged header or
// another layout version (shm errors), or whose pages fault while the
// previous consumer's records are taken over. One of another geometry
// than configured is taken over (what is published in it is logged) and
// then replaced. A damaged file's records cannot be trusted: the member's
// log says it dropped them.
//
// # When the log fails
//
// The log settles every record it is handed: durable, failed, or of
// uncertain outcome (package rlog). The consumer hands a ring's records
// to the log one after the other (rlog.AppendAfter: a record is refused
// when the ring's previous one failed) and applies their outcomes in
// ticket order: a failed record counts a failure in its ring (rFailed;
// an uncertain one rUncertain too, first), before the ring's durable
// position moves past it. A producer looks at the count in every Append
// and Wait (after loading the durable position, so it never takes a
// durable position past a failed record for success): a new failure
// fails that call, once, with ErrLogFailed or ErrLogUncertain (which
// also matches ErrLogFailed), saying why. The producer then acknowledges
// it: it stores its head (rResumeAt), then the count it saw (rFailAck).
// Until then, and for records it published before its head at that
// moment, the consumer drops what the ring holds: the rest of the failed
// work, which must not be logged (a commit record after a put record of
// the same unit of work that failed). Records after the acknowledgement
// are new work, logged.
//
// While the log refuses records (a full disk, syncs failing: the log
// retries by itself), the consumer sets the failed word and publishes the
// reason: Append fails at once with ErrLogFailed and the reason. The
// consumer also publishes, under a sequence word, when the log failed,
// how often, why, and whether its next segment could be reserved, which
// LogStatus reads (`qmgr status`, DISPLAY GROUP); and it says in the
// member's log when the recovery log fails and when it writes again.
//
// # Layout
//
// The data area of the shm structure (kind KindLogBuffer, layout version
// 2), little-endian:
//
//	  0 u64 ring count         8 u64 ring size in bytes (power of 2)
//	 16 u64 consumer pid      24 u64 consumer process start time
//	 32 u64 generation (the consumer bumps it when it starts)
//	 40 u64 failed: 1 while the member's log refuses records (consumer
//	        stores; producers load in Append)
//	 48 u64 status sequence: the consumer adds 1 before and after it
//	        writes the status words (40, 56, 256..1008); odd while it
//	        writes; readers retry until they read one even value twice
//	 56 u64 failures of the log since the consumer started
//	 64 u32 work futex: producers bump it after publishing
//	 68 u32 consumer sleeping: set by the consumer before it sleeps on work
//	128 u32 durable futex: the consumer bumps it after storing durable
//	    positions
//	132 u32 durable waiters: producers count themselves in while waiting
//	192 u32 space futex: the consumer bumps it after freeing space
//	196 u32 space waiters
//	256 u64 failed since (Unix ns; 0 while the log writes)
//	264 u64 last failure (Unix ns; 0: none)
//	272 u16 reason length, 274 u16 reserve-problem length (one u32 store)
//	280 [480]byte reason: why the log is failed, or why it failed last
//	760 [248]byte why the next segment could not be reserved
//	1024 ring headers, 256 bytes each:
//	      0 u64 owner: 0 free, else the producer's owner tag + 1 (CAS)
//	      8 u64 generation the ring was claimed under
//	     16 u64 in-flight sequence (odd between BeginVisible and
//	            EndVisible; producer stores)
//	     24 u64 key of the producer's unit of work with persistent work
//	     64 u64 head: end of what the producer published (producer
//	            stores, release; consumer loads, acquire)
//	     72 u64 failures acknowledged (producer stores after 80)
//	     80 u64 resume position: the producer's head when it last
//	            acknowledged (producer stores; consumer loads after 72)
//	    128 u64 tail: end of what the consumer took (consumer stores,
//	            producer loads to find free space)
//	    192 u64 durable: end of what is durable (consumer stores,
//	            producer loads in Wait)
//	    200 u32 waiting: the producer sleeps on the durable futex
//	    208 u64 failures: records of the ring that failed (consumer adds
//	            1 per failure, before it stores a durable position past
//	            them; producer loads after durable)
//	    216 u64 uncertain: of those, failures of unknown outcome
//	            (consumer adds before 208)
//	then the rings, each at a page-aligned offset, ring i at
//	ringsOff + i*ring size.
//
// Positions only grow; the byte of position p is at p mod ring size. A
// record in a ring is an 8-byte header, u32 payload length, u8 type, u8
// flags (bit 0: more pieces follow; bit 1: padding to the ring's end,
// no payload; bit 2: a piece after the first), u16 zero, then the payload
// padded to 8 bytes. A record
// never wraps: when it does not fit before the ring's end, the producer
// writes a padding header there and starts at the ring's beginning.
package logbuf
