package mqsc

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/qmgr/qmgr/defs"
	"github.com/qmgr/qmgr/lockfree"
	"github.com/qmgr/qmgr/unit/logrec"
	"github.com/qmgr/qmgr/unit/role"
)

// SERVICE objects: recovery units (issue 16, docs/design/recovery-units.md
// section 2). DEFINE SERVICE makes, in one definitions transaction, the
// unit's four queues (SYSTEM.UNIT.<name>.LOG, STATE, EARLY, SNAP), takes
// defs.ServiceSlots status slots of its structure for its role and
// progress records, writes its role record (running, or stopped with
// CONTROL(MANUAL)) and puts the first OUT record on STATE. START and STOP
// SERVICE change the role record's state; DELETE SERVICE needs it stopped.

var serviceTable = table[defs.Service]{
	typ: "SERVICE", header: "Display service details.", defaultAll: true, notFound: notFoundAs("SERVICE"),
	attrs: []attr[defs.Service]{
		{name: "SERVICE", ident: true, show: func(s *defs.Service) any { return s.Name }},
		{name: "STARTCMD", show: func(s *defs.Service) any { return s.StartCmd }, set: func(s *defs.Service, a Attr) error {
			s.StartCmd = a.Raw
			return nil
		}},
		{name: "STARTARG", show: func(s *defs.Service) any { return s.StartArg }, set: func(s *defs.Service, a Attr) error {
			s.StartArg = a.Raw
			return nil
		}},
		{name: "REPLICAS", show: func(s *defs.Service) any { return int64(s.Replicas) }, set: func(s *defs.Service, a Attr) (err error) {
			s.Replicas, err = parseIntAs[int](a, 1, defs.MaxReplicas)
			return err
		}},
		{name: "INPUT", show: func(s *defs.Service) any { return s.Input }, set: func(s *defs.Service, a Attr) (err error) {
			s.Input, err = parseName(a, defs.ValidName)
			return err
		}},
		{name: "LOGGING", show: func(s *defs.Service) any { return s.Logging }, set: func(s *defs.Service, a Attr) (err error) {
			s.Logging, err = parseEnum(a, "LATE", "EARLY", "INDEPENDENT")
			return err
		}},
		{name: "TOPOLOGY", show: func(s *defs.Service) any { return s.Topology }, set: func(s *defs.Service, a Attr) (err error) {
			s.Topology, err = parseEnum(a, "FANOUT", "CHAIN")
			return err
		}},
		{name: "RESENDQ", show: func(s *defs.Service) any { return int64(s.ResendQ) }, set: func(s *defs.Service, a Attr) (err error) {
			s.ResendQ, err = parseIntAs[int](a, 1, 1_000_000)
			return err
		}},
		{name: "RESENDMB", show: func(s *defs.Service) any { return int64(s.ResendMB) }, set: func(s *defs.Service, a Attr) (err error) {
			s.ResendMB, err = parseIntAs[int](a, 1, 65536)
			return err
		}},
		{name: "CHKINT", show: func(s *defs.Service) any { return int64(s.ChkInt) }, set: func(s *defs.Service, a Attr) (err error) {
			s.ChkInt, err = parseIntAs[int](a, 0, 999_999_999)
			return err
		}},
		{name: "CFSTRUCT", show: func(s *defs.Service) any { return s.CFStruct }, set: func(s *defs.Service, a Attr) (err error) {
			s.CFStruct, err = parseName(a, defs.ValidStructName)
			return err
		}},
		{name: "CONTROL", show: func(s *defs.Service) any { return s.Control }, set: func(s *defs.Service, a Attr) (err error) {
			s.Control, err = parseEnum(a, "QMGR", "MANUAL")
			return err
		}},
		{name: "DESCR", show: func(s *defs.Service) any { return s.Descr }, set: func(s *defs.Service, a Attr) error {
			s.Descr = a.Value
			return nil
		}},
		{name: "STATUSBASE", show: func(s *defs.Service) any { return int64(s.StatusBase) }},
		{name: "CRDATE", show: func(s *defs.Service) any { return mqDay(s.Created) }},
		{name: "CRTIME", show: func(s *defs.Service) any { return mqTime(s.Created) }},
		{name: "ALTDATE", show: func(s *defs.Service) any { return mqDay(s.Altered) }},
		{name: "ALTTIME", show: func(s *defs.Service) any { return mqTime(s.Altered) }},
	},
}

