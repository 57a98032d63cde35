package role

import (
	"encoding/binary"

	"github.com/cespare/xxhash/v2"
)

// Place chooses the member that claims vacant position pos of r first
// (design 6.3): among members (the peer slots of the active members), the
// one hosting fewest non-vacant positions of the unit; ties go to the
// lowest xxhash64 of (unit, position, peer), so that every member computes
// the same choice without talking. ok is false when members is empty.
// The others claim only after a delay (the chosen one may be gone); the
// compare-and-swap decides.
func Place(r *Role, pos uint8, members []uint8) (peer uint8, ok bool) {
	var hosted [256]int
	for k := range r.Pos {
		if r.Pos[k].State != Vacant {
			hosted[r.Pos[k].Peer]++
		}
	}
	var bestKey uint64
	for _, m := range members {
		key := tieKey(r.Name, pos, m)
		if !ok || hosted[m] < hosted[peer] || (hosted[m] == hosted[peer] && (key < bestKey || (key == bestKey && m < peer))) {
			peer, bestKey, ok = m, key, true
		}
	}
	return peer, ok
}

func tieKey(unit string, pos, peer uint8) uint64 {
	b := make([]byte, 0, len(unit)+3)
	b = append(b, unit...)
	b = append(b, 0, pos, peer)
	return xxhash.Sum64(binary.LittleEndian.AppendUint16(b, 0))
}
