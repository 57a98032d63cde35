package mqsc

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/qmgr/qmgr/channel"
	"github.com/qmgr/qmgr/defs"
	"github.com/qmgr/qmgr/lockfree"
	"github.com/qmgr/qmgr/mq"
)

// ChannelEnv is what the channel commands need of the member besides Env.
type ChannelEnv interface {
	// WithAdmin runs f with the member's owner in the admin structure (for
	// compare-and-swap of the channel status table).
	WithAdmin(f func(o *lockfree.Owner) error) error
	// Chinit starts or stops the member's channel initiator; shared is
	// RESTART or STOP (what becomes of the shared channels it runs).
	Chinit(start bool, shared string) (string, error)
	// Connect is a connection through the member, for a command that
	// works on the sync queue and transmission queues (RESET, RESOLVE,
	// DELETE CHANNEL); the caller disconnects it.
	Connect() (*mq.Conn, error)
}

func channelEnv(env Env) (ChannelEnv, error) {
	ce, ok := env.(ChannelEnv)
	if !ok {
		return nil, fmt.Errorf("%w: channels are not available here", ErrSyntax)
	}
	return ce, nil
}

func defineChannel(env Env, c Command) ([]Result, error) {
	alter := c.Verb == "ALTER"
	if err := checkFlags(c, "REPLACE", "NOREPLACE"); err != nil {
		return nil, err
	}
	if !defs.ValidChannelName(c.Name) {
		return nil, fmt.Errorf("%w: CHANNEL(%s) is not a valid channel name (1 to %d characters)", ErrValue, c.Name, defs.MaxChannelName)
	}
	err := env.Repo().Update(func(tx *defs.Tx) error {
		old, err := tx.Channel(c.Name)
		exists := err == nil
		if err != nil && !errors.Is(err, defs.ErrNotFound) {
			return err
		}
		if err := checkDefine(c, "CHANNEL", exists); err != nil {
			return err
		}
		ch := old
		if !alter {
			typ := ""
			for _, a := range c.Attrs {
				if a.Key == "CHLTYPE" {
					typ = a.Value
				}
			}
			if typ != defs.ChlSender && typ != defs.ChlReceiver {
				return fmt.Errorf("%w: DEFINE CHANNEL needs CHLTYPE(SDR) or CHLTYPE(RCVR)", ErrValue)
			}
			if exists && old.Type != typ {
				return fmt.Errorf("%w: CHANNEL(%s) is a %s channel; delete it to define a %s", ErrValue, c.Name, old.Type, typ)
			}
			ch = defs.DefaultChannel(c.Name, typ)
		}
		if err := channelTable.apply(&ch, c.Attrs); err != nil {
			return err
		}
		if err := ch.Validate(); err != nil {
			return fmt.Errorf("%w: %v", ErrValue, err)
		}
		_, err = tx.Save(defs.TypeChannel, ch.Name, ch, defs.Replace)
		return err
	})
	if err != nil {
		return nil, err
	}
	msg := "AMQ8014I: Channel created."
	if alter {
		msg = "AMQ8016I: Channel changed."
	}
	return []Result{{Message: msg}}, env.DefsChanged()
}

// deleteChannel deletes a channel that does not run, with its sync
// records and status entry (so that one defined again starts as new); a
// sender in doubt is refused.
func deleteChannel(env Env, c Command) ([]Result, error) {
	if err := checkFlags(c); err != nil {
		return nil, err
	}
	ch, conn, err := channelCommand(env, c)
	if err != nil {
		return nil, err
	}
	defer conn.Disconnect()
	err = channel.Delete(conn, ch, func() error {
		return env.Repo().Update(func(tx *defs.Tx) error { return tx.Delete(defs.TypeChannel, ch.Name) })
	})
	if err != nil {
		return nil, channelError(err)
	}
	return []Result{{Message: "AMQ8015I: Channel deleted."}}, env.DefsChanged()
}

