// Package rlog is a member's recovery log: an append-only sequence of
// checksummed records in segment files, written with group commit.
//
// Every record carries an LRSN, a sequence number drawn from a source the
// whole group shares (the admin structure's counter), so that the logs of
// all members merge into one order. The log assigns LRSNs when it writes a
// batch, in the order the records were appended, so within one log they
// only ever grow; a caller that must be ordered after a record (a get
// after the put it consumes) acts only after Wait returned for it, which
// puts its own record later in every log.
//
// # Group commit
//
// Append copies a record into the pending batch and returns a ticket; Wait
// blocks until the record is durable. One writer goroutine takes the whole
// pending batch, assigns its LRSNs, writes it with one write and makes it
// durable with one fdatasync, then wakes every waiter of the batch. While
// it syncs, new records gather for the next batch. A write or sync that
// fails fails the log: every record not yet durable, and every later
// Append, returns an error wrapping ErrFailed (the page cache can no longer
// be trusted after a failed fdatasync), until the log is opened again.
//
// # Files
//
// The log of a member lives in its own directory, one file per segment,
// named by the segment's sequence number in 16 hex digits with ".seg"
// (0000000000000001.seg, ...). A segment is created at its full size (a
// sparse file, with its header) and synced before the first record goes
// in, by a goroutine that prepares the next segment while the current one
// fills, so appending never grows a file. A write that reaches past the
// part of the segment written so far first writes the next MiB with
// zeros, so the file system allocates blocks once per MiB rather than at
// every sync. A record never spans segments.
//
// Segment header (64 bytes, little-endian):
//
//	0  [4]byte  magic "QMRL"
//	4  uint16   format version (1)
//	6  uint16   zero
//	8  uint64   segment sequence number (the same as the file name's)
//	16 uint64   segment size in bytes
//	24 [24]byte member name, zero padded
//	48 uint64   zero
//	56 uint64   xxhash64 of bytes 0..56
//
// Records follow from offset 64, each 8-byte aligned:
//
//	0  uint32   payload length n
//	4  uint8    type (1..255, set by the caller; 0 is never written)
//	5  uint8    flags: bit 0 set on the last record of a write
//	6  uint16   zero
//	8  uint64   LRSN
//	16 uint64   write number (1, 2, ...: every write of the log has its own)
//	24 uint64   xxhash64 of: the segment sequence number (8 bytes LE),
//	            bytes 0..24 of this header, then the payload
//	32 [n]byte  payload, then zeros up to the next multiple of 8
//
// Hashing the segment number in means a record copied or left over from
// another segment never passes for one of this segment.
//
// # The tail after a crash
//
// A crash in the middle of a write can leave any subset of the write's
// sectors on disk. Opening the log reads the last segment that holds a
// record, and at the first position p where no valid record starts it
// looks at every valid record after p. The writer never starts a write
// before the previous one is durable, so records after p from a write
// other than the one p belongs to prove that p was durable once: that is
// corruption, and Open fails with ErrCorrupt. Otherwise the damage is the
// unfinished last write (a torn tail): nothing of it was acknowledged, so
// Open zeros it from p on and appends from p. (Corruption that hits only
// the last write looks the same as a torn tail and is treated as one.)
// Readers apply the same rule but change nothing.
//
// # Housekeeping
//
// Release deletes, or moves to an archive directory, every segment whose
// records all have an LRSN below a given one (what no recovery can need
// any more); the segment being written is never released.
package rlog
