// Package vfs is the file layer the persistence code (recovery logs,
// structure backups) writes through, so that tests can put a disk that
// fails under it.
//
// OS is the real thing: files in the operating system, Sync is
// fdatasync(2), SyncDir fsyncs a directory so that a file's creation,
// rename or removal survives a power cut. It creates and opens through
// package internal/ownedfs: directories 0770 and files 0660 whatever the
// umask, no symbolic link followed at the end of a path, and a directory
// or file another user planted refused (the log and backup directories of
// a group are its owner's and its Unix group's only).
//
// Mem is a disk in memory that keeps two states for everything: what the
// program sees, and what would survive a crash (what was synced). Crash
// throws the unsynced state away, optionally keeping a random subset of the
// unsynced 512-byte sectors of every file (a torn write: a disk writes
// sectors in any order, and a crash may land between any two). Names
// follow directory syncs: a file created, renamed or removed since its
// directory's last SyncDir goes back to how it was, and a directory
// created since its parent's last SyncDir disappears with everything in
// it. Until Restart, every
// operation fails: the crashed program's goroutines that still run reach
// nothing. A Fault hook sees every
// operation first and can fail it, write only part of a buffer (a short
// write), or refuse space (a full disk, also reachable through a capacity);
// a sync it fails with ErrSyncedAnyway reaches the disk all the same (after
// a failed fdatasync the data may be there or not).
//
// Space: File.Allocate reserves a range (fallocate(2)); writes there never
// run out of space. Mem counts what files take against its capacity as a
// file system does: bytes written or allocated, not the holes of a file
// grown by Truncate, whose writes need space then; an Allocate that does
// not fit fails whole.
//
// Both implement FS; nothing here interprets file contents.
//
// SyncParent and MkdirDurable are the one way the persistence code makes
// a name durable: after creating, renaming or removing a file whose
// existence matters (a log segment, a backup) it syncs the directory
// holding it, and it creates directories (the data directory, a log's,
// the backups') so that each one's parent is synced after it appears.
package vfs
