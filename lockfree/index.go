package lockfree

import (
	"encoding/binary"
	"sync/atomic"

	"github.com/cespare/xxhash/v2"
)

// The id index is one open-addressed table per structure. A key is the
// xxhash of (queue, kind, id); a slot holds (entry index+1) << 32 |
// gen << 8 | the key's top byte. Slots are never deleted: a slot whose entry
// changed gen (the message died) or is free is stale, and inserts reuse
// stale slots by CAS. Lookups verify queue and id in the entry itself, so a
// stale or colliding slot is never taken for a match. A key whose window of
// indexWindow slots is full of live entries is not indexed and the queue is
// marked so that gets by id on it fall back to scanning.

const (
	indexWindow        = 16
	flagUnindexed      = 1 << 2
	kindMsgID     byte = 1
	kindCorrelID  byte = 2
)

func indexKey(q uint32, kind byte, id []byte) uint64 {
	var b [indexKeySize]byte
	binary.LittleEndian.PutUint32(b[ikQueue:], q)
	b[ikKind] = kind
	copy(b[ikID:], id)
	return xxhash.Sum64(b[:])
}

func mkIndexSlot(e, g uint32, key uint64) uint64 {
	return uint64(e+1)<<32 | uint64(g&genMask)<<8 | key>>56
}

// indexStale reports whether index slot w no longer names a live message.
func (s *Structure) indexStale(w uint64) bool {
	if w == 0 {
		return true
	}
	e := uint32(w>>32) - 1
	if e >= uint32(s.p.Entries) {
		return true
	}
	c := s.load(s.entryOff(e) + enCtl)
	return wGen(c) != uint32(w>>8)&genMask || wKind(c) == stFree || wKind(c) == stDead || wKind(c) == stCached
}

// indexPut indexes entry e (gen g) of queue q under the kinds flags asks for.
func (s *Structure) indexPut(q uint32, flags uint64, e, g uint32) {
	eo := s.entryOff(e)
	if flags&flagIndexMsgID != 0 && !s.indexInsert(indexKey(q, kindMsgID, s.mem.Bytes(eo+enMsgID, idBytes)), e, g) {
		atomic.OrUint64(s.u64(s.queueOff(q)+qFlags), flagUnindexed)
	}
	if flags&flagIndexCorrelID != 0 && !s.indexInsert(indexKey(q, kindCorrelID, s.mem.Bytes(eo+enCorrelID, idBytes)), e, g) {
		atomic.OrUint64(s.u64(s.queueOff(q)+qFlags), flagUnindexed)
	}
}

func (s *Structure) indexInsert(key uint64, e, g uint32) bool {
	n := uint64(s.p.IndexSlots)
	nw := mkIndexSlot(e, g, key)
	for k := uint64(0); k < indexWindow; k++ {
		off := s.l.index + ((key+k)&(n-1))*8
		w := s.load(off)
		if s.indexStale(w) && s.cas(off, w, nw) {
			return true
		}
	}
	return false
}

// claimIndexed serves a get by id through the index when the queue keeps
// one for that id. used is false when the index does not apply.
func (o *Owner) claimIndexed(q uint32, m *matcher, mode claimMode, now *int64) (c claimed, ok, used bool, err error) {
	s := o.s
	f := s.load(s.queueOff(q) + qFlags)
	if f&flagUnindexed != 0 {
		return c, false, false, nil
	}
	var key uint64
	switch {
	case m.msgID != nil && f&flagIndexMsgID != 0:
		key = indexKey(q, kindMsgID, m.msgID[:])
	case m.correlID != nil && f&flagIndexCorrelID != 0:
		key = indexKey(q, kindCorrelID, m.correlID[:])
	default:
		return c, false, false, nil
	}
	n := uint64(s.p.IndexSlots)
	for attempt := 0; attempt < maxRetries; attempt++ {
		var best ref
		var bestW, bestPos uint64
		bestPrio := -1
		for k := uint64(0); k < indexWindow; k++ {
			w := s.load(s.l.index + ((key+k)&(n-1))*8)
			if w == 0 || byte(w) != byte(key>>56) {
				continue
			}
			r := mkRef(uint32(w>>32)-1, uint32(w>>8)&genMask)
			if r.idx() >= uint32(s.p.Entries) {
				continue
			}
			eo := s.entryOff(r.idx())
			cw := s.load(eo + enCtl)
			if wGen(cw) != r.gen() || wKind(cw) != stAvail {
				continue
			}
			qw := s.load(eo + enQueue)
			if uint32(qw)&0xffff != q || !s.entryMatches(eo, m) {
				continue
			}
			if exp := int64(s.load(eo + enExpiry)); exp != 0 {
				if *now == 0 {
					*now = coarseNow()
				}
				if exp <= *now {
					o.expire(r, cw, q)
					continue
				}
			}
			prio, pos := int(qw>>16)&0xff, s.load(eo+enPos)
			if prio >= Priorities {
				continue // corrupt: it names no sublog
			}
			if prio > bestPrio || prio == bestPrio && pos < bestPos {
				best, bestW, bestPos, bestPrio = r, cw, pos, prio
			}
		}
		if bestPrio < 0 {
			return c, false, true, nil
		}
		if took, ok := o.tryClaim(best, bestW, q, mode); ok {
			return claimed{idx: best.idx(), gen: best.gen(), q: q, prio: bestPrio, pos: bestPos, mode: took}, true, true, nil
		}
	}
	return c, false, true, errCorrupt(s, "index lookup on queue %d does not settle", q)
}