func displayServices(env Env, c Command) ([]Result, error) {
	return display(c, &serviceTable, func() ([]defs.Service, error) {
		var ss []defs.Service
		err := env.Repo().View(func(tx *defs.Tx) error { var err error; ss, err = tx.Services(c.Name); return err })
		return ss, err
	})
}

// roleLogging maps LOGGING to the role record's.
func roleLogging(s string) role.Logging {
	switch s {
	case "EARLY":
		return role.Early
	case "INDEPENDENT":
		return role.Independent
	}
	return role.Late
}

// unitQueueDef is the definition of one of service's queues.
func unitQueueDef(s defs.Service, suffix string) defs.Queue {
	q := defs.DefaultQueue(defs.UnitQueue(s.Name, suffix))
	q.CFStruct = s.CFStruct
	q.Descr = "recovery unit " + s.Name + " " + strings.ToLower(suffix)
	switch suffix {
	case defs.UnitLog:
		q.MaxDepth = s.LogMaxDepth()
		q.MaxMsgL = 100 << 20
	case defs.UnitState:
		q.IndxType = "CORRELID"
	case defs.UnitEarly:
		q.IndxType = "MSGID"
		q.MaxMsgL = 100 << 20
	case defs.UnitSnap:
		q.IndxType = "CORRELID"
		q.MaxMsgL = 1 << 20
	}
	return q
}

// readRole reads service's role record from its structure.
func readRole(s *lockfree.Structure, svc defs.Service) (*role.Role, []byte, error) {
	buf := make([]byte, s.StatusSize())
	if _, err := s.ReadStatus(svc.StatusBase, buf); err != nil {
		return nil, nil, err
	}
	r, err := role.Decode(buf)
	if err != nil {
		return nil, buf, fmt.Errorf("SERVICE(%s): role record in slot %d of %s: %w", svc.Name, svc.StatusBase, svc.CFStruct, err)
	}
	return r, buf, nil
}

// allocSlots finds the first run of defs.ServiceSlots status slots of s
// that no other service of the structure holds and that are all zero.
func allocSlots(tx *defs.Tx, s *lockfree.Structure, svc defs.Service) (int, error) {
	if s.StatusSize() != role.RecordSize {
		return 0, fmt.Errorf("%w: CFSTRUCT(%s) has status records of %d bytes, a unit needs %d", ErrValue, svc.CFStruct, s.StatusSize(), role.RecordSize)
	}
	others, err := tx.Services("*")
	if err != nil {
		return 0, err
	}
	used := map[int]bool{}
	for _, o := range others {
		if o.CFStruct == svc.CFStruct && o.Name != svc.Name {
			used[o.StatusBase] = true
		}
	}
next:
	for b := 0; b+defs.ServiceSlots <= s.StatusSlots(); b += defs.ServiceSlots {
		if used[b] {
			continue
		}
		for i := b; i < b+defs.ServiceSlots; i++ {
			if z, err := s.StatusZero(i); err != nil || !z {
				continue next
			}
		}
		return b, nil
	}
	return 0, fmt.Errorf("%w: CFSTRUCT(%s) has no free status slots for another service (%d slots, %d per service)", ErrValue, svc.CFStruct, s.StatusSlots(), defs.ServiceSlots)
}