// channelCommand loads the definition of the channel a command names,
// refuses a running channel (naming its owner), and connects for the
// command's work.
func channelCommand(env Env, c Command) (defs.Channel, *mq.Conn, error) {
	ce, err := channelEnv(env)
	if err != nil {
		return defs.Channel{}, nil, err
	}
	ch, err := loadChannel(env, c.Name)
	if err != nil {
		return ch, nil, err
	}
	t := channel.NewTable(env.Group())
	if st, ok, err := t.Find(ch.Name); err != nil {
		return ch, nil, err
	} else if ok && t.Locked(st) {
		return ch, nil, fmt.Errorf("%w: CHANNEL(%s) is running (%s on %s): stop it first", ErrInUse, ch.Name, st.State, ownerName(env, st.Owner))
	}
	conn, err := ce.Connect()
	return ch, conn, err
}

// channelError gives a channel command's refusal its mqsc sentinel.
func channelError(err error) error {
	switch {
	case errors.Is(err, channel.ErrRunning), errors.Is(err, channel.ErrInDoubt):
		return fmt.Errorf("%w: %v", ErrInUse, err)
	case errors.Is(err, channel.ErrNotInDoubt), errors.Is(err, channel.ErrNotSender):
		return fmt.Errorf("%w: %v", ErrValue, err)
	}
	return err
}

// resetChannel sets a channel's sequence number: SEQNUM(n), default 1, is
// the next batch's; a sender's partner takes it when the channel next
// starts.
func resetChannel(env Env, c Command) ([]Result, error) {
	seq := int64(1)
	for _, a := range c.Attrs {
		if a.Key != "SEQNUM" {
			return nil, fmt.Errorf("%w: %q is not an attribute of RESET CHANNEL", ErrSyntax, a.Key)
		}
		var err error
		if seq, err = parseInt(a, 1, channel.MaxSeqNum); err != nil {
			return nil, err
		}
	}
	if err := checkFlags(c); err != nil {
		return nil, err
	}
	ch, conn, err := channelCommand(env, c)
	if err != nil {
		return nil, err
	}
	defer conn.Disconnect()
	if err := channel.Reset(conn, ch, uint64(seq)); err != nil {
		return nil, channelError(err)
	}
	msg := fmt.Sprintf("Channel %s reset: its next batch is %d.", ch.Name, seq)
	if ch.Type == defs.ChlSender {
		msg += " Its partner takes the number when the channel next starts."
	}
	return []Result{{Message: msg}}, nil
}

// resolveChannel settles a stopped sender's batches in doubt without its
// partner: ACTION(COMMIT) takes them as delivered (their messages are
// removed), ACTION(BACKOUT) sends them again.
func resolveChannel(env Env, c Command) ([]Result, error) {
	action := ""
	for _, a := range c.Attrs {
		if a.Key != "ACTION" {
			return nil, fmt.Errorf("%w: %q is not an attribute of RESOLVE CHANNEL", ErrSyntax, a.Key)
		}
		var err error
		if action, err = parseEnum(a, "COMMIT", "BACKOUT"); err != nil {
			return nil, err
		}
	}
	if err := checkFlags(c); err != nil {
		return nil, err
	}
	if action == "" {
		return nil, fmt.Errorf("%w: RESOLVE CHANNEL(%s) needs ACTION(COMMIT) or ACTION(BACKOUT)", ErrSyntax, c.Name)
	}
	if ch, err := loadChannel(env, c.Name); err != nil {
		return nil, err
	} else if ch.Type != defs.ChlSender {
		return nil, fmt.Errorf("%w: CHANNEL(%s) is a %s channel: only a sender has batches in doubt", ErrValue, ch.Name, ch.Type)
	}
	ch, conn, err := channelCommand(env, c)
	if err != nil {
		return nil, err
	}
	defer conn.Disconnect()
	res, err := channel.Resolve(conn, ch, action == "COMMIT")
	if err != nil {
		return nil, channelError(err)
	}
	what := "committed: their messages were removed from " + ch.XmitQ
	if action == "BACKOUT" {
		what = "backed out: their messages are sent again"
	}
	return []Result{{Message: fmt.Sprintf("Channel %s resolved: batches %d to %d (%d messages) %s.", ch.Name, res.Oldest, res.Latest, res.Messages, what)}}, nil
}

