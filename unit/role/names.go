package role

import "fmt"

// The names DISPLAY SVSTATUS and the metrics (qmgr_unit_*) show.

// RoleNames are the values of RoleName.
var RoleNames = []string{"PRIMARY", "SENDER", "SECONDARY", "JOINING", "STARTING", "EXITING", "VACANT"}

// RoleName is position k's role: PRIMARY, SENDER (a secondary that
// sends), SECONDARY, JOINING, STARTING, EXITING or VACANT.
func (r *Role) RoleName(k uint8) string {
	switch r.Pos[k].State {
	case Vacant:
		return "VACANT"
	case Starting:
		return "STARTING"
	case Joining:
		return "JOINING"
	case Exiting:
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

// StatusNames are the values of StatusName but the empty one.
var StatusNames = []string{"STARTING", "RUNNING", "DIVERGED", "HALTED", "EXITING"}

// StatusName is the status of the replica in position entry e from its
// progress record p (nil: it has published none yet): RUNNING, DIVERGED,
// HALTED or EXITING from the record's flags, STARTING without a record,
// empty for a vacant position.
func StatusName(e Position, p *Progress) string {
	switch {
	case e.State == Vacant:
		return ""
	case p == nil:
		return "STARTING"
	case p.Flags&FlagDiverged != 0:
		return "DIVERGED"
	case p.Flags&FlagHalted != 0:
		return "HALTED"
	case p.Flags&FlagExiting != 0:
		return "EXITING"
	}
	return "RUNNING"
}

// UnitStateNames are the values of UnitState.String for valid states.
var UnitStateNames = []string{"RUNNING", "STOPPING", "STOPPED", "RESTING"}

func (s UnitState) String() string {
	switch s {
	case Running:
		return "RUNNING"
	case Stopping:
		return "STOPPING"
	case Stopped:
		return "STOPPED"
	case Resting:
		return "RESTING"
	}
	return fmt.Sprintf("UNKNOWN(%d)", uint8(s))
}
