package mqsc

import (
	"fmt"

	"github.com/qmgr/qmgr/defs"
	"github.com/qmgr/qmgr/unit/role"
)

// DISPLAY SVSTATUS(name): one result per position of each matching
// service (those below REPLICAS, and any beyond that is not vacant), from
// its role record and progress records (docs/design/recovery-units.md,
// section 9). LOGGED is the progress record's received LSN (the primary:
// the last input it logged), PROCESSED its applied LSN, SENT the LSN_out
// it last saw, RESENDQ the inputs whose outputs it holds unsent; the
// progress values are shown only while the record is the current
// replica's (its tag is the entry's). UNITSTATE is RUNNING, STOPPING,
// STOPPED, or DIVERGED: running, but its replicas diverged too often and
// no secondary is started until STOP and START SERVICE (design 5.6).
// RESTING(YES): stopped with a resting snapshot, which START SERVICE
// restores (NO: a START begins a new generation unless the unit never
// ran).

// svstatusObj is one position of a unit.
type svstatusObj struct {
	svc  defs.Service
	r    *role.Role
	pos  uint8
	qmgr string
	p    *role.Progress // nil: none of the current replica
}

// progressAttr is a value of the position's progress record (0 when it
// has none).
func progressAttr(name string, v func(p *role.Progress) uint64) attr[svstatusObj] {
	return attr[svstatusObj]{name: name, show: func(o *svstatusObj) any {
		if o.p == nil {
			return int64(0)
		}
		return int64(v(o.p))
	}}
}

var svstatusTable = table[svstatusObj]{
	typ: "SVSTATUS", header: "Display service status details.", defaultAll: true, notFound: notFoundAs("SERVICE"),
	attrs: []attr[svstatusObj]{
		{name: "SERVICE", ident: true, show: func(o *svstatusObj) any { return o.svc.Name }},
		{name: "POSITION", ident: true, show: func(o *svstatusObj) any { return int64(o.pos) }},
		{name: "ROLE", show: func(o *svstatusObj) any { return o.r.RoleName(o.pos) }},
		{name: "SENDER", show: func(o *svstatusObj) any {
			if o.r.Sender == o.pos {
				return "YES"
			}
			return "NO"
		}},
		{name: "QMNAME", show: func(o *svstatusObj) any { return o.qmgr }},
		{name: "PID", show: func(o *svstatusObj) any { return int64(o.r.Pos[o.pos].Pid) }},
		progressAttr("LOGGED", func(p *role.Progress) uint64 { return p.Received }),
		progressAttr("PROCESSED", func(p *role.Progress) uint64 { return p.Applied }),
		progressAttr("SENT", func(p *role.Progress) uint64 { return p.LSNOut }),
		progressAttr("RESENDQ", func(p *role.Progress) uint64 { return p.ResendInputs }),
		{name: "STATUS", show: func(o *svstatusObj) any { return role.StatusName(o.r.Pos[o.pos], o.p) }},
		{name: "RESTARTS", show: func(o *svstatusObj) any { return int64(o.r.Pos[o.pos].Restarts) }},
		{name: "EPOCH", show: func(o *svstatusObj) any { return int64(o.r.Epoch) }},
		{name: "GENERATION", show: func(o *svstatusObj) any { return int64(o.r.Gen) }},
		{name: "UNITSTATE", show: func(o *svstatusObj) any {
			if o.r.State == role.Running && o.r.Diverged {
				return "DIVERGED" // running unreplicated (design 5.6) until STOP and START
			}
			return svUnitState(o.r.State)
		}},
		{name: "RESTING", show: func(o *svstatusObj) any {
			if o.r.State == role.Resting {
				return "YES"
			}
			return "NO"
		}},
	},
}

// svUnitState is UNITSTATE: a resting unit shows STOPPED, with
// RESTING(YES).
func svUnitState(s role.UnitState) string {
	if s == role.Resting {
		return "STOPPED"
	}
	return s.String()
}

func displaySvStatus(env Env, c Command) ([]Result, error) {
	return display(c, &svstatusTable, func() ([]svstatusObj, error) {
		var out []svstatusObj
		err := env.Repo().View(func(tx *defs.Tx) error {
			svcs, err := tx.Services(c.Name)
			if err != nil {
				return err
			}
			peers, err := env.Group().Peers()
			if err != nil {
				return fmt.Errorf("read the peer table: %w", err)
			}
			for _, svc := range svcs {
				_, _, s, err := serviceCF(env, tx, svc.Name)
				if err != nil {
					return err
				}
				recs, err := role.Read(s, svc.StatusBase)
				if err != nil {
					return fmt.Errorf("SERVICE(%s): %s: %w", svc.Name, svc.CFStruct, err)
				}
				r := recs.Role
				for k := uint8(0); k < role.MaxReplicas; k++ {
					e := r.Pos[k]
					if k >= r.Replicas && e.State == role.Vacant {
						continue
					}
					o := svstatusObj{svc: svc, r: r, pos: k, p: recs.Progress[k]}
					if e.State != role.Vacant {
						for _, p := range peers {
							if p.Slot == int(e.Peer) && p.Incarnation == e.Incarnation {
								o.qmgr = p.Name
							}
						}
					}
					out = append(out, o)
				}
			}
			return nil
		})
		return out, err
	})
}
