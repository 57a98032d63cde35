package mqsc

import (
	"fmt"

	"github.com/qmgr/qmgr/defs"
	"github.com/qmgr/qmgr/lockfree"
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
		{name: "ROLE", show: func(o *svstatusObj) any { return svRole(o.r, o.pos) }},
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
		{name: "STATUS", show: func(o *svstatusObj) any { return svStatus(o) }},
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

// svRole is a position's ROLE: PRIMARY, SENDER (a secondary that sends),
// SECONDARY, JOINING, STARTING, EXITING or VACANT.
func svRole(r *role.Role, k uint8) string {
	switch r.Pos[k].State {
	case role.Vacant:
		return "VACANT"
	case role.Starting:
		return "STARTING"
	case role.Joining:
		return "JOINING"
	case role.Exiting:
		return "EXITING"
	}
	switch k {
	case r.Primary:
		return "PRIMARY"
	case r.Sender:
		return "SENDER"
	}
	return "SECONDARY"
}

// svStatus is RUNNING, DIVERGED, HALTED or EXITING from the progress
// record's flags; empty for a position without a replica.
func svStatus(o *svstatusObj) string {
	switch {
	case o.r.Pos[o.pos].State == role.Vacant:
		return ""
	case o.p == nil:
		return "STARTING"
	case o.p.Flags&role.FlagDiverged != 0:
		return "DIVERGED"
	case o.p.Flags&role.FlagHalted != 0:
		return "HALTED"
	case o.p.Flags&role.FlagExiting != 0:
		return "EXITING"
	}
	return "RUNNING"
}

func svUnitState(s role.UnitState) string {
	switch s {
	case role.Running:
		return "RUNNING"
	case role.Stopping:
		return "STOPPING"
	case role.Stopped:
		return "STOPPED"
	case role.Resting:
		return "STOPPED" // with a resting snapshot: RESTING(YES)
	}
	return fmt.Sprintf("UNKNOWN(%d)", s)
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
				r, _, err := readRole(s, svc)
				if err != nil {
					return err
				}
				for k := uint8(0); k < role.MaxReplicas; k++ {
					e := r.Pos[k]
					if k >= r.Replicas && e.State == role.Vacant {
						continue
					}
					o := svstatusObj{svc: svc, r: r, pos: k, p: progressOf(s, svc, r, k)}
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

// progressOf is position k's progress record if it is the current
// replica's.
func progressOf(s *lockfree.Structure, svc defs.Service, r *role.Role, k uint8) *role.Progress {
	if r.Pos[k].State == role.Vacant {
		return nil
	}
	buf := make([]byte, s.StatusSize())
	if _, err := s.ReadStatus(svc.StatusBase+1+int(k), buf); err != nil {
		return nil
	}
	p, err := role.DecodeProgress(buf)
	if err != nil || p.Tag != r.Pos[k].Tag {
		return nil
	}
	return p
}
