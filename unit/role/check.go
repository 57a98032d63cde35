package role

import "fmt"

// CheckRecords checks a unit's records as a whole, beyond each record's
// own invariants (Role.Check): every replica in a position is alive
// (alive nil: not checked), every active replica has published its
// progress, no replica has applied an input the primary has not, and the
// sender has sent nothing it has not applied. It returns the problems
// found, each a sentence naming the position. Like the structure
// checker it is exact on a quiet unit only: a replica just killed, whose
// position its member has not vacated yet, or just registered, which has
// not published yet, shows as a problem until that happens.
func CheckRecords(recs Records, alive func(Position) bool) []string {
	r := recs.Role
	if r == nil {
		return []string{"no role record"}
	}
	var out []string
	bad := func(format string, args ...any) { out = append(out, fmt.Sprintf(format, args...)) }
	if err := r.Check(); err != nil {
		bad("%v", err)
		return out
	}
	var primary *Progress
	if r.Primary != None {
		primary = recs.Progress[r.Primary]
	}
	for k := uint8(0); k < MaxReplicas; k++ {
		e, p := r.Pos[k], recs.Progress[k]
		switch e.State {
		case Vacant, Starting:
			continue
		}
		if alive != nil && !alive(e) {
			bad("position %d: its replica (pid %d) is dead and the position is still %v", k, e.Pid, e.State)
			continue
		}
		if e.State != Active {
			continue
		}
		if p == nil {
			bad("position %d: active, and its replica has published no progress record", k)
			continue
		}
		if primary != nil && k != r.Primary && p.Applied > primary.Applied {
			bad("position %d: applied LSN %d, beyond the primary's %d", k, p.Applied, primary.Applied)
		}
		if k == r.Sender && p.LSNOut > p.Applied {
			bad("position %d: the sender's LSN_out %d is beyond its applied LSN %d", k, p.LSNOut, p.Applied)
		}
	}
	return out
}
