package defs

import (
	"fmt"
	"strings"
	"time"
)

// TypeService is a recovery unit (issue 16, docs/design/recovery-units.md):
// a stateful service run as replicated processes.
const TypeService Type = "SERVICE"

// Recovery unit limits.
const (
	// MaxServiceName is the longest SERVICE name: its queues'
	// names (SYSTEM.UNIT.<name>.STATE) stay within 48 characters.
	MaxServiceName = 24
	// MaxReplicas is the most replicas of a unit.
	MaxReplicas = 4
	// ServiceSlots is how many status slots of its structure a unit
	// takes from STATUSBASE: its role record and one progress record per
	// possible replica (so that REPLICAS can grow while it runs).
	ServiceSlots = 1 + MaxReplicas
)

// Suffixes of a unit's queues (SYSTEM.UNIT.<name>.<suffix>).
const (
	UnitLog   = "LOG"   // the primary's log of inputs and choices
	UnitState = "STATE" // the OUT record, INDXTYPE(CORRELID)
	UnitEarly = "EARLY" // inputs from another unit that came early, INDXTYPE(MSGID)
	UnitSnap  = "SNAP"  // snapshot chunks in transfer, INDXTYPE(CORRELID)
)

// UnitQueues are the suffixes of every unit's queues, in creation order.
var UnitQueues = []string{UnitLog, UnitState, UnitEarly, UnitSnap}

// UnitQueue is the name of service's queue with suffix.
func UnitQueue(service, suffix string) string { return "SYSTEM.UNIT." + service + "." + suffix }

// Service is a recovery unit's definition (DEFINE SERVICE).
type Service struct {
	Name     string `json:"SERVICE"`
	StartCmd string `json:"STARTCMD"` // the program each replica runs
	StartArg string `json:"STARTARG"` // its arguments, split on blanks (no shell)
	Replicas int    `json:"REPLICAS"` // 1..MaxReplicas; default 2
	Input    string `json:"INPUT"`    // the input queue
	Logging  string `json:"LOGGING"`  // LATE (default), EARLY, INDEPENDENT
	Topology string `json:"TOPOLOGY"` // FANOUT (default), CHAIN
	ResendQ  int    `json:"RESENDQ"`  // bound of resend queues and the log window, in inputs; default 1000
	ResendMB int    `json:"RESENDMB"` // the same in MiB of buffered outputs; default 64
	ChkInt   int    `json:"CHKINT"`   // a state-hash check every n inputs; 0 off; default 10000
	CFStruct string `json:"CFSTRUCT"` // where its queues and records live; the input queue's by default
	Control  string `json:"CONTROL"`  // QMGR (default: started with the group) or MANUAL
	Descr    string `json:"DESCR"`
	// StatusBase is the first of the ServiceSlots status slots of
	// CFSTRUCT the unit holds (set by DEFINE, never changed).
	StatusBase int       `json:"STATUSBASE"`
	Created    time.Time `json:"-"`
	Altered    time.Time `json:"-"`
}

// DefaultService is a service with the defaults of DEFINE SERVICE.
func DefaultService(name string) Service {
	return Service{Name: name, Replicas: 2, Logging: "LATE", Topology: "FANOUT", ResendQ: 1000, ResendMB: 64, ChkInt: 10000, Control: "QMGR"}
}

// ValidServiceName reports whether s may name a service: a queue name of
// at most MaxServiceName characters without a wildcard.
func ValidServiceName(s string) bool {
	return len(s) <= MaxServiceName && ValidName(s) && !strings.ContainsAny(s, "*")
}

// Validate checks a service definition.
func (s Service) Validate() error {
	switch {
	case !ValidServiceName(s.Name):
		return fmt.Errorf("%w: SERVICE name %q (1 to %d queue-name characters)", ErrBadName, s.Name, MaxServiceName)
	case s.StartCmd == "" || !strings.HasPrefix(s.StartCmd, "/") || len(s.StartCmd) > 1024:
		return fmt.Errorf("%w: STARTCMD(%s) must be an absolute path of at most 1024 characters", ErrBadValue, s.StartCmd)
	case len(s.StartArg) > 4096:
		return fmt.Errorf("%w: STARTARG longer than 4096 characters", ErrBadValue)
	case s.Replicas < 1 || s.Replicas > MaxReplicas:
		return fmt.Errorf("%w: REPLICAS(%d) not in 1..%d", ErrBadValue, s.Replicas, MaxReplicas)
	case !ValidName(s.Input):
		return fmt.Errorf("%w: INPUT(%s) must name a local queue", ErrBadName, s.Input)
	case s.Logging != "LATE" && s.Logging != "EARLY" && s.Logging != "INDEPENDENT":
		return fmt.Errorf("%w: LOGGING(%s) is not LATE, EARLY or INDEPENDENT", ErrBadValue, s.Logging)
	case s.Topology != "FANOUT" && s.Topology != "CHAIN":
		return fmt.Errorf("%w: TOPOLOGY(%s) is not FANOUT or CHAIN", ErrBadValue, s.Topology)
	case s.ResendQ < 1 || s.ResendQ > 1_000_000:
		return fmt.Errorf("%w: RESENDQ(%d) not in 1..1000000", ErrBadValue, s.ResendQ)
	case s.ResendMB < 1 || s.ResendMB > 65536:
		return fmt.Errorf("%w: RESENDMB(%d) not in 1..65536", ErrBadValue, s.ResendMB)
	case s.ChkInt < 0 || s.ChkInt > 999_999_999:
		return fmt.Errorf("%w: CHKINT(%d) not in 0..999999999", ErrBadValue, s.ChkInt)
	case !ValidStructName(s.CFStruct):
		return fmt.Errorf("%w: CFSTRUCT(%s)", ErrBadName, s.CFStruct)
	case s.Control != "QMGR" && s.Control != "MANUAL":
		return fmt.Errorf("%w: CONTROL(%s) is not QMGR or MANUAL", ErrBadValue, s.Control)
	case len(s.Descr) > 64:
		return fmt.Errorf("%w: DESCR longer than 64 characters", ErrBadValue)
	case s.StatusBase < 0:
		return fmt.Errorf("%w: STATUSBASE(%d)", ErrBadValue, s.StatusBase)
	}
	return nil
}

// LogMaxDepth is the MAXDEPTH of the unit's log queue: twice the window
// flow control keeps it within, and one batch.
func (s Service) LogMaxDepth() int64 { return 2*int64(s.ResendQ) + 64 }

// Service loads a service definition.
func (t *Tx) Service(name string) (Service, error) {
	s := Service{}
	c, a, err := t.Load(TypeService, name, &s)
	s.Created, s.Altered = c, a
	return s, err
}

// Services loads the services matching pattern.
func (t *Tx) Services(pattern string) ([]Service, error) {
	return loadAll(t, TypeService, pattern, t.Service)
}
