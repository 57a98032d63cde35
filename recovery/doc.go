// Package recovery holds the persistence of messages, in its subpackages:
// rlog (a member's recovery log), logbuf (handing log records from
// applications to their member), plog (the records), backup (fuzzy backups)
// and replay (rebuilding a structure). It has no code of its own.
//
// Deaths are noticed elsewhere: procid.Watcher learns of a process's exit
// through a pidfd. The repair of one dead owner inside one structure is
// lockfree.Repair; the recovery of a dead member's connections across the
// group's structures, and the backup and recovery of structures, are in
// package qm.
package recovery