func defineService(env Env, c Command) ([]Result, error) {
	alter := c.Verb == "ALTER"
	if err := checkFlags(c, "REPLACE", "NOREPLACE"); err != nil {
		return nil, err
	}
	if !defs.ValidServiceName(c.Name) {
		return nil, fmt.Errorf("%w: SERVICE(%s) is not a valid service name (1 to %d queue-name characters)", ErrValue, c.Name, defs.MaxServiceName)
	}
	err := env.Repo().Update(func(tx *defs.Tx) error {
		old, err := tx.Service(c.Name)
		exists := err == nil
		if err != nil && !errors.Is(err, defs.ErrNotFound) {
			return err
		}
		if err := checkDefine(c, "SERVICE", exists); err != nil {
			return err
		}
		svc := defs.DefaultService(c.Name)
		if alter {
			svc = old
		}
		if err := serviceTable.apply(&svc, c.Attrs); err != nil {
			return err
		}
		in, err := tx.Queue(svc.Input)
		if svc.Input == "" {
			return fmt.Errorf("%w: SERVICE(%s) needs INPUT(queue)", ErrValue, c.Name)
		}
		if err != nil {
			return fmt.Errorf("%w: INPUT(%s) is not a local queue", ErrNotFound, svc.Input)
		}
		if strings.HasPrefix(svc.Input, "SYSTEM.UNIT.") {
			return fmt.Errorf("%w: INPUT(%s) is a recovery unit's own queue", ErrValue, svc.Input)
		}
		if svc.CFStruct == "" {
			svc.CFStruct = in.CFStruct
		}
		if svc.Logging == "INDEPENDENT" && in.IndxType != "MSGID" {
			return fmt.Errorf("%w: LOGGING(INDEPENDENT) needs INPUT(%s) with INDXTYPE(MSGID)", ErrValue, svc.Input)
		}
		if exists {
			svc.StatusBase = old.StatusBase
			if svc.CFStruct != old.CFStruct {
				return fmt.Errorf("%w: CFSTRUCT of SERVICE(%s) cannot change (it is %s); delete and define it again", ErrValue, c.Name, old.CFStruct)
			}
		}
		if err := svc.Validate(); err != nil {
			return fmt.Errorf("%w: %v", ErrValue, err)
		}
		sdef, err := tx.Struct(svc.CFStruct)
		if err != nil {
			return fmt.Errorf("%w: CFSTRUCT(%s) is not defined", ErrNotFound, svc.CFStruct)
		}
		o, s, err := env.OwnerIn(sdef)
		if err != nil {
			return err
		}
		if exists {
			// Saved first: a failure below rolls the save back with the
			// transaction.
			if _, err := tx.Save(defs.TypeService, svc.Name, svc, defs.Replace); err != nil {
				return err
			}
			return alterRunning(o, s, old, svc)
		}
		if svc.StatusBase, err = allocSlots(tx, s, svc); err != nil {
			return err
		}
		if _, err := tx.Save(defs.TypeService, svc.Name, svc, defs.Create); err != nil {
			return err
		}
		return createUnit(tx, o, s, svc)
	})
	if err != nil {
		return nil, err
	}
	msg := "Service created."
	if alter {
		msg = "Service changed."
	}
	return []Result{{Message: msg}}, env.DefsChanged()
}

