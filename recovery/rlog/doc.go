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
// it syncs, new records gather for the next batch. Every record settles
// once: durable (Wait returns nil), or not (an error wrapping ErrFailed:
// it is not durable and never will be; or ErrUncertain: it may be).
//
// # Failures: a full disk, a failed write or sync
//
// Space is reserved a segment at a time (fallocate, through vfs), when the
// segment is prepared, ahead of need: a full disk shows as a reservation
// that fails, never as a write that fails half way through a segment.
// State.ReserveErr says so while the log still writes into the current
// segment; when that one is full and no next segment can be had, the batch
// fails.
//
// After a failed fdatasync the bytes written may or may not be on disk,
// and may reach it later (the kernel writes dirty pages back by itself):
// the file cannot be trusted after the last point known durable. So on
// any failure the writer seals the segment off at that point (off: the
// end of the last write that was synced) before it answers anyone: it
// makes the next segment current, writes the point into that segment's
// header (the seal) and syncs it. Readers and recovery read a segment
// only up to the seal its successor carries, so whatever the failed write
// left after it is never read as records, whether or not it reached the
// disk; the writer never writes to a sealed segment again. Then:
//
//   - the records of the failed write get ErrFailed when the seal is
//     durable, ErrUncertain when it could not be made (the disk refuses
//     every write): a crash before a later seal works may leave them in
//     the log, and replay would then apply them, so their writers are not
//     told they failed (package logbuf makes a writer told ErrUncertain
//     treat its work as of unknown outcome);
//   - every other record waiting, never written, gets ErrFailed;
//   - records already durable stay durable (a batch that crossed into a
//     new segment may be part durable: records settle one by one, by
//     ticket).
//
// A record is never reported durable after it was reported failed: a
// ticket settles once (failed tickets are kept in ranges that Wait and
// Outcome look at first). Nor does replay see a record whose writer was
// told it failed: it is behind a durable seal. A record that must not
// outlive another (a commit record after its unit of work's put) is
// appended with AppendAfter: refused when that one failed; and while that
// one waits, a failure of its write fails every record waiting, this one
// included.
//
// While the seal cannot be made (no space for a new segment, syncs that
// fail), the log is failed: Append fails at once with ErrFailed wrapping
// the cause (ENOSPC, EIO, ...), and the writer tries to seal again every
// RetryInterval. Once a seal works the log writes again, by itself. State
// and OnState tell whether the log is failed, since when and why, and how
// often it failed. What is not covered: a process that dies while the log
// is failed leaves the records of the failed write in the tail segment,
// unsealed (they were reported uncertain); a disk that loses data it
// reported synced is not a failure the log can see.
//
// # Files
//
// The log of a member lives in its own directory, one file per segment,
// named by the segment's sequence number in 16 hex digits with ".seg"
// (0000000000000001.seg, ...). A segment is created at its full size
// with its space reserved (fallocate; a sparse file where the file system
// cannot reserve) and its header, and synced, with its name (the
// directory synced), before the first record goes in, by a goroutine that
// prepares the next segment while the current one fills, so appending
// never grows a file. A write that reaches past the
// part of the segment written so far first writes the next MiB with
// zeros, so the file system allocates blocks once per MiB rather than at
// every sync. A record never spans segments.
//
// A segment starts with a 64-byte header (magic "QMRL", format version,
// sequence number, size, member name, seal, checksum); records follow
// from offset 64, each 8-byte aligned: a 32-byte header (payload length,
// type, flags, LRSN, write number, checksum), then the payload padded
// with zeros to a multiple of 8. Both headers are tables directly above
// their offset constants in format.go (TestLayoutTables checks them).
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
// Readers apply the same rule but change nothing. A segment that seals
// its predecessor stays when it holds no record (it is the tail then), and
// an earlier segment sealed before its first record may hold none.
//
// # Housekeeping
//
// Release deletes, or moves to an archive directory, every segment whose
// records all have an LRSN below a given one (what no recovery can need
// any more); the segment being written is never released. (An archived
// segment whose seal is in a segment still in the log directory is read
// whole by a reader of the archive alone.)
//
// Fault injection (package crashpoint): rlog.reserve makes a reservation
// fail with ENOSPC, rlog.sync a sync with EIO.
package rlog
