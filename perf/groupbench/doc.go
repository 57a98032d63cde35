// Command groupbench measures a queue-sharing group of three members
// running as processes (this program, re-executed as qmgr), with
// applications as separate processes, and prints "name value unit" lines:
//
//	group.putget.same.64B                  msgs/s  producer and consumer through QM1
//	group.putget.cross.64B                 msgs/s  producer through QM1, consumer through QM2
//	group.syncpoint.putget.64B.commit1     msgs/s  both committing every message
//	group.syncpoint.putget.64B.commit100   msgs/s  both committing every 100
//	group.recovery.uow.ms                  ms      median, from SIGKILL of a member whose
//	                                               application holds a unit of work to a
//	                                               getter through a survivor getting its messages
//	group.recovery.uow.max.ms              ms      the slowest of those runs
//
// and the ratios to group.putget.same.64B, the baseline of the same run.
//
//	go run ./perf/groupbench [-n messages] [-rounds r] [-recoveries k]
package main