var channelTable = table[defs.Channel]{
	typ: "CHANNEL", header: "AMQ8414I: Display Channel details.", defaultAll: true, notFound: notFoundAs("CHANNEL"),
	attrs: []attr[defs.Channel]{
		{name: "CHANNEL", ident: true, show: func(ch *defs.Channel) any { return ch.Name }},
		{name: "CHLTYPE", ident: true, show: func(ch *defs.Channel) any { return ch.Type }, set: func(ch *defs.Channel, a Attr) error {
			if a.Value != ch.Type { // DEFINE starts from the type's defaults
				return fmt.Errorf("%w: CHLTYPE of CHANNEL(%s) is %s and cannot change", ErrValue, ch.Name, ch.Type)
			}
			return nil
		}},
		{name: "CONNAME", show: func(ch *defs.Channel) any { return ch.ConnName }, set: func(ch *defs.Channel, a Attr) error {
			ch.ConnName = a.Value
			return nil
		}},
		{name: "XMITQ", show: func(ch *defs.Channel) any { return ch.XmitQ }, set: func(ch *defs.Channel, a Attr) (err error) {
			ch.XmitQ, err = parseName(a, defs.ValidName)
			return err
		}},
		{name: "BATCHSZ", show: func(ch *defs.Channel) any { return int64(ch.BatchSz) }, set: func(ch *defs.Channel, a Attr) (err error) {
			ch.BatchSz, err = parseIntAs[int](a, 1, 9999)
			return err
		}},
		{name: "BATCHINT", show: func(ch *defs.Channel) any { return int64(ch.BatchInt) }, set: func(ch *defs.Channel, a Attr) (err error) {
			ch.BatchInt, err = parseIntAs[int](a, 0, 999_999_999)
			return err
		}},
		{name: "HBINT", show: func(ch *defs.Channel) any { return int64(ch.HBInt) }, set: func(ch *defs.Channel, a Attr) (err error) {
			ch.HBInt, err = parseIntAs[int](a, 0, 999_999)
			return err
		}},
		{name: "DISCINT", show: func(ch *defs.Channel) any { return int64(ch.DiscInt) }, set: func(ch *defs.Channel, a Attr) (err error) {
			ch.DiscInt, err = parseIntAs[int](a, 0, 999_999)
			return err
		}},
		{name: "SHORTRTY", show: func(ch *defs.Channel) any { return int64(ch.ShortRty) }, set: func(ch *defs.Channel, a Attr) (err error) {
			ch.ShortRty, err = parseIntAs[int](a, 0, 999_999_999)
			return err
		}},
		{name: "SHORTTMR", show: func(ch *defs.Channel) any { return int64(ch.ShortTmr) }, set: func(ch *defs.Channel, a Attr) (err error) {
			ch.ShortTmr, err = parseIntAs[int](a, 0, 999_999_999)
			return err
		}},
		{name: "LONGRTY", show: func(ch *defs.Channel) any { return int64(ch.LongRty) }, set: func(ch *defs.Channel, a Attr) (err error) {
			ch.LongRty, err = parseIntAs[int](a, 0, 999_999_999)
			return err
		}},
		{name: "LONGTMR", show: func(ch *defs.Channel) any { return int64(ch.LongTmr) }, set: func(ch *defs.Channel, a Attr) (err error) {
			ch.LongTmr, err = parseIntAs[int](a, 0, 999_999_999)
			return err
		}},
		{name: "NPMSPEED", show: func(ch *defs.Channel) any { return ch.NPMSpeed }, set: func(ch *defs.Channel, a Attr) (err error) {
			ch.NPMSpeed, err = parseEnum(a, "FAST", "NORMAL")
			return err
		}},
		{name: "MAXMSGL", show: func(ch *defs.Channel) any { return int64(ch.MaxMsgL) }, set: func(ch *defs.Channel, a Attr) (err error) {
			ch.MaxMsgL, err = parseIntAs[int](a, 0, 100<<20)
			return err
		}},
		{name: "SSLCERT", show: func(ch *defs.Channel) any { return ch.SSLCert }, set: func(ch *defs.Channel, a Attr) error {
			ch.SSLCert = a.Value
			return nil
		}},
		{name: "SSLKEY", show: func(ch *defs.Channel) any { return ch.SSLKey }, set: func(ch *defs.Channel, a Attr) error {
			ch.SSLKey = a.Value
			return nil
		}},
		{name: "SSLCA", show: func(ch *defs.Channel) any { return ch.SSLCA }, set: func(ch *defs.Channel, a Attr) error {
			ch.SSLCA = a.Value
			return nil
		}},
		{name: "SSLPEER", show: func(ch *defs.Channel) any { return ch.SSLPeer }, set: func(ch *defs.Channel, a Attr) error {
			ch.SSLPeer = a.Value
			return nil
		}},
		// The secret: DISPLAY says whether it is set, never what it is.
		{name: "AUTHKEY", secret: true, show: func(ch *defs.Channel) any { return authKeyShown(*ch) }, set: func(ch *defs.Channel, a Attr) error {
			ch.AuthKey = a.Value
			return nil
		}},
		{name: "AUTH", show: func(ch *defs.Channel) any { return authShown(*ch) }, set: func(ch *defs.Channel, a Attr) (err error) {
			ch.Auth, err = parseEnum(a, defs.AuthRequired, defs.AuthOptional)
			return err
		}},
		{name: "RQMNAME", show: func(ch *defs.Channel) any { return ch.RQMName }, set: func(ch *defs.Channel, a Attr) (err error) {
			ch.RQMName, err = parseName(a, defs.ValidName)
			return err
		}},
		{name: "INQUEUES", show: func(ch *defs.Channel) any { return ch.InQueues }, set: func(ch *defs.Channel, a Attr) (err error) {
			ch.InQueues, err = parseEnum(a, defs.InQueuesAppl, defs.InQueuesAll)
			return err
		}},
		{name: "DESCR", show: func(ch *defs.Channel) any { return ch.Descr }, set: func(ch *defs.Channel, a Attr) error {
			ch.Descr = a.Value
			return nil
		}},
		{name: "ALTDATE", show: func(ch *defs.Channel) any { return mqDay(ch.Altered) }},
		{name: "ALTTIME", show: func(ch *defs.Channel) any { return mqTime(ch.Altered) }},
	},
}

