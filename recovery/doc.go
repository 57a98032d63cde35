// Package recovery notices deaths and recovers what the dead left behind.
//
// Watcher learns of a process's exit at once: it holds a pidfd
// (pidfd_open(2)) per watched process and polls them together, so a death
// is seen within the poll's wake-up, not at the next heartbeat. A pid is
// always watched together with the process start time recorded for it
// (procid), so a pid the kernel reused between reading it and opening the
// pidfd is reported as dead rather than taken for the old process.
//
// The persistence of messages lives in the subpackages: rlog (a member's
// recovery log), logbuf (handing log records from applications to their
// member), plog (the records), backup (fuzzy backups) and replay
// (rebuilding a structure). The repair of one dead owner inside one
// structure is lockfree.Repair; the recovery of a dead member's
// connections across the group's structures, and the backup and recovery
// of structures, are in package qm.
package recovery
