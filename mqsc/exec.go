package mqsc

import (
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/qmgr/qmgr/defs"
	"github.com/qmgr/qmgr/group"
	"github.com/qmgr/qmgr/lockfree"
	"github.com/qmgr/qmgr/recovery/logbuf"
)

// Sentinel errors of command execution (besides ErrSyntax).
var (
	ErrNotFound = errors.New("mqsc: object not found")
	ErrExists   = errors.New("mqsc: object already exists")
	ErrInUse    = errors.New("mqsc: object in use")
	ErrNotEmpty = errors.New("mqsc: queue not empty")
	ErrValue    = errors.New("mqsc: invalid value")
)

// Env is what commands act on: the member running them.
type Env interface {
	Repo() *defs.Repo
	Group() *group.Group
	// OwnerIn is the member's owner in application structure c (whose file
	// is created when missing). c comes from the caller's transaction.
	OwnerIn(c defs.CFStruct) (*lockfree.Owner, *lockfree.Structure, error)
	// CreateStructure creates the file of a newly defined structure.
	CreateStructure(c defs.CFStruct) error
	// DefsChanged tells every process the definitions changed.
	DefsChanged() error
	// QMgrName is the member's name.
	QMgrName() string
	// LongUOWsBackedOut is how many long-running units of work the member
	// backed out since it started (DISPLAY QMGR LONGUOWS).
	LongUOWsBackedOut() int64
	// CommandsRefused is how many command connections the member refused
	// since it started: peers of another user outside the group
	// (DISPLAY QMGR CMDREFUSED).
	CommandsRefused() int64
	// LogClear makes the clearing of a queue durable in the member's
	// recovery log (its persistent messages must not come back when the
	// structure is recovered).
	LogClear(structure, queue string) error
	// Backup takes a fuzzy backup of an application structure's persistent
	// messages and describes it.
	Backup(structure string) (string, error)
	// Recover rebuilds a failed application structure from its newest
	// backup and the logs, and says what it did.
	Recover(structure string) (string, error)
}

// KV is one attribute of a result: the value is an int64 or a string.
type KV struct {
	Key   string
	Value any
}

// Result is what a command produced: a message, or one displayed object.
type Result struct {
	Message string // for commands that change things
	Header  string // for displays: the MQSC header line
	Attrs   []KV
}

// Execute runs one command. A command that fails changes nothing.
func Execute(env Env, c Command) ([]Result, error) {
	switch c.Verb + " " + c.Type {
	case "DEFINE QLOCAL", "ALTER QLOCAL":
		return defineQueue(env, c)
	case "DELETE QLOCAL":
		return deleteQueue(env, c)
	case "CLEAR QLOCAL":
		return clearQueue(env, c)
	case "DISPLAY QLOCAL":
		return displayQueues(env, c)
	case "DISPLAY QSTATUS":
		return displayQStatus(env, c)
	case "DEFINE CFSTRUCT", "ALTER CFSTRUCT":
		return defineStruct(env, c)
	case "DISPLAY CFSTRUCT":
		return displayStructs(env, c)
	case "DISPLAY CFSTATUS":
		return displayCFStatus(env, c)
	case "BACKUP CFSTRUCT":
		return structAction(env, c, env.Backup)
	case "RECOVER CFSTRUCT":
		return structAction(env, c, env.Recover)
	case "DISPLAY GROUP":
		return displayGroup(env, c)
	case "DISPLAY CONN":
		return displayConns(env, c)
	case "ALTER QMGR", "DISPLAY QMGR":
		return qmgr(env, c)
	case "DEFINE QREMOTE", "ALTER QREMOTE":
		return defineQRemote(env, c)
	case "DELETE QREMOTE":
		return deleteObject(env, c, defs.TypeQRemote, "AMQ8007I: Queue deleted.")
	case "DISPLAY QREMOTE":
		return displayQRemotes(env, c)
	case "DEFINE CHANNEL", "ALTER CHANNEL":
		return defineChannel(env, c)
	case "DELETE CHANNEL":
		return deleteChannel(env, c)
	case "DISPLAY CHANNEL":
		return displayChannels(env, c)
	case "START CHANNEL":
		return startChannel(env, c)
	case "STOP CHANNEL":
		return stopChannel(env, c)
	case "DISPLAY CHSTATUS":
		return displayChStatus(env, c)
	case "RESET CHANNEL":
		return resetChannel(env, c)
	case "RESOLVE CHANNEL":
		return resolveChannel(env, c)
	case "START CHINIT", "STOP CHINIT":
		return chinit(env, c)
	}
	return nil, fmt.Errorf("%w: %s %s is not supported", ErrSyntax, c.Verb, c.Type)
}