func displayChannels(env Env, c Command) ([]Result, error) {
	return display(c, &channelTable, func() ([]defs.Channel, error) {
		var chs []defs.Channel
		err := env.Repo().View(func(tx *defs.Tx) error { var err error; chs, err = tx.Channels(c.Name); return err })
		return chs, err
	})
}

// authKeyShown is what DISPLAY CHANNEL shows of the channel's secret:
// whether it is set, never the secret.
func authKeyShown(ch defs.Channel) string {
	if ch.AuthKey != "" {
		return "SET"
	}
	return "NOTSET"
}

// authShown is the channel's AUTH (a definition from before AUTH has
// none: REQUIRED).
func authShown(ch defs.Channel) string {
	if ch.AuthRequired() {
		return defs.AuthRequired
	}
	return defs.AuthOptional
}

func loadChannel(env Env, name string) (defs.Channel, error) {
	var ch defs.Channel
	err := env.Repo().View(func(tx *defs.Tx) error { var err error; ch, err = tx.Channel(name); return err })
	if errors.Is(err, defs.ErrNotFound) {
		return ch, fmt.Errorf("%w: CHANNEL(%s)", ErrNotFound, name)
	}
	return ch, err
}

// ownerName is the name of the member in peer slot slot.
func ownerName(env Env, slot int) string {
	if slot < 0 {
		return ""
	}
	if p, err := env.Group().Peer(slot); err == nil {
		return p.Name
	}
	return fmt.Sprintf("slot %d", slot)
}

