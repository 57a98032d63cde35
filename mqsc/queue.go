package mqsc

import (
	"errors"
	"fmt"
	"strings"

	"github.com/qmgr/qmgr/defs"
	"github.com/qmgr/qmgr/lockfree"
)

// queueObj is a local queue for its attribute table: its definition,
// and its depth in the CF when displayed.
type queueObj struct {
	defs.Queue
	depth int64
}

var qlocalTable = table[queueObj]{
	typ: "QLOCAL", header: "AMQ8409I: Display Queue details.", notFound: notFoundAs("QLOCAL"),
	attrs: []attr[queueObj]{
		{name: "QUEUE", ident: true, show: func(q *queueObj) any { return q.Name }},
		{name: "TYPE", ident: true, show: func(q *queueObj) any { return "QLOCAL" }},
		{name: "MAXDEPTH", show: func(q *queueObj) any { return q.MaxDepth }, set: func(q *queueObj, a Attr) (err error) {
			q.MaxDepth, err = parseInt(a, 0, 999_999_999)
			return err
		}},
		{name: "MAXMSGL", show: func(q *queueObj) any { return int64(q.MaxMsgL) }, set: func(q *queueObj, a Attr) (err error) {
			q.MaxMsgL, err = parseIntAs[int](a, 0, 100<<20)
			return err
		}},
		{name: "DEFPSIST", show: func(q *queueObj) any { return yesNo(q.DefPsist) }, set: func(q *queueObj, a Attr) (err error) {
			q.DefPsist, err = parseYesNo(a)
			return err
		}},
		{name: "DEFPRTY", show: func(q *queueObj) any { return int64(q.DefPrty) }, set: func(q *queueObj, a Attr) (err error) {
			q.DefPrty, err = parseIntAs[int](a, 0, 9)
			return err
		}},
		{name: "BOTHRESH", show: func(q *queueObj) any { return int64(q.BOThresh) }, set: func(q *queueObj, a Attr) (err error) {
			q.BOThresh, err = parseIntAs[int](a, 0, 999_999_999)
			return err
		}},
		{name: "BOQNAME", show: func(q *queueObj) any { return q.BOQName }, set: func(q *queueObj, a Attr) (err error) {
			q.BOQName, err = parseName(a, defs.ValidName)
			return err
		}},
		{name: "CFSTRUCT", show: func(q *queueObj) any { return q.CFStruct }, set: func(q *queueObj, a Attr) (err error) {
			q.CFStruct, err = parseName(a, defs.ValidStructName)
			if q.CFStruct == "" {
				err = fmt.Errorf("%w: CFSTRUCT() must name a structure", ErrValue)
			}
			return err
		}},
		{name: "INDXTYPE", show: func(q *queueObj) any { return q.IndxType }, set: func(q *queueObj, a Attr) (err error) {
			q.IndxType, err = parseEnum(a, "NONE", "MSGID", "CORRELID")
			return err
		}},
		{name: "USAGE", show: func(q *queueObj) any { return q.Usage }, set: func(q *queueObj, a Attr) (err error) {
			q.Usage, err = parseEnum(a, "NORMAL", "XMITQ")
			return err
		}},
		// Set by the bare keywords TRIGGER and NOTRIGGER (applyTrigger).
		{name: "TRIGGER", show: func(q *queueObj) any { return trigger(q.Trigger) }},
		{name: "TRIGDATA", show: func(q *queueObj) any { return q.TrigData }, set: func(q *queueObj, a Attr) (err error) {
			q.TrigData, err = parseName(a, defs.ValidChannelName)
			return err
		}},
		{name: "DESCR", show: func(q *queueObj) any { return q.Descr }, set: func(q *queueObj, a Attr) error {
			q.Descr = a.Value
			if len(q.Descr) > 64 {
				return fmt.Errorf("%w: DESCR longer than 64 characters", ErrValue)
			}
			return nil
		}},
		{name: "CURDEPTH", show: func(q *queueObj) any { return q.depth }},
		// The AMQP attributes of a queue declared through AMQP (absent
		// for other queues); set by queue.declare, not by MQSC.
		{name: "DURABLE", show: amqpAttr(func(a *defs.QueueAMQP) any { return yesNo(a.Durable) })},
		{name: "AUTODEL", show: amqpAttr(func(a *defs.QueueAMQP) any { return yesNo(a.AutoDelete) })},
		{name: "EXCLUSIVE", show: amqpAttr(func(a *defs.QueueAMQP) any { return a.Exclusive })},
		{name: "MSGTTL", show: amqpAttr(func(a *defs.QueueAMQP) any { return a.MessageTTL })},
		{name: "EXPIRES", show: amqpAttr(func(a *defs.QueueAMQP) any { return a.Expires })},
		{name: "MAXLEN", show: amqpAttr(func(a *defs.QueueAMQP) any { return a.MaxLength })},
		{name: "OVERFLOW", show: amqpAttr(func(a *defs.QueueAMQP) any { return a.Overflow })},
		{name: "MAXPRTY", show: amqpAttr(func(a *defs.QueueAMQP) any { return int64(a.MaxPriority) })},
		{name: "DLX", show: amqpAttr(func(a *defs.QueueAMQP) any { return a.DLX })},
		{name: "DLRK", show: amqpAttr(func(a *defs.QueueAMQP) any {
			if a.DLRK == nil {
				return nil // the message's own routing key
			}
			return *a.DLRK
		})},
		{name: "CRDATE", show: func(q *queueObj) any { return mqDay(q.Created) }},
		{name: "CRTIME", show: func(q *queueObj) any { return mqTime(q.Created) }},
		{name: "ALTDATE", show: func(q *queueObj) any { return mqDay(q.Altered) }},
		{name: "ALTTIME", show: func(q *queueObj) any { return mqTime(q.Altered) }},
	},
}

