// Package backup writes and reads fuzzy backups of an application
// structure's persistent messages.
//
// A backup is taken while traffic runs. Its start LRSN is read from the
// group's counter before the scan, after every operation that had logged
// its record but not yet made its effect visible has finished (package
// logbuf's in-flight marks), so every logged operation with a lower LRSN
// is reflected in what the scan sees. Operations after the start may or
// may not be: replay is idempotent (package replay), so recovery is the
// backup, then every log from the start on. Units of work in flight at
// the start have records before it (a put logged at put time, committed
// after the start): the backup also records where the oldest of them
// began (ReplayFrom), and replay reads from there.
//
// # Files
//
// Backups of structure S live in <data dir>/backup/S/, one file per
// backup named by its start LRSN in 16 hex digits with ".bak". A backup is
// written to a temporary name, synced, renamed and the directory synced,
// so a file with the final name is always whole; Latest picks the newest
// that reads back whole. Directories are 0770 and files 0660 whatever the
// umask, and a backup is read only from a file of the group's user or
// Unix group that others may not open (package internal/ownedfs).
//
// # Layout (little-endian)
//
//	header (128 bytes):
//	  0 [4]byte magic "QMBK"     4 u16 version (2; 1 is read too)
//	  6 u16 zero
//	  8 u64 start LRSN          16 i64 time taken, Unix ns
//	 24 u8 structure name length, 25 [48]byte structure name
//	 73 zeros                  80 u64 replay-from LRSN (at most the start:
//	                                  the oldest unit of work in flight)
//	 88 zeros
//	then one record per message, in queue order:
//	  u32 payload length, then a plog put record: flagged committed, or
//	  (version 2) not flagged, with no properties and no body: a place
//	trailer (24 bytes):
//	  u32 0 (no more records), u32 zero, u64 record count,
//	  u64 xxhash64 of everything before the trailer's hash
//
// # Places
//
// A put under syncpoint has its place in the queue from the moment it is
// put; it becomes visible when its unit of work commits. The scan records
// each such put it passes as a place: the message's key, where it stands
// (and so for any put it finds linked at its place but not yet made
// visible, half way through). If the unit of work commits after the backup started, replay takes the
// message from the log and puts it back at that place, among the backup's
// messages, not after them (a producer's later message that committed
// before the scan reached it would otherwise come back first).
package backup
