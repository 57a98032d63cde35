package role

import (
	"bytes"
	"errors"
	"testing"
)

func FuzzRoleRecord(f *testing.F) {
	r, _ := New("LEDGER", 3, true, Early, true)
	b, _ := r.Encode()
	f.Add(b)
	f.Add(b[:20])
	r.Divergences, r.DivWindow, r.Diverged = 3, 250, true
	d, _ := r.Encode()
	f.Add(d)
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := Decode(b)
		if err != nil {
			return
		}
		again, err := r.Encode()
		if err != nil {
			t.Fatalf("accepted a record it cannot encode: %v", err)
		}
		if !bytes.Equal(again, b) {
			t.Fatalf("round trip changed the bytes")
		}
	})
}

func FuzzProgressRecord(f *testing.F) {
	p := &Progress{Position: 1, Received: 5, Applied: 4, XferJoiner: None}
	b, _ := p.Encode()
	f.Add(b)
	f.Add(make([]byte, RecordSize))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := DecodeProgress(b)
		if err != nil {
			return
		}
		again, err := p.Encode()
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("round trip: %v", err)
		}
	})
}

// FuzzTransitions drives a unit's role record through random events
// (claims, registers, restores, hand-overs, deaths with random applied
// LSNs, stale events naming old tags and claims, stop and start) and
// checks after each: the record keeps every invariant and round-trips,
// epoch and generation never go back, a death never leaves the unit
// without a primary while an active replica remains, and the same death
// applied twice (a second recoverer) is stale.
func FuzzTransitions(f *testing.F) {
	f.Add([]byte{1, 0, 2, 0, 1, 1, 2, 1, 3, 1, 4, 1, 5, 0})
	f.Add([]byte{3, 1, 1, 0, 2, 0, 1, 2, 2, 2, 3, 2, 5, 2, 5, 0, 1, 2, 2, 2})
	f.Add([]byte{0, 0, 1, 0, 2, 0, 6, 0, 5, 0, 7, 0, 8, 0, 1, 0, 2, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) == 0 {
			return
		}
		r, err := New("FUZZ", 1+int(b[0]%4), b[0]&4 != 0, Logging(1+b[0]>>3%3), true)
		if err != nil {
			t.Fatal(err)
		}
		b = b[1:]
		var claims, tags [MaxReplicas]uint64 // the last claim and tag of each position, and older ones
		next := uint64(1)
		for len(b) >= 2 {
			op, arg := b[0], b[1]
			b = b[2:]
			k := arg % MaxReplicas
			ev := Event{Pos: k, Now: int64(next)}
			for i := range ev.Applied {
				ev.Applied[i] = uint64(arg>>2) * uint64(i+1) % 7
			}
			stale := arg&0x80 != 0 // name an older claim or tag
			switch op % 9 {
			case 0, 1:
				ev.Kind, ev.Claim, ev.Peer, ev.Incarnation = EvClaim, next, arg%3, 1
				claims[k] = next
			case 2:
				ev.Kind, ev.Claim, ev.Tag, ev.Pid = EvRegister, claims[k], uint32(next), 100
				tags[k] = next
			case 3:
				ev.Kind, ev.Tag, ev.SnapLSN = EvRestored, uint32(tags[k]), 3
			case 4:
				ev.Kind, ev.Tag, ev.LSNOut = EvHandOver, uint32(tags[k]), uint64(arg%5)
			case 5, 6:
				ev.Kind, ev.Tag, ev.Claim, ev.Reason = EvDeath, uint32(tags[k]), claims[k], ExitDied
				if op%9 == 6 {
					// A divergence: counted by the policy, minutes apart
					// by arg.
					ev.Reason, ev.Now = ExitDiverged, int64(next)*int64(arg%16)*60e9
				}
			case 7:
				ev.Kind = EvStop
				if arg&1 != 0 {
					ev.Kind = EvStart
				}
			case 8:
				ev.Kind, ev.HaveResting = EvStopped, arg&1 != 0
			}
			if stale {
				ev.Tag--
				ev.Claim--
			}
			next++
			n, _, err := Next(r, ev)
			if err != nil {
				if !errors.Is(err, ErrStale) && !errors.Is(err, ErrNotAllowed) {
					t.Fatalf("%v: unexpected error %v", ev.Kind, err)
				}
				continue
			}
			enc, err := n.Encode()
			if err != nil {
				t.Fatalf("%v gave a record that does not encode: %v", ev.Kind, err)
			}
			if d, err := Decode(enc); err != nil {
				t.Fatalf("%v: decode: %v", ev.Kind, err)
			} else if again, _ := d.Encode(); !bytes.Equal(again, enc) {
				t.Fatalf("%v: round trip", ev.Kind)
			}
			if n.Epoch < r.Epoch || n.Gen < r.Gen {
				t.Fatalf("%v: epoch %d->%d gen %d->%d", ev.Kind, r.Epoch, n.Epoch, r.Gen, n.Gen)
			}
			if ev.Kind == EvDeath {
				if n.Primary == None && len(n.ActiveSecondaries()) > 0 {
					t.Fatalf("death left active replicas without a primary: %+v", n)
				}
				if r.Primary != ev.Pos && r.Primary != None && n.Primary != r.Primary {
					t.Fatalf("the death of %d changed the primary %d -> %d", ev.Pos, r.Primary, n.Primary)
				}
				if n.Fanout && r.Primary == ev.Pos && n.Primary != None {
					for _, c := range n.ActiveSecondaries() {
						if ev.Applied[c] > ev.Applied[n.Primary] {
							t.Fatalf("fan-out promoted %d (applied %d) over %d (applied %d)", n.Primary, ev.Applied[n.Primary], c, ev.Applied[c])
						}
					}
				}
				if _, _, err := Next(n, ev); !errors.Is(err, ErrStale) {
					t.Fatalf("the same death twice: %v", err)
				}
			}
			r = n
		}
	})
}
