// Command cfbench measures the coupling facility against baselines measured
// in the same run, and prints one line per figure: "name value unit".
//
//	go run ./perf/cfbench [-n messages] [-rounds r]
//
// Figures (see scripts/bench.sh, area cf):
//
//	cf.putget.1to1.64B            msgs/s  one producer process -> one consumer process
//	cf.putget.2to2.64B            msgs/s  two producers -> two consumers
//	cf.putget.1to1.64B.batch64    msgs/s  PutBatch/GetBatch of 64
//	cf.putget.2to2.64B.batch64    msgs/s
//	cf.pingpong.spin.p50.ns       round trip, getters spinning
//	cf.pingpong.spin.p99.ns
//	cf.pingpong.futex.p50.ns      round trip, getters sleeping on the futex
//	cf.pingpong.futex.p99.ns
//	baseline.gochan.64B           msgs/s  a Go channel inside one process
//	baseline.unixsock.64B         msgs/s  a unix-domain socket between two processes
//	baseline.shm.pingpong.p50.ns  a bare cache line bounced between two processes
//
// and the ratios of the CF figures to their baselines. Each figure is the
// best of -rounds runs (the machines are noisy; the best run is the least
// disturbed one).
package main