func startChannel(env Env, c Command) ([]Result, error) {
	if err := checkFlags(c); err != nil {
		return nil, err
	}
	ce, err := channelEnv(env)
	if err != nil {
		return nil, err
	}
	ch, err := loadChannel(env, c.Name)
	if err != nil {
		return nil, err
	}
	t := channel.NewTable(env.Group())
	var running *channel.Status
	err = ce.WithAdmin(func(o *lockfree.Owner) error {
		_, _, err := t.Update(o, ch.Name, func(st *channel.Status, exists bool) bool {
			if t.Locked(*st) && st.State != channel.Stopped {
				s := *st
				running = &s
				return false
			}
			*st = channel.Status{Name: ch.Name, Type: ch.Type, State: channel.Starting, Owner: -1,
				XmitQ: ch.XmitQ, LastBatch: st.LastBatch, InDoubt: st.InDoubt, ResetReq: st.ResetReq}
			if ch.Type == defs.ChlReceiver {
				st.State = channel.Inactive // a receiver runs when its partner connects
			}
			return true
		})
		return err
	})
	if err != nil {
		return nil, err
	}
	if running != nil {
		return nil, fmt.Errorf("%w: CHANNEL(%s) is already %s on %s", ErrInUse, ch.Name, running.State, ownerName(env, running.Owner))
	}
	return []Result{{Message: "AMQ8018I: Start CHANNEL(" + ch.Name + ") accepted."}}, nil
}

func stopChannel(env Env, c Command) ([]Result, error) {
	mode := "QUIESCE"
	for _, a := range c.Attrs {
		if a.Key != "MODE" {
			return nil, fmt.Errorf("%w: %q is not an attribute of STOP CHANNEL", ErrSyntax, a.Key)
		}
		var err error
		if mode, err = parseEnum(a, "QUIESCE", "FORCE"); err != nil {
			return nil, err
		}
	}
	if err := checkFlags(c); err != nil {
		return nil, err
	}
	ce, err := channelEnv(env)
	if err != nil {
		return nil, err
	}
	ch, err := loadChannel(env, c.Name)
	if err != nil {
		return nil, err
	}
	t := channel.NewTable(env.Group())
	err = ce.WithAdmin(func(o *lockfree.Owner) error {
		_, _, err := t.Update(o, ch.Name, func(st *channel.Status, exists bool) bool {
			if !exists {
				st.Type, st.XmitQ = ch.Type, ch.XmitQ
			}
			if t.Locked(*st) {
				st.StopReq, st.Force = true, mode == "FORCE"
				return true
			}
			st.State, st.StopReq, st.Force = channel.Stopped, false, false
			st.Unlock()
			return true
		})
		return err
	})
	if err != nil {
		return nil, err
	}
	return []Result{{Message: "AMQ8019I: Stop CHANNEL(" + ch.Name + ") accepted."}}, nil
}

// chstatusObj is a channel's status entry, with what DISPLAY CHSTATUS
// works out of it.
type chstatusObj struct {
	st          channel.Status
	owner       string // the member running it
	locked      string // YES or NO
	conn, lanes string // the connections that hold its lock
}

// chstatusTime is a status time as DISPLAY CHSTATUS shows it ("" for none).
func chstatusTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.Format("2006-01-02 15:04:05.000")
}

