package qm

import (
	"fmt"

	"github.com/qmgr/qmgr/defs"
	"github.com/qmgr/qmgr/unit/role"
)

// Divergence of a unit's replica (docs/design/recovery-units.md 5.6): a
// replica that found its state or outputs differ from the primary's sets
// the diverged flag in its progress record and fails stop; the member
// that makes its death transition reads the flag (the record is still the
// dead replica's: its tag is the entry's), records the exit as
// role.ExitDiverged, and logs it here. role.Next counts the divergence:
// the role.DivergeLimit-th within role.DivergeWindow minutes marks the
// unit DIVERGED, and from then on its members start no replica while one
// runs (unitUnreplicated): the unit runs on its primary alone, loudly,
// until STOP and START SERVICE clear the mark.

// unitDiverged logs the death of svc's replica in position k that
// diverged (p: its progress record, nil if gone), and the unit marked
// DIVERGED when eff says this death did it.
func (m *Member) unitDiverged(svc defs.Service, k uint8, p *role.Progress, n *role.Role, eff role.Effect) {
	lsn, out, check, checkLSN := uint64(0), uint64(0), uint64(0), uint64(0)
	if p != nil {
		lsn, out, check, checkLSN = p.DivergedLSN, p.OutHash, p.CheckHash, p.CheckLSN
	}
	m.log.Error("unit replica diverged from the primary: replaced from a survivor's snapshot", "event", "unit_diverged",
		"unit", svc.Name, "pos", k, "lsn", lsn, "out_hash", fmt.Sprintf("%016x", out), "check_lsn", checkLSN,
		"check_hash", fmt.Sprintf("%016x", check), "divergences", n.Divergences, "diverged", n.Diverged)
	if eff&role.EffDiverged != 0 {
		m.log.Error("unit DIVERGED: its replicas diverged too often; no secondary is started until STOP and START SERVICE",
			"event", "unit_service_diverged", "unit", svc.Name, "divergences", n.Divergences, "window_minutes", role.DivergeWindow)
	}
}

// unitUnreplicated: r is marked DIVERGED and has a replica (running or
// starting), so no position is claimed: the unit runs on one replica.
// With none left, one position is claimed again, so that it runs at all.
func unitUnreplicated(r *role.Role) bool {
	if !r.Diverged {
		return false
	}
	for k := range r.Pos {
		if r.Pos[k].State != role.Vacant {
			return true
		}
	}
	return false
}