// Run parses and executes every command in input, stopping at the first
// error.
func Run(env Env, input string) ([]Result, error) {
	cmds, err := Parse(input)
	if err != nil {
		return nil, err
	}
	var out []Result
	for _, c := range cmds {
		rs, err := Execute(env, c)
		out = append(out, rs...)
		if err != nil {
			return out, err
		}
	}
	return out, nil
}

func checkFlags(c Command, allowed ...string) error {
	for _, f := range c.Flags {
		ok := false
		for _, a := range allowed {
			ok = ok || f == a
		}
		if !ok {
			return fmt.Errorf("%w: %q is not a keyword of %s %s", ErrSyntax, f, c.Verb, c.Type)
		}
	}
	return nil
}

func parseInt(a Attr, lo, hi int64) (int64, error) {
	v, err := strconv.ParseInt(a.Value, 10, 64)
	if err != nil || a.Quoted {
		return 0, fmt.Errorf("%w: %s(%s) is not a number", ErrValue, a.Key, a.Value)
	}
	if v < lo || v > hi {
		return 0, fmt.Errorf("%w: %s(%d) not in %d..%d", ErrValue, a.Key, v, lo, hi)
	}
	return v, nil
}

func parseYesNo(a Attr) (bool, error) {
	switch a.Value {
	case "YES":
		return true, nil
	case "NO":
		return false, nil
	}
	return false, fmt.Errorf("%w: %s(%s) is not YES or NO", ErrValue, a.Key, a.Value)
}

func parseName(a Attr, valid func(string) bool) (string, error) {
	if a.Value == "" {
		return "", nil
	}
	if !valid(a.Value) {
		return "", fmt.Errorf("%w: %s(%s) is not a valid name", ErrValue, a.Key, a.Value)
	}
	return a.Value, nil
}

func parseEnum(a Attr, values ...string) (string, error) {
	for _, v := range values {
		if a.Value == v {
			return v, nil
		}
	}
	return "", fmt.Errorf("%w: %s(%s) is not one of %s", ErrValue, a.Key, a.Value, strings.Join(values, ", "))
}

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

