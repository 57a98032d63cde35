// Package crashpoint marks the steps of multi-step operations on shared
// memory so tests can kill a process with SIGKILL at exactly that step and
// then prove that repair leaves nothing lost, duplicated or leaked.
//
// A point is declared once at package level and hit on the code path:
//
//	var cpLinked = crashpoint.New("lockfree.put.linked")
//	...
//	cpLinked.Hit()
//
// Points are disarmed unless the environment variable QMGR_CRASHPOINT is set
// when the process starts, so a Hit costs one predictable branch on a
// package variable. QMGR_CRASHPOINT=name:n makes the n-th hit (default 1) of
// the named point SIGKILL the process at once; QMGR_CRASHPOINT=name:n:stop
// makes it SIGSTOP the process instead (a process stalled in the middle of a
// step until it gets SIGCONT, then going on as if nothing happened).
// QMGR_CRASHPOINT=name:n:sleep:d makes the goroutine at the n-th hit
// sleep for the duration d (default 1s) and go on: a slow step, such as a
// disk that takes seconds to sync, while the rest of the process runs.
// QMGR_CRASHPOINT=name:n:fail:k makes hits n to n+k-1 (k default 1) of a
// point checked with Fail report a failure instead (fault injection: the
// caller returns an error as if the resource were unavailable).
//
// QMGR_CRASHPOINT_ONCE=file makes the point act in one process only, the
// first to reach it, which creates the file (O_EXCL); every other process
// with the same environment (a restarted child, the other members of a
// group) passes. Tests learn from the file that the point was reached.
//
// QMGR_CRASHPOINT=count makes every hit count, and Counts reports them (tests
// use it to learn which points a workload reaches). All lists every declared
// point.
package crashpoint
