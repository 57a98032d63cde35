package lockfree

import "fmt"

// Words shared by entries, data elements and segments:
//
//	gen(24) << 40 | kind(8) << 32 | value(32)
//
// gen counts reuses (it changes whenever the thing is freed after use), kind
// is the state, value an owner tag, an entry index or a queue/priority pair.
func mkWord(gen uint32, kind uint8, val uint32) uint64 {
	return uint64(gen&genMask)<<40 | uint64(kind)<<32 | uint64(val)
}
func wGen(w uint64) uint32    { return uint32(w>>40) & genMask }
func wKind(w uint64) uint8    { return uint8(w >> 32) }
func wVal(w uint64) uint32    { return uint32(w) }
func nextGen(g uint32) uint32 { return (g + 1) & genMask }

// Entry states (kind of an entry's ctl word).
const (
	stFree  uint8 = 0 // in the shared pool
	stAlloc uint8 = 1 // owned by value (an owner tag): being filled
	stPutU  uint8 = 2 // linked, put under syncpoint by value, invisible
	stAvail uint8 = 3 // linked, visible, value 0
	stHeld  uint8 = 4 // linked, claimed by value's unit of work
	stDead  uint8 = 5 // linked or not, being freed by value (consumed or backed out)
	stView  uint8 = 6 // linked, held by value outside any unit of work (a zero-copy view got without syncpoint)
	// stCached: in value's cache, not in use. Its owner claims it
	// (cached -> alloc) before filling it, and any owner that finds the
	// pool low may take it (cached(value) -> cached(itself)).
	stCached uint8 = 7
	stLast         = stCached // the highest legal state
)

var stateNames = [...]string{"free", "alloc", "putu", "avail", "held", "dead", "view", "cached"}

func stateName(k uint8) string {
	if int(k) < len(stateNames) {
		return stateNames[k]
	}
	return fmt.Sprintf("state(%d)", k)
}

// Data element and segment kinds.
const (
	ekFree  uint8 = 0
	ekOwned uint8 = 1 // value: owner tag; in its cache (any owner may take it when the pool is low)
	ekMsg   uint8 = 2 // value: entry index
	skFree  uint8 = 0
	skOwned uint8 = 1 // value: owner tag; in its cache (as ekOwned)
	skLink  uint8 = 2 // value: queue<<8 | priority
)

// An entry reference, as stored in segment slots and descriptors:
// (index+1) << 32 | gen. Zero is "none".
type ref uint64

func mkRef(idx, gen uint32) ref { return ref(uint64(idx+1)<<32 | uint64(gen&genMask)) }
func (r ref) idx() uint32       { return uint32(r>>32) - 1 }
func (r ref) gen() uint32       { return uint32(r) & genMask }
func (r ref) nil() bool         { return r>>32 == 0 }

// OwnerTag names an owner: slot << 16 | incarnation. The incarnation is never
// zero, so neither is a tag.
type OwnerTag uint32

// Slot is the owner slot index.
func (t OwnerTag) Slot() int { return int(t >> 16) }

// Incarnation is the slot's incarnation when the owner registered.
func (t OwnerTag) Incarnation() uint16 { return uint16(t) }

func (t OwnerTag) String() string { return fmt.Sprintf("owner(%d#%d)", t.Slot(), t.Incarnation()) }

func mkTag(slot int, inc uint16) OwnerTag { return OwnerTag(uint32(slot)<<16 | uint32(inc)) }
