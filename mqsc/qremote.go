package mqsc

import (
	"errors"
	"fmt"

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
		if err := qremoteTable.apply(&q, c.Attrs); err != nil {
			return err
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

var qremoteTable = table[defs.QRemote]{
	typ: "QREMOTE", header: "AMQ8409I: Display Queue details.", defaultAll: true, notFound: notFoundAs("QREMOTE"),
	attrs: []attr[defs.QRemote]{
		{name: "QUEUE", ident: true, show: func(q *defs.QRemote) any { return q.Name }},
		{name: "TYPE", ident: true, show: func(q *defs.QRemote) any { return "QREMOTE" }},
		{name: "RNAME", show: func(q *defs.QRemote) any { return q.RName }, set: func(q *defs.QRemote, a Attr) (err error) {
			q.RName, err = parseName(a, defs.ValidName)
			return err
		}},
		{name: "RQMNAME", show: func(q *defs.QRemote) any { return q.RQMName }, set: func(q *defs.QRemote, a Attr) (err error) {
			q.RQMName, err = parseName(a, defs.ValidName)
			return err
		}},
		{name: "XMITQ", show: func(q *defs.QRemote) any { return q.XmitQ }, set: func(q *defs.QRemote, a Attr) (err error) {
			q.XmitQ, err = parseName(a, defs.ValidName)
			return err
		}},
		{name: "DESCR", show: func(q *defs.QRemote) any { return q.Descr }, set: func(q *defs.QRemote, a Attr) error {
			q.Descr = a.Value
			return nil
		}},
		{name: "CRDATE", show: func(q *defs.QRemote) any { return mqDay(q.Created) }},
		{name: "CRTIME", show: func(q *defs.QRemote) any { return mqTime(q.Created) }},
	},
}

func displayQRemotes(env Env, c Command) ([]Result, error) {
	return display(c, &qremoteTable, func() ([]defs.QRemote, error) {
		var qs []defs.QRemote
		err := env.Repo().View(func(tx *defs.Tx) error { var err error; qs, err = tx.QRemotes(c.Name); return err })
		return qs, err
	})
}
