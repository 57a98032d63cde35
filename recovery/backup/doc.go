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
// A 128-byte header (magic "QMBK", version 2 (1 is read too), start LRSN,
// time taken, structure name, replay-from LRSN), then one record per
// message, in queue order: a u32 payload length, then a plog put record,
// flagged committed, or (version 2) not flagged, with no properties and
// no body: a place. Then a 24-byte trailer: u32 0 (no more records), the
// record count and an xxhash64 of everything before it. The header and
// the trailer are tables directly above their offset constants in
// backup.go (TestLayoutTables checks them).
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
