package lockfree

import "sync/atomic"

var fenceWord atomic.Uint64

// fullFence orders every memory access before it before every access after
// it. Seqlock-style readers (status records, browse copies) need it between
// copying with plain loads and rechecking the version: an acquire load
// orders only what follows it, and on arm64 the copy's loads could
// otherwise be satisfied after the recheck. An atomic read-modify-write is
// a full barrier on amd64 (LOCK XADD) and arm64 (LDADDAL). These readers
// are off the data path, so sharing one word costs nothing that matters.
func fullFence() { fenceWord.Add(0) }
