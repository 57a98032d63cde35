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