var chstatusTable = table[chstatusObj]{
	typ: "CHSTATUS", header: "AMQ8417I: Display Channel Status details.", defaultAll: true,
	notFound: func(name string) error { return fmt.Errorf("%w: no status for CHANNEL(%s)", ErrNotFound, name) },
	attrs: []attr[chstatusObj]{
		{name: "CHANNEL", ident: true, show: func(o *chstatusObj) any { return o.st.Name }},
		{name: "CHLTYPE", ident: true, show: func(o *chstatusObj) any { return o.st.Type }},
		{name: "STATUS", show: func(o *chstatusObj) any { return o.st.State.String() }},
		{name: "OWNER", show: func(o *chstatusObj) any { return o.owner }},
		{name: "LOCKED", show: func(o *chstatusObj) any { return o.locked }},
		{name: "CONN", show: func(o *chstatusObj) any { return o.conn }},
		{name: "LANES", show: func(o *chstatusObj) any { return o.lanes }},
		{name: "XMITQ", show: func(o *chstatusObj) any { return o.st.XmitQ }},
		{name: "RQMNAME", show: func(o *chstatusObj) any { return o.st.RQMName }},
		{name: "CONNAME", show: func(o *chstatusObj) any { return o.st.Address }},
		{name: "INDOUBT", show: func(o *chstatusObj) any { return int64(o.st.InDoubt) }},
		{name: "LSTSEQNO", show: func(o *chstatusObj) any { return int64(o.st.LastBatch) }},
		{name: "MSGS", show: func(o *chstatusObj) any { return int64(o.st.Msgs) }},
		{name: "RETRIES", show: func(o *chstatusObj) any { return int64(o.st.Retries) }},
		{name: "NEXTRTY", show: func(o *chstatusObj) any { return chstatusTime(o.st.RetryAt) }},
		{name: "STOPREQ", show: func(o *chstatusObj) any { return yesNo(o.st.StopReq) }},
		{name: "RESETREQ", show: func(o *chstatusObj) any { return yesNo(o.st.ResetReq) }},
		{name: "REASON", show: func(o *chstatusObj) any { return o.st.Reason.Describe(o.st.Name) }},
		{name: "LSTUPDTM", show: func(o *chstatusObj) any { return chstatusTime(o.st.Updated) }},
	},
}

// displayChStatus shows the status of the channels matching the name;
// an inactive channel only with ALL.
func displayChStatus(env Env, c Command) ([]Result, error) {
	return display(c, &chstatusTable, func() ([]chstatusObj, error) {
		t := channel.NewTable(env.Group())
		all, err := t.All()
		if err != nil {
			return nil, err
		}
		var out []chstatusObj
		for _, st := range all {
			if !defs.Match(c.Name, st.Name) || st.State == channel.Inactive && !c.Has("ALL") {
				continue
			}
			out = append(out, chstatus(env, t, st))
		}
		return out, nil
	})
}

// chstatus works out what DISPLAY CHSTATUS shows of status entry st.
func chstatus(env Env, t *channel.Table, st channel.Status) chstatusObj {
	o := chstatusObj{st: st, owner: ownerName(env, st.Owner), locked: yesNo(t.Locked(st))}
	// The connections that hold the lock: slot.incarnation in the
	// admin structure (a sender's first lane is CONN, the others LANES).
	tag := func(o lockfree.OwnerTag) string { return fmt.Sprintf("%d.%d", o.Slot(), o.Incarnation()) }
	lanes := []string{}
	if st.Conn != 0 {
		o.conn = tag(st.Conn)
	}
	for _, l := range st.Lanes {
		if l != 0 {
			lanes = append(lanes, tag(l))
		}
	}
	o.lanes = strings.Join(lanes, ",")
	return o
}

func chinit(env Env, c Command) ([]Result, error) {
	shared := "RESTART"
	for _, a := range c.Attrs {
		if a.Key != "SHARED" || c.Verb != "STOP" {
			return nil, fmt.Errorf("%w: %q is not an attribute of %s CHINIT", ErrSyntax, a.Key, c.Verb)
		}
		var err error
		if shared, err = parseEnum(a, "RESTART", "STOP"); err != nil {
			return nil, err
		}
	}
	if err := checkFlags(c); err != nil {
		return nil, err
	}
	ce, err := channelEnv(env)
	if err != nil {
		return nil, err
	}
	msg, err := ce.Chinit(c.Verb == "START", shared)
	if err != nil {
		return nil, err
	}
	return []Result{{Message: msg}}, nil
}
