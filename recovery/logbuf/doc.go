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
// stores the ring's durable position and wakes the ring's producer if it
// waits (on that word). A producer killed half way through a record never
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
// are new work, logged. The consumer loads a ring's acknowledgement right
// after its head, before it frees what it took: a new producer may claim
// the ring as soon as the old one's Release sees its records taken, and a
// claim acknowledges too (with its head), which must not make the
// consumer drop the old producer's last records.
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
// layoutVersion, 3) is a buffer header, the ring headers from offset 1024
// (256 bytes each), then the rings, each at a page-aligned offset (ring i
// at ringsOffset + i*ring size), all little-endian. The header, the ring
// header and the record header are tables directly above their offset
// constants in logbuf.go, which also say who writes and who reads each
// word (TestLayoutTables checks the tables against the constants).
//
// Positions only grow; the byte of position p is at p mod ring size. A
// record in a ring is an 8-byte header (payload length, type, flags: more
// pieces follow, padding to the ring's end, a piece after the first), then
// the payload padded to 8 bytes. A record never wraps: when it does not
// fit before the ring's end, the producer writes a padding header there
// and starts at the ring's beginning.
//
// A producer waiting for its records to be durable sleeps on its own
// ring's durable word (the futex is its low half) and is woken only when
// its ring advances while it waits.
package logbuf
