// Command chanbench measures a shared sender channel: a group of three
// members (processes: this program re-executed as qmgr) sending through
// channel TO.R over loopback TCP to a group of one, and prints
// "name value unit" lines:
//
//	baseline.tcp.64B, baseline.tcp.4KiB  msgs/s  8-byte-header frames over loopback TCP, one process
//	channel.send.64B, channel.send.4KiB  msgs/s  transmission queue filled, channel started: rate from
//	                                             the first message at the remote queue to the last
//	channel.send.<size>.vs.baseline.tcp.<size>  ratio  median over the rounds of channel / baseline
//	baseline.tcp.bytes                   MB/s    1 MiB writes over loopback TCP, one process
//	channel.send.1MiB.bytes              MB/s    as channel.send, 1 MiB messages, through their own channel
//	                                             and queues in a structure of 1 KiB elements on both
//	                                             sides (CFSTRUCT LARGE, ELEMSIZE(-large-element-size))
//	channel.send.1MiB.ratio              ratio   median over the rounds of channel.send.1MiB.bytes /
//	                                             baseline.tcp.bytes
//	channel.send.1MiB, .mb               msgs/s, MB/s  1 MiB messages through the queues in LARGE (as
//	                                             channel.send.1MiB.bytes), measured in alternating rounds with:
//	channel.send.1MiB.offload, .offload.mb  msgs/s, MB/s  the same through a transmission queue and target
//	                                             in a structure with OFFLOAD(SMDS) OFFLDSZ(64K) on both sides
//	                                             (CFSTRUCT OFF): the sender sends each body from its data set's
//	                                             mapping, the receiver writes it to its own data set (-offload)
//	channel.send.1MiB.offload.ratio      ratio   median over the rounds of offloaded / not offloaded
//	channel.send.<size>.cpu              us/msg  processor time of both groups' members and channel
//	                                             initiators per message moved (least of the rounds)
//	failover.channel.p50.ms, .p99.ms, .max.ms    from SIGKILL of the member running the channel
//	                                             (a producer keeps messages coming, with a connection
//	                                             through each member) to the first message moved by
//	                                             the instance that took it over; measured before
//	                                             CFSTRUCT LARGE exists (with it the figure was about
//	                                             30 ms higher: the killed process's exit tears down
//	                                             one more prefaulted mapping before its death shows)
//
//	go run ./perf/chanbench [-n64 n] [-n4k n] [-n1m n] [-rounds r] [-kills k] [-batchsz n] [-app-size MiB]
//	                        [-app-element-size bytes] [-large-element-size bytes] [-large-size MiB] [-offload=false] [-keep]
//
// Throughput figures are the best of the rounds. Each round measures the
// baseline, then the channel; a ratio is the median of the rounds' ratios,
// so that one lucky baseline round (loopback TCP in one process ranged
// from 3 to 7.6 GB/s between runs) does not move it. The structures are in
// /dev/shm (256 MiB each side by default, and 1 GiB each side for the
// 1 MiB messages: 300 of them, about 100 ms of transfer, so that the
// millisecond the end may be seen late is under 1%) and are removed at
// the end.
package main
