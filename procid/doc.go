// Package procid identifies a process by its pid together with its start
// time (field 22 of /proc/PID/stat, in clock ticks since boot), so that a pid
// the kernel reused for another process is never mistaken for the process
// that used to have it. Signal sends a signal to exactly the process an ID
// names, through a pidfd.
//
// Watcher learns of a process's exit at once: it holds a pidfd
// (pidfd_open(2)) per watched process and polls them together, so a death
// is seen within the poll's wake-up, not at the next heartbeat. A pid is
// always watched together with the start time recorded for it, so a pid the
// kernel reused between reading it and opening the pidfd is reported as dead
// rather than taken for the old process.
//
// The watcher lives here, beside ID and Alive, because this package is where
// a process's life and death are modelled: a watch is only as sound as the
// identity it is given, and Watcher decides that a process is gone with the
// same Alive every other check of the project uses. It knows nothing of what
// the dead leave behind; recovering that is the business of package qm (a
// dead member's connections and structures) and lockfree.Repair (one dead
// owner in one structure).
package procid
