package mqsc

import (
	"errors"
	"fmt"
	"strings"

	"github.com/qmgr/qmgr/defs"
	"github.com/qmgr/qmgr/lockfree"
)

// applyQueueAttrs sets q's attributes from the command.
func applyQueueAttrs(q *defs.Queue, c Command) error {
	for _, a := range c.Attrs {
		var err error
		var n int64
		switch a.Key {
		case "MAXDEPTH":
			n, err = parseInt(a, 0, 999_999_999)
			q.MaxDepth = n
		case "MAXMSGL":
			n, err = parseInt(a, 0, 100<<20)
			q.MaxMsgL = int(n)
		case "DEFPSIST":
			q.DefPsist, err = parseYesNo(a)
		case "DEFPRTY":
			n, err = parseInt(a, 0, 9)
			q.DefPrty = int(n)
		case "BOTHRESH":
			n, err = parseInt(a, 0, 999_999_999)
			q.BOThresh = int(n)
		case "BOQNAME":
			q.BOQName, err = parseName(a, defs.ValidName)
		case "CFSTRUCT":
			q.CFStruct, err = parseName(a, defs.ValidStructName)
			if q.CFStruct == "" {
				err = fmt.Errorf("%w: CFSTRUCT() must name a structure", ErrValue)
			}
		case "INDXTYPE":
			q.IndxType, err = parseEnum(a, "NONE", "MSGID", "CORRELID")
		case "USAGE":
			q.Usage, err = parseEnum(a, "NORMAL", "XMITQ")
		case "TRIGDATA":
			q.TrigData, err = parseName(a, defs.ValidChannelName)
		case "DESCR":
			q.Descr = a.Value
			if len(q.Descr) > 64 {
				err = fmt.Errorf("%w: DESCR longer than 64 characters", ErrValue)
			}
		default:
			err = fmt.Errorf("%w: %q is not an attribute of QLOCAL", ErrSyntax, a.Key+"("+a.Value+")")
		}
		if err != nil {
			return err
		}
	}
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
		attrs := cfAttrs(q)
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

// cfAttrs are the attributes the CF enforces (as qm.CFAttrs).
func cfAttrs(q defs.Queue) lockfree.QueueAttrs {
	a := lockfree.QueueAttrs{MaxDepth: q.MaxDepth, MaxMsgLen: q.MaxMsgL,
		IndexMsgID: q.IndxType == "MSGID", IndexCorrelID: q.IndxType == "CORRELID"}
	if q.MaxDepth == 0 {
		a.MaxDepth = -1
	}
	if q.MaxMsgL == 0 {
		a.MaxMsgLen = -1
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

var queueAttrOrder = []string{"MAXDEPTH", "MAXMSGL", "DEFPSIST", "DEFPRTY", "BOTHRESH", "BOQNAME", "CFSTRUCT", "INDXTYPE", "USAGE", "TRIGGER", "TRIGDATA", "DESCR", "CURDEPTH", "CRDATE", "CRTIME", "ALTDATE", "ALTTIME"}

func trigger(b bool) string {
	if b {
		return "TRIGGER"
	}
	return "NOTRIGGER"
}

func displayQueues(env Env, c Command) ([]Result, error) {
	want, all := map[string]bool{}, c.Has("ALL")
	for _, f := range c.Flags {
		if f == "ALL" {
			continue
		}
		known := false
		for _, a := range queueAttrOrder {
			known = known || a == f
		}
		if !known {
			return nil, fmt.Errorf("%w: %q is not an attribute of QLOCAL", ErrSyntax, f)
		}
		want[f] = true
	}
	if len(c.Attrs) > 0 {
		return nil, fmt.Errorf("%w: %q: DISPLAY takes attribute names, not values", ErrSyntax, c.Attrs[0].Key)
	}
	var qs []defs.Queue
	if err := env.Repo().View(func(tx *defs.Tx) error { var err error; qs, err = tx.Queues(c.Name); return err }); err != nil {
		return nil, err
	}
	if len(qs) == 0 && !strings.HasSuffix(c.Name, "*") {
		return nil, fmt.Errorf("%w: QLOCAL(%s)", ErrNotFound, c.Name)
	}
	var out []Result
	for _, q := range qs {
		depth := int64(0)
		if _, s, id, err := cfQueue(env, nil, q); err == nil {
			depth = s.Depth(id)
		}
		cd, ct := mqDate(q.Created)
		ad, at := mqDate(q.Altered)
		vals := map[string]any{"MAXDEPTH": q.MaxDepth, "MAXMSGL": int64(q.MaxMsgL), "DEFPSIST": yesNo(q.DefPsist),
			"DEFPRTY": int64(q.DefPrty), "BOTHRESH": int64(q.BOThresh), "BOQNAME": q.BOQName, "CFSTRUCT": q.CFStruct,
			"INDXTYPE": q.IndxType, "USAGE": q.Usage, "TRIGGER": trigger(q.Trigger), "TRIGDATA": q.TrigData, "DESCR": q.Descr, "CURDEPTH": depth,
			"CRDATE": cd, "CRTIME": ct, "ALTDATE": ad, "ALTTIME": at}
		r := Result{Header: "AMQ8409I: Display Queue details.", Attrs: []KV{{"QUEUE", q.Name}, {"TYPE", "QLOCAL"}}}
		for _, k := range queueAttrOrder {
			if all || want[k] {
				r.Attrs = append(r.Attrs, KV{k, vals[k]})
			}
		}
		out = append(out, r)
	}
	return out, nil
}

func displayQStatus(env Env, c Command) ([]Result, error) {
	if err := checkFlags(c, "ALL", "CURDEPTH", "UNCOM", "IPPROCS", "OPPROCS"); err != nil {
		return nil, err
	}
	var qs []defs.Queue
	if err := env.Repo().View(func(tx *defs.Tx) error { var err error; qs, err = tx.Queues(c.Name); return err }); err != nil {
		return nil, err
	}
	if len(qs) == 0 && !strings.HasSuffix(c.Name, "*") {
		return nil, fmt.Errorf("%w: QLOCAL(%s)", ErrNotFound, c.Name)
	}
	var out []Result
	for _, q := range qs {
		_, s, id, err := cfQueue(env, nil, q)
		if err != nil {
			return out, fmt.Errorf("QSTATUS(%s): %w", q.Name, err)
		}
		info, err := s.QueueInfo(id)
		if err != nil {
			return out, err
		}
		out = append(out, Result{Header: "AMQ8450I: Display queue status details.", Attrs: []KV{
			{"QUEUE", q.Name}, {"TYPE", "QUEUE"}, {"CURDEPTH", info.Depth}, {"UNCOM", info.Uncom},
			{"IPPROCS", info.OpenIn}, {"OPPROCS", info.OpenOut}, {"CFSTRUCT", q.CFStruct}}})
	}
	return out, nil
}
