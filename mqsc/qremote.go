package mqsc

import (
	"errors"
	"fmt"
	"strings"

	"github.com/qmgr/qmgr/defs"
)

func defineQRemote(env Env, c Command) ([]Result, error) {
	alter := c.Verb == "ALTER"
	if err := checkFlags(c, "REPLACE", "NOREPLACE"); err != nil {
		return nil, err
	}
	if !defs.ValidName(c.Name) {
		return nil, fmt.Errorf("%w: QREMOTE(%s) is not a valid queue name", ErrValue, c.Name)
	}
	err := env.Repo().Update(func(tx *defs.Tx) error {
		old, err := tx.QRemote(c.Name)
		exists := err == nil
		if err != nil && !errors.Is(err, defs.ErrNotFound) {
			return err
		}
		if err := checkDefine(c, "QREMOTE", exists); err != nil {
			return err
		}
		if _, err := tx.Queue(c.Name); err == nil {
			return fmt.Errorf("%w: %s is a QLOCAL", ErrExists, c.Name)
		}
		q := defs.QRemote{Name: c.Name}
		if alter {
			q = old
		}
		for _, a := range c.Attrs {
			var err error
			switch a.Key {
			case "RNAME":
				q.RName, err = parseName(a, defs.ValidName)
			case "RQMNAME":
				q.RQMName, err = parseName(a, defs.ValidName)
			case "XMITQ":
				q.XmitQ, err = parseName(a, defs.ValidName)
			case "DESCR":
				q.Descr = a.Value
			default:
				err = fmt.Errorf("%w: %q is not an attribute of QREMOTE", ErrSyntax, a.Key+"("+a.Value+")")
			}
			if err != nil {
				return err
			}
		}
		if err := q.Validate(); err != nil {
			return fmt.Errorf("%w: %v", ErrValue, err)
		}
		_, err = tx.Save(defs.TypeQRemote, q.Name, q, defs.Replace)
		return err
	})
	if err != nil {
		return nil, err
	}
	msg := "AMQ8006I: Queue created."
	if alter {
		msg = "AMQ8008I: Queue changed."
	}
	return []Result{{Message: msg}}, env.DefsChanged()
}

// deleteObject deletes a definition that has nothing in the CF.
func deleteObject(env Env, c Command, typ defs.Type, msg string) ([]Result, error) {
	if err := checkFlags(c); err != nil {
		return nil, err
	}
	err := env.Repo().Update(func(tx *defs.Tx) error {
		if err := tx.Delete(typ, c.Name); err != nil {
			if errors.Is(err, defs.ErrNotFound) {
				return fmt.Errorf("%w: %s(%s)", ErrNotFound, typ, c.Name)
			}
			return err
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return []Result{{Message: msg}}, env.DefsChanged()
}

func displayQRemotes(env Env, c Command) ([]Result, error) {
	if err := checkFlags(c, "ALL"); err != nil {
		return nil, err
	}
	var qs []defs.QRemote
	if err := env.Repo().View(func(tx *defs.Tx) error { var err error; qs, err = tx.QRemotes(c.Name); return err }); err != nil {
		return nil, err
	}
	if len(qs) == 0 && !strings.HasSuffix(c.Name, "*") {
		return nil, fmt.Errorf("%w: QREMOTE(%s)", ErrNotFound, c.Name)
	}
	var out []Result
	for _, q := range qs {
		cd, ct := mqDate(q.Created)
		out = append(out, Result{Header: "AMQ8409I: Display Queue details.", Attrs: []KV{
			{"QUEUE", q.Name}, {"TYPE", "QREMOTE"}, {"RNAME", q.RName}, {"RQMNAME", q.RQMName},
			{"XMITQ", q.XmitQ}, {"DESCR", q.Descr}, {"CRDATE", cd}, {"CRTIME", ct}}})
	}
	return out, nil
}
