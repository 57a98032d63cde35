package metrics

import (
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/qmgr/qmgr/defs"
	"github.com/qmgr/qmgr/unit/role"
)

// collectUnits emits every recovery unit's figures from its role and
// progress records (role.Read). A unit whose structure is not attached
// or whose role record does not read is left out, and the part fails.
func (c *collector) collectUnits(e emitter, now time.Time) error {
	var svcs []defs.Service
	if err := c.src.Repo().View(func(tx *defs.Tx) error { var err error; svcs, err = tx.Services("*"); return err }); err != nil {
		return err
	}
	var errs []error
	for _, svc := range svcs {
		s, err := c.src.Group().Structure(svc.CFStruct, false)
		if err != nil {
			errs = append(errs, fmt.Errorf("SERVICE(%s): %w", svc.Name, err))
			continue
		}
		recs, err := role.Read(s, svc.StatusBase)
		if err != nil {
			errs = append(errs, fmt.Errorf("SERVICE(%s): %w", svc.Name, err))
			continue
		}
		emitUnit(e, svc.Name, recs, now)
	}
	return errors.Join(errs...)
}

// emitUnit emits one unit's figures: the unit's, then each position's
// below REPLICAS (and any beyond it that is not vacant).
func emitUnit(e emitter, name string, recs role.Records, now time.Time) {
	r := recs.Role
	e.stateSet(unitState, role.UnitStateNames, r.State.String(), name)
	e.gauge(unitEpoch, float64(r.Epoch), name)
	e.gauge(unitGeneration, float64(r.Gen), name)
	e.gauge(unitReplicas, float64(r.Replicas), name)
	e.gauge(unitDiverged, b2f(r.Diverged), name)
	e.gauge(unitDivergence, float64(r.Divergences), name)
	for k := uint8(0); k < role.MaxReplicas; k++ {
		entry := r.Pos[k]
		if k >= r.Replicas && entry.State == role.Vacant {
			continue
		}
		pos := strconv.Itoa(int(k))
		e.stateSet(unitRole, role.RoleNames, r.RoleName(k), name, pos)
		e.counter(unitRestarts, float64(entry.Restarts), name, pos)
		if entry.State == role.Vacant {
			continue
		}
		p := recs.Progress[k]
		e.stateSet(unitStatus, role.StatusNames, role.StatusName(entry, p), name, pos)
		if p == nil {
			continue
		}
		e.gauge(unitLogged, float64(p.Received), name, pos)
		e.gauge(unitApplied, float64(p.Applied), name, pos)
		e.gauge(unitSent, float64(p.LSNOut), name, pos)
		e.gauge(unitResendIn, float64(p.ResendInputs), name, pos)
		e.gauge(unitResendB, float64(p.ResendBytes), name, pos)
		if p.Heartbeat > 0 {
			e.gauge(unitBeatAge, max(now.Sub(time.Unix(0, p.Heartbeat)).Seconds(), 0), name, pos)
		}
	}
}
