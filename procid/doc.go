// Package procid identifies a process by its pid together with its start
// time (field 22 of /proc/PID/stat, in clock ticks since boot), so that a pid
// the kernel reused for another process is never mistaken for the process
// that used to have it. Signal sends a signal to exactly the process an ID
// names, through a pidfd.
package procid