// checkDefine applies MQSC's rule for DEFINE and ALTER of an object of
// type typ that exists or not: ALTER needs it, DEFINE of an existing one
// needs REPLACE.
func checkDefine(c Command, typ string, exists bool) error {
	switch {
	case c.Verb == "ALTER" && !exists:
		return fmt.Errorf("%w: %s(%s)", ErrNotFound, typ, c.Name)
	case c.Verb != "ALTER" && exists && !c.Has("REPLACE"):
		return fmt.Errorf("%w: %s(%s) (add REPLACE to redefine it)", ErrExists, typ, c.Name)
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

func mqDate(t time.Time) (string, string) {
	return t.Format("2006-01-02"), t.Format("15.04.05")
}

var queueAttrOrder = []string{"MAXDEPTH", "MAXMSGL", "DEFPSIST", "DEFPRTY", "BOTHRESH", "BOQNAME", "CFSTRUCT", "INDXTYPE", "USAGE", "TRIGGER", "TRIGDATA", "DESCR", "CURDEPTH", "CRDATE", "CRTIME", "ALTDATE", "ALTTIME"}

func trigger(b bool) string {
	if b {
		return "TRIGGER"
	}
	return "NOTRIGGER"
}

func yesNo(b bool) string {
	if b {
		return "YES"
	}
	return "NO"
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

func defineStruct(env Env, c Command) ([]Result, error) {
	if err := checkFlags(c, "REPLACE", "NOREPLACE"); err != nil {
		return nil, err
	}
	if !defs.ValidStructName(c.Name) {
		return nil, fmt.Errorf("%w: CFSTRUCT(%s): 1 to 12 letters and digits, starting with a letter", ErrValue, c.Name)
	}
	// The checks run twice: first to learn whether a structure file must be
	// created (which can take a while for a large one, so it is done outside
	// the repository's write transaction), then again in that transaction.
	var def defs.CFStruct
	created := false
	decide := func(tx *defs.Tx) error {
		old, err := tx.Struct(c.Name)
		exists := err == nil
		if err := checkDefine(c, "CFSTRUCT", exists); err != nil {
			return err
		}
		def = defs.CFStruct{Name: c.Name, SizeMB: 256}
		if exists {
			def = old
		}
		for _, a := range c.Attrs {
			switch a.Key {
			case "SIZE":
				n, err := parseInt(a, 16, 1<<20)
				if err != nil {
					return err
				}
				if exists && int(n) != old.SizeMB {
					return fmt.Errorf("%w: SIZE of CFSTRUCT(%s) is fixed at creation (%d MiB)", ErrValue, c.Name, old.SizeMB)
				}
				def.SizeMB = int(n)
			case "ELEMSIZE":
				n, err := parseInt(a, 64, 1<<20)
				if err != nil {
					return err
				}
				if exists && int(n) != old.ElemSize {
					return fmt.Errorf("%w: ELEMSIZE of CFSTRUCT(%s) is fixed at creation", ErrValue, c.Name)
				}
				def.ElemSize = int(n)
			case "DESCR":
				def.Descr = a.Value
			case "RECAUTO":
				switch a.Value {
				case "YES":
					def.NoRecAuto = false
				case "NO":
					def.NoRecAuto = true
				default:
					return fmt.Errorf("%w: RECAUTO(%s): YES or NO", ErrValue, a.Value)
				}
			default:
				return fmt.Errorf("%w: %q is not an attribute of CFSTRUCT", ErrSyntax, a.Key+"("+a.Value+")")
			}
		}
		if err := def.Validate(); err != nil {
			return fmt.Errorf("%w: %v", ErrValue, err)
		}
		created = !exists
		return nil
	}
	if err := env.Repo().View(decide); err != nil {
		return nil, err
	}
	if created {
		if err := env.CreateStructure(def); err != nil {
			return nil, err
		}
	}
	err := env.Repo().Update(func(tx *defs.Tx) error {
		wasCreated := created
		if err := decide(tx); err != nil {
			return err
		}
		if created && !wasCreated {
			return fmt.Errorf("%w: CFSTRUCT(%s) was deleted concurrently; try again", ErrExists, c.Name)
		}
		_, err := tx.Save(defs.TypeCFStruct, def.Name, def, defs.Replace)
		return err
	})
	if err != nil {
		return nil, err
	}
	msg := "AMQ8110I: CF structure created."
	if !created {
		msg = "AMQ8111I: CF structure changed."
	}
	return []Result{{Message: msg}}, env.DefsChanged()
}

func displayStructs(env Env, c Command) ([]Result, error) {
	if err := checkFlags(c, "ALL"); err != nil {
		return nil, err
	}
	var cs []defs.CFStruct
	if err := env.Repo().View(func(tx *defs.Tx) error { var err error; cs, err = tx.Structs(c.Name); return err }); err != nil {
		return nil, err
	}
	if len(cs) == 0 && !strings.HasSuffix(c.Name, "*") {
		return nil, fmt.Errorf("%w: CFSTRUCT(%s)", ErrNotFound, c.Name)
	}
	var out []Result
	for _, s := range cs {
		cd, ct := mqDate(s.Created)
		recauto := "YES"
		if s.NoRecAuto {
			recauto = "NO"
		}
		elem := int64(s.ElemSize)
		if elem == 0 { // the group's default when it was created
			elem = int64(env.Group().Config().AppElementSize)
			if st, err := env.Group().Structure(s.Name, false); err == nil {
				elem = int64(st.Params().ElementSize)
			}
		}
		out = append(out, Result{Header: "AMQ8112I: Display CF structure details.", Attrs: []KV{
			{"CFSTRUCT", s.Name}, {"SIZE", int64(s.SizeMB)}, {"ELEMSIZE", elem}, {"RECAUTO", recauto}, {"DESCR", s.Descr}, {"CRDATE", cd}, {"CRTIME", ct}}})
	}
	return out, nil
}

func displayCFStatus(env Env, c Command) ([]Result, error) {
	if err := checkFlags(c, "ALL"); err != nil {
		return nil, err
	}
	typ := "SUMMARY"
	for _, a := range c.Attrs {
		if a.Key != "TYPE" || (a.Value != "SUMMARY" && a.Value != "BACKUP") {
			return nil, fmt.Errorf("%w: DISPLAY CFSTATUS takes TYPE(SUMMARY|BACKUP), not %s(%s)", ErrSyntax, a.Key, a.Value)
		}
		typ = a.Value
	}
	var cs []defs.CFStruct
	if err := env.Repo().View(func(tx *defs.Tx) error { var err error; cs, err = tx.Structs(c.Name); return err }); err != nil {
		return nil, err
	}
	if len(cs) == 0 && !strings.HasSuffix(c.Name, "*") {
		return nil, fmt.Errorf("%w: CFSTRUCT(%s)", ErrNotFound, c.Name)
	}
	if typ == "BACKUP" {
		return displayBackupStatus(env, cs)
	}
	var out []Result
	for _, def := range cs {
		r := Result{Header: "AMQ8113I: Display CF status details.", Attrs: []KV{{"CFSTRUCT", def.Name}}}
		_, s, err := env.OwnerIn(def)
		if errors.Is(err, group.ErrStructureBusy) {
			// Its file is missing and a member holds its recovery lock.
			r.Attrs = append(r.Attrs, KV{"STATUS", "RECOVERING"}, KV{"REASON", "being created and recovered by another member"})
			out = append(out, r)
			continue
		}
		if err != nil {
			r.Attrs = append(r.Attrs, KV{"STATUS", "FAILED"}, KV{"REASON", err.Error()})
			out = append(out, r)
			continue
		}
		if st := env.Group().StructureStatus(s); st.Status != "ACTIVE" {
			r.Attrs = append(r.Attrs, KV{"STATUS", st.Status})
			if st.Recoverer.Pid != 0 {
				r.Attrs = append(r.Attrs, KV{"RECOVERER", st.RecovererName}, KV{"RECPID", int64(st.Recoverer.Pid)})
			}
			r.Attrs = append(r.Attrs, KV{"REASON", st.Reason})
			out = append(out, r)
			continue
		}
		u := s.Usage()
		p := s.Params()
		r.Attrs = append(r.Attrs, KV{"STATUS", "ACTIVE"}, KV{"SIZE", int64(s.Mapping().Header().Size >> 20)},
			KV{"ENTSMAX", int64(p.Entries)}, KV{"ENTSUSED", int64(u.EntriesUsed)},
			KV{"ELEMMAX", int64(p.Elements)}, KV{"ELEMUSED", int64(u.ElementsUsed)},
			KV{"QUEUES", int64(u.Queues)}, KV{"CONNS", int64(u.Owners)})
		out = append(out, r)
	}
	return out, nil
}

func displayGroup(env Env, c Command) ([]Result, error) {
	if err := checkFlags(c, "ALL"); err != nil {
		return nil, err
	}
	peers, err := env.Group().Peers()
	if err != nil {
		return nil, err
	}
	sort.Slice(peers, func(i, j int) bool { return peers[i].Name < peers[j].Name })
	var out []Result
	for _, p := range peers {
		state := strings.ToUpper(p.State.String())
		if p.State.Running() && !p.ProcessAlive() {
			state = "FAILED"
		}
		hb := ""
		if p.Heartbeat != 0 && p.State.Running() {
			hb = time.Since(time.Unix(0, p.Heartbeat)).Round(time.Millisecond).String()
		}
		attrs := []KV{
			{"QMNAME", p.Name}, {"QSGNAME", env.Group().Config().Name}, {"STATUS", state}, {"PID", int64(p.Process.Pid)},
			{"INCARNATION", int64(p.Incarnation)}, {"HEARTBEAT", hb}, {"PORT", int64(p.Port)}, {"GENPORT", int64(p.GenericPort)}}
		if state == "ACTIVE" {
			attrs = append(attrs, logAttrs(env.Group().Config().CFDir, p.Name)...)
		}
		out = append(out, Result{Header: "AMQ8200I: Display group details.", Attrs: attrs})
	}
	return out, nil
}

// logAttrs are a running member's recovery log attributes: LOGSTATUS
// (OK, FAILED, or UNKNOWN when its log buffer cannot be read), LOGFAILS
// (failures since the member started), LOGREASON (why it is failed, or
// why it failed last) and LOGSINCE (when it failed).
func logAttrs(cfDir, member string) []KV {
	st, err := logbuf.ReadStatus(cfDir, member)
	if err != nil {
		return []KV{{"LOGSTATUS", "UNKNOWN"}, {"LOGREASON", err.Error()}}
	}
	kv := []KV{{"LOGSTATUS", "OK"}, {"LOGFAILS", int64(st.Failures)}}
	if st.Failed {
		kv[0].Value = "FAILED"
		kv = append(kv, KV{"LOGSINCE", st.Since.Format(time.RFC3339)})
	}
	if st.Reason != "" {
		kv = append(kv, KV{"LOGREASON", st.Reason})
	}
	if st.ReserveErr != "" {
		kv = append(kv, KV{"LOGRESERVE", st.ReserveErr})
	}
	return kv
}

func displayConns(env Env, c Command) ([]Result, error) {
	if err := checkFlags(c, "ALL"); err != nil {
		return nil, err
	}
	peers, _ := env.Group().Peers()
	names := map[int]string{}
	for _, p := range peers {
		names[p.Slot] = p.Name
	}
	var out []Result
	for _, info := range env.Group().Admin().Owners() {
		id := fmt.Sprintf("%04X%04X", info.Tag.Slot(), info.Tag.Incarnation())
		if c.Name != "*" && !defs.Match(c.Name, id) {
			continue
		}
		qm := ""
		if peer, _, ok := group.LabelPeer(info.Label); ok {
			qm = names[peer]
		}
		uow := "NONE"
		for _, n := range structNames(env) {
			if s, err := env.Group().Structure(n, false); err == nil {
				if oi, ok := s.Owner(info.Tag.Slot()); ok && oi.UOWActive {
					uow = "ACTIVE"
				}
			}
		}
		out = append(out, Result{Header: "AMQ8276I: Display Connection details.", Attrs: []KV{
			{"CONN", id}, {"QMNAME", qm}, {"PID", int64(info.Process.Pid)}, {"STATE", strings.ToUpper(info.State)},
			{"UOWSTATE", uow}, {"SINCE", info.Since.Format(time.RFC3339)}}})
	}
	return out, nil
}

func structNames(env Env) []string {
	names, _ := env.Group().Structures()
	return names
}

// counter is the group's counter c (-1 if it cannot be read).
func counter(env Env, c int) int64 {
	v, err := env.Group().Counter(c)
	if err != nil {
		return -1
	}
	return int64(v)
}

func qmgr(env Env, c Command) ([]Result, error) {
	if c.Verb == "DISPLAY" {
		if err := checkFlags(c, "ALL", "DEADQ", "DESCR", "CFRECTIME", "LONGUOWS", "CMDREFUSED", "INREFUSED", "INTIMEOUT", "INUNAUTH"); err != nil {
			return nil, err
		}
		var m defs.QMgr
		if err := env.Repo().View(func(tx *defs.Tx) error { var err error; m, err = tx.QMgr(); return err }); err != nil {
			return nil, err
		}
		return []Result{{Header: "AMQ8408I: Display Queue Manager details.", Attrs: []KV{
			{"QMNAME", env.QMgrName()}, {"QSGNAME", env.Group().Config().Name}, {"DEADQ", m.DeadQ}, {"DESCR", m.Descr},
			{"CFRECTIME", int64(m.CFRecTime)}, {"LONGUOWS", env.LongUOWsBackedOut()},
			{"CMDREFUSED", env.CommandsRefused()},
			{"INREFUSED", counter(env, group.CounterInboundRefused)}, {"INTIMEOUT", counter(env, group.CounterInboundTimedOut)}, {"INUNAUTH", counter(env, group.CounterInboundUnauth)}}}}, nil
	}
	if err := checkFlags(c); err != nil {
		return nil, err
	}
	err := env.Repo().Update(func(tx *defs.Tx) error {
		m, err := tx.QMgr()
		if err != nil {
			return err
		}
		for _, a := range c.Attrs {
			switch a.Key {
			case "DEADQ":
				if m.DeadQ, err = parseName(a, defs.ValidName); err != nil {
					return err
				}
			case "DESCR":
				m.Descr = a.Value
			case "CFRECTIME":
				n, err := strconv.Atoi(a.Value)
				if err != nil {
					return fmt.Errorf("%w: CFRECTIME(%s) is not a number of milliseconds", ErrValue, a.Value)
				}
				m.CFRecTime = n
			default:
				return fmt.Errorf("%w: %q is not an attribute of QMGR", ErrSyntax, a.Key+"("+a.Value+")")
			}
		}
		if err := m.Validate(); err != nil {
			return fmt.Errorf("%w: %v", ErrValue, err)
		}
		_, err = tx.Save(defs.TypeQMgr, defs.GroupQMgr, m, defs.Replace)
		return err
	})
	if err != nil {
		return nil, err
	}
	return []Result{{Message: "AMQ8005I: Queue manager changed."}}, env.DefsChanged()
}

// Text renders results as MQSC does.
func Text(rs []Result) string {
	var b strings.Builder
	for _, r := range rs {
		if r.Message != "" {
			b.WriteString(r.Message + "\n")
			continue
		}
		b.WriteString(r.Header + "\n")
		for i, kv := range r.Attrs {
			var v string
			switch x := kv.Value.(type) {
			case string:
				if kv.Key == "DESCR" || kv.Key == "REASON" {
					v = "'" + strings.ReplaceAll(x, "'", "''") + "'"
				} else {
					v = x
				}
			default:
				v = fmt.Sprint(x)
			}
			f := fmt.Sprintf("%s(%s)", kv.Key, v)
			if i%2 == 0 {
				b.WriteString("   " + fmt.Sprintf("%-40s", f))
			} else {
				b.WriteString(f + "\n")
			}
		}
		if len(r.Attrs)%2 == 1 {
			b.WriteString("\n")
		}
	}
	return b.String()
}

// JSON renders each result as one JSON object, keys the MQSC attribute
// names ({"QUEUE":"IN","CURDEPTH":5}); a message is {"MESSAGE":"..."}.
func JSON(rs []Result) []string {
	var out []string
	for _, r := range rs {
		var b strings.Builder
		b.WriteByte('{')
		if r.Message != "" {
			m, _ := json.Marshal(r.Message)
			b.WriteString(`"MESSAGE":` + string(m))
		}
		for i, kv := range r.Attrs {
			if i > 0 {
				b.WriteByte(',')
			}
			k, _ := json.Marshal(kv.Key)
			v, _ := json.Marshal(kv.Value)
			b.Write(k)
			b.WriteByte(':')
			b.Write(v)
		}
		b.WriteByte('}')
		out = append(out, b.String())
	}
	return out
}

// structAction runs BACKUP or RECOVER CFSTRUCT(name) through do.
func structAction(env Env, c Command, do func(structure string) (string, error)) ([]Result, error) {
	if err := checkFlags(c); err != nil {
		return nil, err
	}
	if len(c.Attrs) > 0 {
		return nil, fmt.Errorf("%w: %s CFSTRUCT takes no attributes", ErrSyntax, c.Verb)
	}
	if err := env.Repo().View(func(tx *defs.Tx) error { _, err := tx.Struct(c.Name); return err }); err != nil {
		return nil, fmt.Errorf("%w: CFSTRUCT(%s)", ErrNotFound, c.Name)
	}
	msg, err := do(c.Name)
	if err != nil {
		return nil, err
	}
	return []Result{{Message: msg}}, nil
}

// displayBackupStatus shows each structure's newest backup and how long
// a recovery would take now: the bytes logged about the structure since
// the backup began, at the replay rate the last recovery measured (or the
// design's 200 MB/s).
func displayBackupStatus(env Env, cs []defs.CFStruct) ([]Result, error) {
	var out []Result
	for _, def := range cs {
		r := Result{Header: "AMQ8113I: Display CF status details.", Attrs: []KV{{"CFSTRUCT", def.Name}, {"TYPE", "BACKUP"}}}
		var logged uint64
		if _, s, err := env.OwnerIn(def); err == nil {
			logged = s.Logged()
		}
		var e defs.Estimate
		if err := env.Repo().View(func(tx *defs.Tx) error { var err error; e, err = tx.RecoveryEstimate(def.Name, logged); return err }); err != nil {
			return nil, err
		}
		if b := e.Newest; b != nil {
			date, tm := mqDate(b.Taken)
			r.Attrs = append(r.Attrs, KV{"BKUPDATE", date}, KV{"BKUPTIME", tm}, KV{"BKUPLRSN", int64(b.Start)},
				KV{"BKUPSIZE", b.Size}, KV{"BKUPMSGS", int64(b.Messages)})
		} else {
			r.Attrs = append(r.Attrs, KV{"BKUPDATE", ""}, KV{"BKUPTIME", ""}, KV{"BKUPLRSN", int64(0)},
				KV{"BKUPSIZE", int64(0)}, KV{"BKUPMSGS", int64(0)})
		}
		r.Attrs = append(r.Attrs, KV{"LOGBYTES", int64(e.Bytes)}, KV{"REPLAYMBS", int64(e.Rate.BytesPerSec / 1e6)},
			KV{"RECOVERMS", e.Time.Milliseconds()})
		out = append(out, r)
	}
	return out, nil
}