// createUnit makes a new service's queues, role record and first OUT.
func createUnit(tx *defs.Tx, o *lockfree.Owner, s *lockfree.Structure, svc defs.Service) (err error) {
	// The role record first: a name or value it refuses fails the
	// command before anything is made in the CF.
	rec, err := role.New(svc.Name, svc.Replicas, svc.Topology == "FANOUT", roleLogging(svc.Logging), svc.Control == "QMGR")
	if err != nil {
		return fmt.Errorf("%w: SERVICE(%s): %v", ErrValue, svc.Name, err)
	}
	// The definitions roll back with the transaction when this fails; the
	// queues made in the CF go too, so that the command can be retried.
	var made []lockfree.QueueID
	var written []byte // the role record, once in its slot
	defer func() {
		if err != nil {
			if written != nil {
				o.CompareAndSwapStatus(svc.StatusBase, written, make([]byte, role.RecordSize))
			}
			for _, id := range made {
				drain(o, id)
				o.DeleteQueue(id)
			}
		}
	}()
	for _, suffix := range defs.UnitQueues {
		q := unitQueueDef(svc, suffix)
		if _, err := tx.Queue(q.Name); err == nil {
			return fmt.Errorf("%w: QLOCAL(%s) exists", ErrExists, q.Name)
		}
		if _, err := tx.Save(defs.TypeQLocal, q.Name, q, defs.Create); err != nil {
			return err
		}
		if _, err := s.LookupQueue(q.Name); err == nil {
			return fmt.Errorf("%w: %s is in CFSTRUCT(%s) without a definition", ErrExists, q.Name, svc.CFStruct)
		}
		id, err := o.CreateQueue(q.Name, CFAttrs(q))
		if err != nil {
			if errors.Is(err, lockfree.ErrNoQueueSlot) {
				return fmt.Errorf("%w: structure %s holds no more queues", ErrValue, svc.CFStruct)
			}
			return err
		}
		made = append(made, id)
	}
	rec.Updated = time.Now().UnixNano()
	b, err := rec.Encode()
	if err != nil {
		return err
	}
	if err := o.CompareAndSwapStatus(svc.StatusBase, make([]byte, role.RecordSize), b); err != nil {
		return fmt.Errorf("SERVICE(%s): write its role record: %w", svc.Name, err)
	}
	written = b
	state, err := s.LookupQueue(defs.UnitQueue(svc.Name, defs.UnitState))
	if err != nil {
		return err
	}
	out := logrec.Out{Sender: logrec.NoPosition, Updated: time.Now().UnixNano()}
	m := lockfree.Message{CorrelID: logrec.OutCorrelID, Body: out.Encode()}
	copy(m.Format[:], "MQRUOUT")
	return o.Put(state, &m, lockfree.PutOptions{})
}

// alterRunning applies a changed definition to the unit's role record:
// REPLICAS at any time (positions beyond it must be vacant), LOGGING and
// TOPOLOGY only while stopped.
func alterRunning(o *lockfree.Owner, s *lockfree.Structure, old, svc defs.Service) error {
	r, before, err := readRole(s, old)
	if err != nil {
		return err
	}
	running := r.State == role.Running || r.State == role.Stopping
	if running && (svc.Logging != old.Logging || svc.Topology != old.Topology) {
		return fmt.Errorf("%w: SERVICE(%s) is running: LOGGING and TOPOLOGY change only while it is stopped", ErrInUse, svc.Name)
	}
	if svc.LogMaxDepth() != old.LogMaxDepth() {
		return fmt.Errorf("%w: RESENDQ of SERVICE(%s) cannot change yet (it sizes the log queue); delete and define it again", ErrValue, svc.Name)
	}
	n := r.Clone()
	n.Replicas = uint8(svc.Replicas)
	n.Fanout = svc.Topology == "FANOUT"
	n.Logging = roleLogging(svc.Logging)
	n.Updated = time.Now().UnixNano()
	after, err := n.Encode()
	if err != nil {
		return fmt.Errorf("%w: SERVICE(%s): REPLICAS(%d) leaves a replica beyond it: %v", ErrInUse, svc.Name, svc.Replicas, err)
	}
	if err := o.CompareAndSwapStatus(old.StatusBase, before, after); err != nil {
		return fmt.Errorf("SERVICE(%s): role record: %w (its roles changed meanwhile: try again)", svc.Name, err)
	}
	return nil
}

// serviceCF finds a service's structure and owner.
func serviceCF(env Env, tx *defs.Tx, name string) (defs.Service, *lockfree.Owner, *lockfree.Structure, error) {
	svc, err := tx.Service(name)
	if err != nil {
		return svc, nil, nil, fmt.Errorf("%w: SERVICE(%s)", ErrNotFound, name)
	}
	sdef, err := tx.Struct(svc.CFStruct)
	if err != nil {
		return svc, nil, nil, fmt.Errorf("%w: CFSTRUCT(%s) of SERVICE(%s)", ErrNotFound, svc.CFStruct, name)
	}
	o, s, err := env.OwnerIn(sdef)
	return svc, o, s, err
}

