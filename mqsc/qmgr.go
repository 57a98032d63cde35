package mqsc

import (
	"fmt"
	"strconv"

	"github.com/qmgr/qmgr/defs"
	"github.com/qmgr/qmgr/group"
)

// counter is the group's counter c (-1 if it cannot be read).
func counter(env Env, c int) int64 {
	v, err := env.Group().Counter(c)
	if err != nil {
		return -1
	}
	return int64(v)
}

// qmgrObj is the group's queue manager definition, with the member that
// shows it (its name and counters).
type qmgrObj struct {
	defs.QMgr
	env Env
}

var qmgrTable = table[qmgrObj]{
	typ: "QMGR", header: "AMQ8408I: Display Queue Manager details.", defaultAll: true,
	attrs: []attr[qmgrObj]{
		{name: "QMNAME", ident: true, show: func(m *qmgrObj) any { return m.env.QMgrName() }},
		{name: "QSGNAME", show: func(m *qmgrObj) any { return m.env.Group().Config().Name }},
		{name: "DEADQ", show: func(m *qmgrObj) any { return m.DeadQ }, set: func(m *qmgrObj, a Attr) (err error) {
			m.DeadQ, err = parseName(a, defs.ValidName)
			return err
		}},
		{name: "DESCR", show: func(m *qmgrObj) any { return m.Descr }, set: func(m *qmgrObj, a Attr) error {
			m.Descr = a.Value
			return nil
		}},
		{name: "CFRECTIME", show: func(m *qmgrObj) any { return int64(m.CFRecTime) }, set: func(m *qmgrObj, a Attr) error {
			n, err := strconv.Atoi(a.Value)
			if err != nil {
				return fmt.Errorf("%w: CFRECTIME(%s) is not a number of milliseconds", ErrValue, a.Value)
			}
			m.CFRecTime = n
			return nil
		}},
		{name: "LONGUOWS", show: func(m *qmgrObj) any { return m.env.LongUOWsBackedOut() }},
		{name: "CMDREFUSED", show: func(m *qmgrObj) any { return m.env.CommandsRefused() }},
		{name: "INREFUSED", show: func(m *qmgrObj) any { return counter(m.env, group.CounterInboundRefused) }},
		{name: "INTIMEOUT", show: func(m *qmgrObj) any { return counter(m.env, group.CounterInboundTimedOut) }},
		{name: "INUNAUTH", show: func(m *qmgrObj) any { return counter(m.env, group.CounterInboundUnauth) }},
		{name: "CHINIT", show: func(m *qmgrObj) any { return childAttr(m.env, func(c Children) string { return c.Chinit.State }) }},
		{name: "AMQP", show: func(m *qmgrObj) any { return childAttr(m.env, func(c Children) string { return c.AMQP.State }) }},
		{name: "AMQPADDR", show: func(m *qmgrObj) any { return childAttr(m.env, func(c Children) string { return c.AMQPAddr }) }},
		{name: "AMQPGENADDR", show: func(m *qmgrObj) any { return childAttr(m.env, func(c Children) string { return c.AMQPGenericAddr }) }},
	},
}

// ChildEnv is a member with child processes (the channel initiator, the
// AMQP listener), which DISPLAY QMGR shows: CHINIT and AMQP (their
// states), AMQPADDR and AMQPGENADDR (the listener's addresses). Without
// it, or for an address the member does not listen on, the attributes are
// left out.
type ChildEnv interface {
	Children() Children
}

// Children is the state of a member's child processes.
type Children struct {
	Chinit, AMQP Child
	// AMQPAddr and AMQPGenericAddr are the AMQP listener's member's and
	// generic port ("host:port"; "" for none).
	AMQPAddr, AMQPGenericAddr string
}

// Child is one child process of a member.
type Child struct {
	// State is RUNNING (its process runs), STARTING (wanted, and between
	// two starts: it ended and is restarted after a backoff), STOPPED
	// (STOP CHINIT) or NONE (the member runs no such child).
	State string
	// Pid is its process id while it runs; Starts counts its starts.
	Pid, Starts int
}

// childAttr is what f picks from the member's children, nil (left out)
// when the member has none or f picks "".
func childAttr(env Env, f func(Children) string) any {
	ce, ok := env.(ChildEnv)
	if !ok {
		return nil
	}
	if v := f(ce.Children()); v != "" {
		return v
	}
	return nil
}

// qmgr runs ALTER and DISPLAY QMGR.
func qmgr(env Env, c Command) ([]Result, error) {
	if c.Verb == "DISPLAY" {
		return display(c, &qmgrTable, func() ([]qmgrObj, error) {
			var m defs.QMgr
			if err := env.Repo().View(func(tx *defs.Tx) error { var err error; m, err = tx.QMgr(); return err }); err != nil {
				return nil, err
			}
			return []qmgrObj{{QMgr: m, env: env}}, nil
		})
	}
	if err := checkFlags(c); err != nil {
		return nil, err
	}
	err := env.Repo().Update(func(tx *defs.Tx) error {
		m, err := tx.QMgr()
		if err != nil {
			return err
		}
		o := qmgrObj{QMgr: m, env: env}
		if err := qmgrTable.apply(&o, c.Attrs); err != nil {
			return err
		}
		m = o.QMgr
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
