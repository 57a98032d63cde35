package qm

import (
	"errors"
	"fmt"
	"time"

	"github.com/qmgr/qmgr/crashpoint"
	"github.com/qmgr/qmgr/defs"
	"github.com/qmgr/qmgr/lockfree"
	"github.com/qmgr/qmgr/unit/role"
)

// Recovery units (docs/design/recovery-units.md, section 6): the member's
// part. A replica's death is noticed as any application's is, through the
// pidfd watcher and the recovery of its connection; once recoverConn has
// resolved the replica's unit of work, unitDeaths makes the death
// transition of every unit position that names the connection, by
// compare-and-swap of the unit's role record (role.Next). Two recoverers
// of one death cannot both win: the second reads the entry vacant, or
// naming another tag, and does nothing.

// maxRoleTries bounds the compare-and-swap retries of one transition: the
// record changes only on role events, so a loop this long means something
// rewrites it endlessly.
const maxRoleTries = 1000

// cpUnitRoleCAS: a member made a replica's death transition.
var cpUnitRoleCAS = crashpoint.New("unit.member.rolecas")

// unitDeaths makes the death transition of every position of every
// service whose W connection tag is t, now that t's connection is
// recovered (its last unit of work backed out or committed). It returns
// the transitions made, for tests and the log.
func (m *Member) unitDeaths(t lockfree.OwnerTag) (int, error) {
	var svcs []defs.Service
	if err := m.repo.View(func(tx *defs.Tx) error { var err error; svcs, err = tx.Services("*"); return err }); err != nil {
		return 0, fmt.Errorf("unit deaths of connection slot %d: list services: %w", t.Slot(), err)
	}
	n := 0
	var errs []error
	for _, svc := range svcs {
		done, err := m.unitDeath(svc, uint32(t))
		if err != nil {
			errs = append(errs, fmt.Errorf("SERVICE(%s): %w", svc.Name, err))
		}
		if done {
			n++
		}
	}
	return n, errors.Join(errs...)
}

// unitDeath vacates the position of svc whose W tag is tag, if any, and
// repairs the roles (role.EvDeath). false, nil: no position names tag, or
// another recoverer made the transition first.
func (m *Member) unitDeath(svc defs.Service, tag uint32) (bool, error) {
	o, s, err := m.ownerIn(svc.CFStruct)
	if err != nil {
		return false, fmt.Errorf("structure %s: %w", svc.CFStruct, err)
	}
	if o == nil {
		return false, fmt.Errorf("structure %s: the member has no owner in it", svc.CFStruct)
	}
	before := make([]byte, s.StatusSize())
	for try := 0; try < maxRoleTries; try++ {
		if _, err := s.ReadStatus(svc.StatusBase, before); err != nil {
			return false, fmt.Errorf("read the role record: %w", err)
		}
		r, err := role.Decode(before)
		if err != nil {
			return false, fmt.Errorf("decode the role record: %w", err)
		}
		k := uint8(role.None)
		for j := uint8(0); j < role.MaxReplicas; j++ {
			if r.Pos[j].State != role.Vacant && r.Pos[j].Tag == tag {
				k = j
			}
		}
		if k == role.None {
			return false, nil
		}
		applied := unitApplied(s, svc, r)
		n, eff, err := role.Next(r, role.Event{Kind: role.EvDeath, Pos: k, Tag: tag, Reason: role.ExitDied, Applied: applied, Now: time.Now().UnixNano()})
		if err != nil {
			return false, fmt.Errorf("death of position %d: %w", k, err)
		}
		after, err := n.Encode()
		if err != nil {
			return false, fmt.Errorf("death of position %d: %w", k, err)
		}
		err = o.CompareAndSwapStatus(svc.StatusBase, before, after)
		if errors.Is(err, lockfree.ErrStatusChanged) {
			continue // read it again: the entry may be gone already
		}
		if err != nil {
			return false, fmt.Errorf("death of position %d: %w", k, err)
		}
		cpUnitRoleCAS.Hit()
		m.log.Info("unit replica died", "event", "unit_replica_exited", "unit", svc.Name, "pos", k, "pid", r.Pos[k].Pid,
			"epoch", n.Epoch, "primary", int(n.Primary), "sender", int(n.Sender))
		if eff&role.EffPromoted != 0 {
			m.log.Info("unit primary promoted", "event", "unit_promoted", "unit", svc.Name, "from", k, "to", int(n.Primary), "epoch", n.Epoch)
		}
		return true, nil
	}
	return false, fmt.Errorf("death of the replica of tag %d: the role record keeps changing", tag)
}

// unitApplied is each position's applied LSN, from its progress record
// when that names the position's current tag (else 0).
func unitApplied(s *lockfree.Structure, svc defs.Service, r *role.Role) (a [role.MaxReplicas]uint64) {
	buf := make([]byte, s.StatusSize())
	for k := 0; k < role.MaxReplicas; k++ {
		if _, err := s.ReadStatus(svc.StatusBase+1+k, buf); err != nil {
			continue
		}
		if p, err := role.DecodeProgress(buf); err == nil && p.Tag == r.Pos[k].Tag {
			a[k] = p.Applied
		}
	}
	return a
}
