package request

import (
	"fmt"
	"strings"
)

// Definitions is the MQSC that defines the group-wide queues of request
// managers with their default names (run it once, e.g. qmgr mqsc < file):
// the state queue (records and live markers; indexed by CorrelID), the
// tombstone queue (tombstones, with a MAXDEPTH of their own: a storm of
// failing requests fills it, never the state queue; indexed by CorrelID),
// the reply queue of calls to subordinate servers (indexed by CorrelID),
// the cancel queue and the Unexpected Message Queue. None has a backout
// threshold. A manager's input queue is its own: define it without
// BOTHRESH.
func Definitions() string {
	var b strings.Builder
	for _, q := range []string{DefaultStateQueue, DefaultTombstoneQueue, DefaultReplyQueue, DefaultCancelQueue, DefaultUnexpectedQueue} {
		b.WriteString(definition(q, q))
		b.WriteByte('\n')
	}
	return b.String()
}

// unexpectedMaxMsgL is the Unexpected Message Queue's MAXMSGL in
// Definitions: the others' (the default, 4 MiB) and a 4 KiB page for its
// header (uhSize bytes).
const unexpectedMaxMsgL = 4<<20 + 4096

// definition is the MQSC that defines the group-wide queue whose default
// name is def under the name name ("" if def is none of them).
func definition(def, name string) string {
	attrs, descr := "", ""
	switch def {
	case DefaultStateQueue:
		attrs, descr = "INDXTYPE(CORRELID) MAXDEPTH(100000)", "state of the requests in flight"
	case DefaultTombstoneQueue:
		attrs, descr = "INDXTYPE(CORRELID) MAXDEPTH(100000)", "tombstones of ended requests"
	case DefaultReplyQueue:
		attrs, descr = "INDXTYPE(CORRELID) MAXDEPTH(100000)", "replies of subordinate servers"
	case DefaultCancelQueue:
		attrs, descr = "INDXTYPE(CORRELID) MAXDEPTH(100000)", "cancels, CorrelID the request id"
	case DefaultUnexpectedQueue:
		// Room for the header in front of the largest message of the
		// others (MAXMSGL 4 MiB, the default).
		attrs, descr = fmt.Sprintf("MAXDEPTH(100000) MAXMSGL(%d)", unexpectedMaxMsgL), "Unexpected Message Queue"
	default:
		return ""
	}
	return fmt.Sprintf("DEFINE QLOCAL(%s) %s DESCR('request managers: %s')", name, attrs, descr)
}

// definitionOf is the MQSC that defines name, one of c's group-wide
// queues, under its name ("" when name is none of them: the input queue).
func (c *Config) definitionOf(name string) string {
	for _, q := range [][2]string{{c.StateQueue, DefaultStateQueue}, {c.TombstoneQueue, DefaultTombstoneQueue}, {c.ReplyQueue, DefaultReplyQueue}, {c.CancelQueue, DefaultCancelQueue}, {c.UnexpectedQueue, DefaultUnexpectedQueue}} {
		if q[0] == name {
			return definition(q[1], name)
		}
	}
	return ""
}