// amqpAttr shows an AMQP attribute of a queue that has them, and nothing
// for one that has not.
func amqpAttr(show func(a *defs.QueueAMQP) any) func(q *queueObj) any {
	return func(q *queueObj) any {
		if q.AMQP == nil {
			return nil
		}
		return show(q.AMQP)
	}
}

// applyQueueAttrs sets q's attributes from the command.
func applyQueueAttrs(q *defs.Queue, c Command) error {
	o := queueObj{Queue: *q}
	if err := qlocalTable.apply(&o, c.Attrs); err != nil {
		return err
	}
	*q = o.Queue
	return applyTrigger(q, c)
}

// applyTrigger sets TRIGGER from the bare keywords TRIGGER and NOTRIGGER.
func applyTrigger(q *defs.Queue, c Command) error {
	switch {
	case c.Has("TRIGGER") && c.Has("NOTRIGGER"):
		return fmt.Errorf("%w: TRIGGER and NOTRIGGER together", ErrSyntax)
	case c.Has("TRIGGER"):
		q.Trigger = true
	case c.Has("NOTRIGGER"):
		q.Trigger = false
	}
	return nil
}

func defineQueue(env Env, c Command) ([]Result, error) {
	alter := c.Verb == "ALTER"
	if err := checkFlags(c, "REPLACE", "NOREPLACE", "TRIGGER", "NOTRIGGER"); err != nil {
		return nil, err
	}
	if !defs.ValidName(c.Name) || strings.Contains(c.Name, "*") {
		return nil, fmt.Errorf("%w: QLOCAL(%s) is not a valid queue name", ErrValue, c.Name)
	}
	var msg string
	err := env.Repo().Update(func(tx *defs.Tx) error {
		old, err := tx.Queue(c.Name)
		exists := err == nil
		if err != nil && !errors.Is(err, defs.ErrNotFound) {
			return err
		}
		if err := checkDefine(c, "QLOCAL", exists); err != nil {
			return err
		}
		if _, err := tx.QRemote(c.Name); err == nil {
			return fmt.Errorf("%w: %s is a QREMOTE", ErrExists, c.Name)
		}
		q := defs.DefaultQueue(c.Name)
		if alter {
			q = old
		} else if exists {
			q.AMQP = old.AMQP // MQSC does not set them: REPLACE keeps them
		}
		if err := applyQueueAttrs(&q, c); err != nil {
			return err
		}
		if err := q.Validate(); err != nil {
			return fmt.Errorf("%w: %v", ErrValue, err)
		}
		if exists && q.CFStruct != old.CFStruct {
			return fmt.Errorf("%w: CFSTRUCT of QLOCAL(%s) cannot change (it is %s); delete and define it again", ErrValue, c.Name, old.CFStruct)
		}
		sdef, err := tx.Struct(q.CFStruct)
		if err != nil {
			return fmt.Errorf("%w: CFSTRUCT(%s) is not defined", ErrNotFound, q.CFStruct)
		}
		if _, err := tx.Save(defs.TypeQLocal, q.Name, q, defs.Replace); err != nil {
			return err
		}
		o, s, err := env.OwnerIn(sdef)
		if err != nil {
			return err
		}
		attrs := CFAttrs(q)
		if id, err := s.LookupQueue(q.Name); err == nil {
			if err := s.SetQueueAttrs(id, attrs); err != nil {
				if errors.Is(err, lockfree.ErrQueueNotEmpty) {
					return fmt.Errorf("%w: INDXTYPE of QLOCAL(%s) changes only while it is empty", ErrNotEmpty, q.Name)
				}
				return err
			}
		} else if _, err := o.CreateQueue(q.Name, attrs); err != nil {
			if errors.Is(err, lockfree.ErrNoQueueSlot) {
				return fmt.Errorf("%w: structure %s holds no more queues", ErrValue, q.CFStruct)
			}
			return err
		}
		msg = "AMQ8006I: Queue created."
		if alter {
			msg = "AMQ8008I: Queue changed."
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return []Result{{Message: msg}}, env.DefsChanged()
}

// CFAttrs are the attributes the CF enforces for a queue definition (the
// member's start and DEFINE/ALTER QLOCAL use this one mapping).
func CFAttrs(q defs.Queue) lockfree.QueueAttrs {
	a := lockfree.QueueAttrs{MaxDepth: q.MaxDepth, MaxMsgLen: q.MaxMsgL,
		IndexMsgID: q.IndxType == "MSGID", IndexCorrelID: q.IndxType == "CORRELID"}
	if q.MaxDepth == 0 {
		a.MaxDepth = lockfree.MaxDepthNone
	}
	if q.MaxMsgL == 0 {
		a.MaxMsgLen = lockfree.MaxMsgLenEmpty
	}
	return a
}

// cfQueue finds a defined queue in the CF. tx, when not nil, is the
// caller's transaction (a second one would wait for it).
func cfQueue(env Env, tx *defs.Tx, q defs.Queue) (*lockfree.Owner, *lockfree.Structure, lockfree.QueueID, error) {
	var sdef defs.CFStruct
	var err error
	if tx != nil {
		sdef, err = tx.Struct(q.CFStruct)
	} else {
		err = env.Repo().View(func(tx *defs.Tx) error { sdef, err = tx.Struct(q.CFStruct); return err })
	}
	if err != nil {
		return nil, nil, 0, err
	}
	o, s, err := env.OwnerIn(sdef)
	if err != nil {
		return nil, nil, 0, err
	}
	id, err := s.LookupQueue(q.Name)
	return o, s, id, err
}

func deleteQueue(env Env, c Command) ([]Result, error) {
	if err := checkFlags(c, "PURGE", "NOPURGE"); err != nil {
		return nil, err
	}
	err := env.Repo().Update(func(tx *defs.Tx) error {
		q, err := tx.Queue(c.Name)
		if err != nil {
			return fmt.Errorf("%w: QLOCAL(%s)", ErrNotFound, c.Name)
		}
		o, s, id, err := cfQueue(env, tx, q)
		if err == nil {
			info, err := s.QueueInfo(id)
			if err != nil {
				return err
			}
			if info.OpenIn+info.OpenOut > 0 {
				return fmt.Errorf("%w: QLOCAL(%s) is open (IPPROCS %d, OPPROCS %d)", ErrInUse, c.Name, info.OpenIn, info.OpenOut)
			}
			if info.Uncom > 0 {
				return fmt.Errorf("%w: QLOCAL(%s) has %d uncommitted messages", ErrInUse, c.Name, info.Uncom)
			}
			if info.Depth > 0 && !c.Has("PURGE") {
				return fmt.Errorf("%w: QLOCAL(%s) holds %d messages (add PURGE to delete them)", ErrNotEmpty, c.Name, info.Depth)
			}
			if err := drain(o, id); err != nil {
				return err
			}
			if err := o.DeleteQueue(id); err != nil {
				return err
			}
		} else if !errors.Is(err, lockfree.ErrUnknownQueue) {
			return err
		}
		if err := tx.DeleteBindingsOf(defs.DestQueue, c.Name); err != nil {
			return err
		}
		return tx.Delete(defs.TypeQLocal, c.Name)
	})
	if err != nil {
		return nil, err
	}
	return []Result{{Message: "AMQ8007I: Queue deleted."}}, env.DefsChanged()
}

func drain(o *lockfree.Owner, id lockfree.QueueID) error {
	var m lockfree.Message
	for {
		err := o.Get(id, lockfree.GetOptions{}, &m)
		if errors.Is(err, lockfree.ErrNoMessage) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

func clearQueue(env Env, c Command) ([]Result, error) {
	if err := checkFlags(c); err != nil {
		return nil, err
	}
	var q defs.Queue
	if err := env.Repo().View(func(tx *defs.Tx) error { var err error; q, err = tx.Queue(c.Name); return err }); err != nil {
		return nil, fmt.Errorf("%w: QLOCAL(%s)", ErrNotFound, c.Name)
	}
	o, s, id, err := cfQueue(env, nil, q)
	if err != nil {
		return nil, err
	}
	info, err := s.QueueInfo(id)
	if err != nil {
		return nil, err
	}
	if info.OpenIn+info.OpenOut > 0 || info.Uncom > 0 {
		return nil, fmt.Errorf("%w: QLOCAL(%s) is open or has uncommitted messages", ErrInUse, c.Name)
	}
	if err := env.LogClear(q.CFStruct, q.Name); err != nil {
		return nil, fmt.Errorf("log the clearing of QLOCAL(%s): %w", c.Name, err)
	}
	if err := drain(o, id); err != nil {
		return nil, err
	}
	return []Result{{Message: "AMQ8022I: Queue cleared."}}, nil
}

func trigger(b bool) string {
	if b {
		return "TRIGGER"
	}
	return "NOTRIGGER"
}

func displayQueues(env Env, c Command) ([]Result, error) {
	return display(c, &qlocalTable, func() ([]queueObj, error) {
		var qs []defs.Queue
		if err := env.Repo().View(func(tx *defs.Tx) error { var err error; qs, err = tx.Queues(c.Name); return err }); err != nil {
			return nil, err
		}
		out := make([]queueObj, len(qs))
		for i, q := range qs {
			out[i] = queueObj{Queue: q}
			if _, s, id, err := cfQueue(env, nil, q); err == nil {
				out[i].depth = s.Depth(id)
			}
		}
		return out, nil
	})
}

// qstatusObj is a local queue's status: its definition and what the CF
// says of it.
type qstatusObj struct {
	q    defs.Queue
	info lockfree.QueueInfo
}

var qstatusTable = table[qstatusObj]{
	typ: "QSTATUS", header: "AMQ8450I: Display queue status details.", defaultAll: true, notFound: notFoundAs("QLOCAL"),
	attrs: []attr[qstatusObj]{
		{name: "QUEUE", ident: true, show: func(s *qstatusObj) any { return s.q.Name }},
		{name: "TYPE", ident: true, show: func(s *qstatusObj) any { return "QUEUE" }},
		{name: "CURDEPTH", show: func(s *qstatusObj) any { return s.info.Depth }},
		{name: "UNCOM", show: func(s *qstatusObj) any { return s.info.Uncom }},
		{name: "IPPROCS", show: func(s *qstatusObj) any { return s.info.OpenIn }},
		{name: "OPPROCS", show: func(s *qstatusObj) any { return s.info.OpenOut }},
		{name: "CFSTRUCT", show: func(s *qstatusObj) any { return s.q.CFStruct }},
	},
}

func displayQStatus(env Env, c Command) ([]Result, error) {
	return display(c, &qstatusTable, func() ([]qstatusObj, error) {
		var qs []defs.Queue
		if err := env.Repo().View(func(tx *defs.Tx) error { var err error; qs, err = tx.Queues(c.Name); return err }); err != nil {
			return nil, err
		}
		var out []qstatusObj
		for _, q := range qs {
			_, s, id, err := cfQueue(env, nil, q)
			if err != nil {
				return out, fmt.Errorf("QSTATUS(%s): %w", q.Name, err)
			}
			info, err := s.QueueInfo(id)
			if err != nil {
				return out, err
			}
			out = append(out, qstatusObj{q: q, info: info})
		}
		return out, nil
	})
}
