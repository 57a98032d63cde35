package mqsc

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/qmgr/qmgr/defs"
	"github.com/qmgr/qmgr/lockfree"
	"github.com/qmgr/qmgr/request"
)

// requestObj is a request in flight as DISPLAY REQUESTS shows it: its
// state record on the request managers' state queue (package request).
type requestObj struct {
	id, manager, mode, status, step string
	attempts, pending, age, idle    int64
}

var requestsTable = table[requestObj]{
	typ: "REQUESTS", header: "AMQ8960I: Display request details.", defaultAll: true,
	notFound: notFoundAs("REQUESTS"),
	attrs: []attr[requestObj]{
		{name: "REQID", ident: true, show: func(o *requestObj) any { return o.id }},
		{name: "MANAGER", show: func(o *requestObj) any { return o.manager }},
		{name: "MODE", show: func(o *requestObj) any { return o.mode }},
		{name: "STATUS", show: func(o *requestObj) any { return o.status }},
		{name: "ATTEMPTS", show: func(o *requestObj) any { return o.attempts }},
		{name: "STEP", show: func(o *requestObj) any { return o.step }},
		{name: "PENDING", show: func(o *requestObj) any { return o.pending }}, // calls awaiting their reply
		{name: "AGE", show: func(o *requestObj) any { return o.age }},         // seconds since the request started
		{name: "IDLE", show: func(o *requestObj) any { return o.idle }},       // seconds since its record was last written
	},
}

// requestQueue is the owner, structure and queue id of one of the request
// managers' group-wide queues, or an error saying to define it.
func requestQueue(env Env, name string) (*lockfree.Owner, lockfree.QueueID, error) {
	var q defs.Queue
	if err := env.Repo().View(func(tx *defs.Tx) error { var err error; q, err = tx.Queue(name); return err }); err != nil {
		return nil, 0, fmt.Errorf("%w: QLOCAL(%s), the request managers' queue, is not defined (request.Definitions has its MQSC)", ErrNotFound, name)
	}
	o, _, id, err := cfQueue(env, nil, q)
	return o, id, err
}

// displayRequests shows the requests in flight, by request id (48 hex
// digits; the name, when given, is an id or a pattern of them).
func displayRequests(env Env, c Command) ([]Result, error) {
	return display(c, &requestsTable, func() ([]requestObj, error) {
		o, id, err := requestQueue(env, request.DefaultStateQueue)
		if err != nil {
			return nil, err
		}
		cur := o.NewBrowseCursor(id)
		now := time.Now()
		var out []requestObj
		for {
			var m lockfree.Message
			if err := o.BrowseNext(cur, lockfree.GetOptions{}, &m); err != nil {
				if errors.Is(err, lockfree.ErrNoMessage) {
					return out, nil
				}
				return out, err
			}
			if strings.TrimRight(string(m.Format[:]), " ") != request.FormatState {
				continue
			}
			r, err := request.ParseRecord(m.Body)
			if err != nil {
				continue // not a record: nothing to show
			}
			rid := strings.ToUpper(r.RequestID.String())
			if c.Name != "*" && !defs.Match(c.Name, rid) {
				continue
			}
			out = append(out, requestObj{id: rid, manager: shownText(r.Manager), mode: r.Mode.String(), status: r.Status.String(), step: shownText(r.Step),
				attempts: int64(r.Attempts), pending: int64(len(r.Pending)),
				age: int64(now.Sub(r.Created) / time.Second), idle: int64(now.Sub(r.Updated) / time.Second)})
		}
	})
}

// shownText is s, text from a state record (bytes any application that
// can put to the state queue wrote), with its control characters and
// invalid UTF-8 escaped as Go does (\n, \x1b, \xff), so that it cannot
// break DISPLAY's lines or drive a terminal. A backslash is shown as it is.
func shownText(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n <= 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case unicode.IsControl(r) || r == '\u2028' || r == '\u2029':
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
		default:
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}

// cancelRequest puts a cancel of request c.Name (48 hex digits) on the
// request managers' cancel queue: the request's manager ends it as its
// mode says (package request).
func cancelRequest(env Env, c Command) ([]Result, error) {
	if err := checkFlags(c); err != nil {
		return nil, err
	}
	if len(c.Attrs) > 0 {
		return nil, fmt.Errorf("%w: %q is not an attribute of CANCEL REQUEST", ErrSyntax, c.Attrs[0].Key)
	}
	id, err := request.ParseID(c.Name)
	if err != nil {
		return nil, fmt.Errorf("%w: REQUEST(%s): a request id is 48 hex digits", ErrValue, c.Name)
	}
	o, q, err := requestQueue(env, request.DefaultCancelQueue)
	if err != nil {
		return nil, err
	}
	m := lockfree.Message{CorrelID: id}
	copy(m.Format[:], request.FormatCancel+"        ")
	if err := o.Put(q, &m, lockfree.PutOptions{}); err != nil {
		return nil, fmt.Errorf("cancel REQUEST(%s): %w", c.Name, err)
	}
	return []Result{{Message: "AMQ8961I: Cancel of REQUEST(" + c.Name + ") queued."}}, nil
}
