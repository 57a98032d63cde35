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
	},
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
