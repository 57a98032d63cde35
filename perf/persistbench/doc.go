// Command persistbench measures persistent messaging: producer processes
// put persistent 64-byte messages through one member, whose recovery log
// makes them durable with group commit. Every figure is printed beside
// baseline.fdatasync.per.s, a 4 KiB write + fdatasync in the same data
// directory measured in the same run, and their ratio.
//
//	persist.put.64B          4 producers, syncpoint, commit every 100
//	persist.put.64B.p1       1 producer,  syncpoint, commit every 100
//	persist.put.64B.p16      16 producers, syncpoint, commit every 100
//	persist.put.nosync.64B   16 producers, outside syncpoint: every put
//	                         waits until durable (group commit shows here)
//	nonpersist.put.64B       4 producers, as persist.put.64B but not
//	                         persistent: what the log costs
//	recovery.replay.records  log records per second replayed (every
//	                         member's log merged, for the structure the
//	                         runs above filled), and .MBps
//	recovery.1GiB.s          seconds to replay a 1 GiB log (-replay-gib)
//	                         of units of ten 64-byte puts, nine in ten of
//	                         whose messages a later unit gets
package main
