// Package recovery will hold the peer watcher (pidfd and heartbeat), peer
// recovery of units of work and channels, the recovery logs, fuzzy backups,
// structure recovery and backup scheduling (seed 002). It is empty until
// those issues; the directory exists because the top-level layout is fixed.
// The repair of one dead owner inside one structure is lockfree.Repair.
package recovery
