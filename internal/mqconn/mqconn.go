package mqconn

import (
	"fmt"

	"github.com/qmgr/qmgr/defs"
	"github.com/qmgr/qmgr/group"
	"github.com/qmgr/qmgr/lockfree"
)

// Parts are the parts of a connection the queue manager's own components
// use.
type Parts struct {
	Group *group.Group    // the group the connection is attached to
	Admin *lockfree.Owner // the connection's owner in the admin structure
	Defs  *defs.Repo      // the connection's definitions repository
	// OwnerIn is the connection's owner in an application structure,
	// registered there the first time (the AMQP broker creates the queues
	// clients declare with it).
	OwnerIn func(structure string) (*lockfree.Owner, *lockfree.Structure, error)
}

// of is the accessor package mq registered: a func(*mq.Conn) Parts, held
// as any because this package cannot name mq's type (mq imports it).
var of any

// Register records f, package mq's accessor; mq calls it once, at init.
func Register[C any](f func(C) Parts) { of = f }

// Of returns the parts of connection c, an *mq.Conn. Anything else is a
// programmer error and panics.
func Of[C any](c C) Parts {
	f, ok := of.(func(C) Parts)
	if !ok {
		panic(fmt.Sprintf("mqconn: Of(%T): not the connection type package mq registered", c))
	}
	return f(c)
}
