// Package groupproc runs a queue-sharing group whose members are child
// processes: the cli tests, the demos and the benchmarks in perf start
// their groups through it.
//
// A Group starts members ("qmgr start" with the group's flags,
// group.Config.Args), waits until each is active in the peer table, kills
// (SIGKILL) and restarts them, runs MQSC commands through a member, and
// keeps each member's output in a log file of its own (<Dir>/<LogPrefix><member>.log,
// appended across restarts) that DumpLogs writes out when something went
// wrong. Every member gets SysProcAttr.Pdeathsig=SIGKILL, so it never
// outlives the process that started it, and is reaped by a goroutine of
// its own, so Wait and Kill may be called from anywhere, more than once.
//
// How qmgr is run is the Group's Command: by default this program
// re-executed (a program whose main hands "start", "chinit" and
// "amqp-listener" to cli.Main); a test binary runs itself in a testproc
// role instead.
package groupproc
