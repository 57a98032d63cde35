package role

import "fmt"

// StatusReader reads the status slots a unit's records live in
// (lockfree.Structure is one): slot i copied into dst of StatusSize bytes.
type StatusReader interface {
	ReadStatus(i int, dst []byte) (uint64, error)
	StatusSize() int
}

// Records is what a unit's status slots say at one read: the role record
// and, for each position, the progress record of the replica in it now
// (nil for a vacant position, and for one whose record is missing,
// damaged or still a previous replica's: its tag is not the entry's).
type Records struct {
	Role     *Role
	Progress [MaxReplicas]*Progress
}

// Read reads the role record at slot base and the positions' progress
// records (base+1+k). An error is the role record's (unreadable or
// damaged); a progress record that does not decode is left nil.
func Read(s StatusReader, base int) (Records, error) {
	var out Records
	buf := make([]byte, s.StatusSize())
	if _, err := s.ReadStatus(base, buf); err != nil {
		return out, fmt.Errorf("role record in status slot %d: %w", base, err)
	}
	r, err := Decode(buf)
	if err != nil {
		return out, fmt.Errorf("role record in status slot %d: %w", base, err)
	}
	out.Role = r
	for k := uint8(0); k < MaxReplicas; k++ {
		if r.Pos[k].State == Vacant {
			continue
		}
		if _, err := s.ReadStatus(base+1+int(k), buf); err != nil {
			continue
		}
		if p, err := DecodeProgress(buf); err == nil && p.Tag == r.Pos[k].Tag {
			out.Progress[k] = p
		}
	}
	return out, nil
}
