// Command smdsbench measures messages whose bodies go to shared message
// data sets (issue 19, docs/design/smds.md), one application connected
// through one member, each figure beside its baselines in the same run:
//
//	smds.putget.64KiB, .1MiB          messages/s and MB/s of put then get
//	                                  (outside syncpoint, non-persistent,
//	                                  batches of 16) through a structure
//	                                  with OFFLOAD(SMDS) OFFLDSZ(16K)
//	cf.putget.64KiB, .1MiB            the same through a structure of
//	                                  64 KiB data elements, bodies in the CF
//	smds.putget.*.vs.cf               their ratio
//	raw.writeread.*                   MB/s of pwrite then pread of the same
//	                                  bytes in a file of the data directory
//	                                  (the limit), and smds.putget.*.vs.raw
//	smds.cache.hit.get.1MiB           us per browse of a 1 MiB offloaded
//	                                  message found in the read cache,
//	smds.cache.miss.get.1MiB          the same read from the data set file
//	                                  (page cache), and their ratio
//
// The channel figure with an offloaded queue, channel.send.1MiB.offload
// and its ratio to the same through the CF, is perf/chanbench's
// (scripts/bench.sh channel).
package main