// startStopService is START SERVICE and STOP SERVICE: the role record's
// state changes by compare-and-swap (a stop of a unit with no replica
// ends at once).
func startStopService(env Env, c Command) ([]Result, error) {
	if err := checkFlags(c); err != nil {
		return nil, err
	}
	if len(c.Attrs) > 0 {
		return nil, fmt.Errorf("%w: %q is not an attribute of %s SERVICE", ErrSyntax, c.Attrs[0].Key, c.Verb)
	}
	var msg string
	err := env.Repo().View(func(tx *defs.Tx) error {
		svc, o, s, err := serviceCF(env, tx, c.Name)
		if err != nil {
			return err
		}
		for try := 0; try < 100; try++ {
			r, before, err := readRole(s, svc)
			if err != nil {
				return err
			}
			now := time.Now().UnixNano()
			var n *role.Role
			if c.Verb == "START" {
				if n, _, err = role.Next(r, role.Event{Kind: role.EvStart, Now: now}); err != nil {
					return fmt.Errorf("%w: SERVICE(%s) is not stopped", ErrInUse, c.Name)
				}
				msg = "Service started."
			} else {
				if n, _, err = role.Next(r, role.Event{Kind: role.EvStop, Now: now}); err != nil {
					return fmt.Errorf("%w: SERVICE(%s) is not running", ErrInUse, c.Name)
				}
				if m, _, err := role.Next(n, role.Event{Kind: role.EvStopped, Now: now}); err == nil {
					n = m // no replica: stopped at once
				}
				msg = "Service stopping."
				if n.State == role.Stopped {
					msg = "Service stopped."
				}
			}
			after, err := n.Encode()
			if err != nil {
				return err
			}
			err = o.CompareAndSwapStatus(svc.StatusBase, before, after)
			if !errors.Is(err, lockfree.ErrStatusChanged) {
				return err
			}
		}
		return fmt.Errorf("%w: SERVICE(%s): its role record keeps changing", ErrInUse, c.Name)
	})
	if err != nil {
		return nil, err
	}
	return []Result{{Message: msg}}, nil
}

// deleteService is DELETE SERVICE: it must be stopped with no replica;
// its queues (and what they hold), its records and its definition go.
func deleteService(env Env, c Command) ([]Result, error) {
	if err := checkFlags(c); err != nil {
		return nil, err
	}
	if len(c.Attrs) > 0 {
		return nil, fmt.Errorf("%w: %q is not an attribute of DELETE SERVICE", ErrSyntax, c.Attrs[0].Key)
	}
	err := env.Repo().Update(func(tx *defs.Tx) error {
		svc, o, s, err := serviceCF(env, tx, c.Name)
		if err != nil {
			return err
		}
		r, before, err := readRole(s, svc)
		if err == nil {
			if r.State != role.Stopped && r.State != role.Resting {
				return fmt.Errorf("%w: SERVICE(%s) is not stopped (STOP SERVICE first)", ErrInUse, c.Name)
			}
			zero := make([]byte, role.RecordSize)
			if err := o.CompareAndSwapStatus(svc.StatusBase, before, zero); err != nil {
				return fmt.Errorf("SERVICE(%s): clear its role record: %w", c.Name, err)
			}
		} else if before == nil {
			return err
		} // an unreadable record: the delete clears it with the rest
		buf := make([]byte, role.RecordSize)
		for i := svc.StatusBase; i < svc.StatusBase+defs.ServiceSlots; i++ {
			if err := o.UpdateStatus(i, func(cur []byte) []byte {
				if z, _ := s.StatusZero(i); z {
					return nil
				}
				return buf
			}); err != nil {
				return err
			}
		}
		for _, suffix := range defs.UnitQueues {
			name := defs.UnitQueue(svc.Name, suffix)
			if id, err := s.LookupQueue(name); err == nil {
				if err := drain(o, id); err != nil {
					return err
				}
				if err := o.DeleteQueue(id); err != nil {
					return fmt.Errorf("SERVICE(%s): delete %s: %w", c.Name, name, err)
				}
			}
			if err := tx.Delete(defs.TypeQLocal, name); err != nil && !errors.Is(err, defs.ErrNotFound) {
				return err
			}
		}
		return tx.Delete(defs.TypeService, svc.Name)
	})
	if err != nil {
		return nil, err
	}
	return []Result{{Message: "Service deleted."}}, env.DefsChanged()
}
