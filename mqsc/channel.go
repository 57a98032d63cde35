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

func applyChannelAttrs(ch *defs.Channel, c Command) error {
	for _, a := range c.Attrs {
		var err error
		var n int64
		num := func(lo, hi int64) int {
			n, err = parseInt(a, lo, hi)
			return int(n)
		}
		switch a.Key {
		case "CHLTYPE":
			if a.Value != ch.Type {
				err = fmt.Errorf("%w: CHLTYPE of CHANNEL(%s) is %s and cannot change", ErrValue, ch.Name, ch.Type)
			}
		case "CONNAME":
			ch.ConnName = a.Value
		case "XMITQ":
			ch.XmitQ, err = parseName(a, defs.ValidName)
		case "BATCHSZ":
			ch.BatchSz = num(1, 9999)
		case "BATCHINT":
			ch.BatchInt = num(0, 999_999_999)
		case "HBINT":
			ch.HBInt = num(0, 999_999)
		case "DISCINT":
			ch.DiscInt = num(0, 999_999)
		case "SHORTRTY":
			ch.ShortRty = num(0, 999_999_999)
		case "SHORTTMR":
			ch.ShortTmr = num(0, 999_999_999)
		case "LONGRTY":
			ch.LongRty = num(0, 999_999_999)
		case "LONGTMR":
			ch.LongTmr = num(0, 999_999_999)
		case "NPMSPEED":
			ch.NPMSpeed, err = parseEnum(a, "FAST", "NORMAL")
		case "MAXMSGL":
			ch.MaxMsgL = num(0, 100<<20)
		case "SSLCERT":
			ch.SSLCert = a.Value
		case "SSLKEY":
			ch.SSLKey = a.Value
		case "SSLCA":
			ch.SSLCA = a.Value
		case "SSLPEER":
			ch.SSLPeer = a.Value
		case "AUTHKEY":
			ch.AuthKey = a.Value
		case "AUTH":
			ch.Auth, err = parseEnum(a, defs.AuthRequired, defs.AuthOptional)
		case "RQMNAME":
			ch.RQMName, err = parseName(a, defs.ValidName)
		case "INQUEUES":
			ch.InQueues, err = parseEnum(a, defs.InQueuesAppl, defs.InQueuesAll)
		case "DESCR":
			ch.Descr = a.Value
		default:
			err = fmt.Errorf("%w: %q is not an attribute of CHANNEL", ErrSyntax, a.Key+"("+a.Value+")")
		}
		if err != nil {
			return err
		}
	}
	return nil
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
		if err := applyChannelAttrs(&ch, c); err != nil {
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

var channelAttrOrder = []string{"CHLTYPE", "CONNAME", "XMITQ", "BATCHSZ", "BATCHINT", "HBINT", "DISCINT", "SHORTRTY", "SHORTTMR",
	"LONGRTY", "LONGTMR", "NPMSPEED", "MAXMSGL", "SSLCERT", "SSLKEY", "SSLCA", "SSLPEER", "AUTHKEY", "AUTH", "RQMNAME", "INQUEUES",
	"DESCR", "ALTDATE", "ALTTIME"}

func displayChannels(env Env, c Command) ([]Result, error) {
	if err := checkFlags(c, "ALL"); err != nil {
		return nil, err
	}
	var chs []defs.Channel
	if err := env.Repo().View(func(tx *defs.Tx) error { var err error; chs, err = tx.Channels(c.Name); return err }); err != nil {
		return nil, err
	}
	if len(chs) == 0 && !strings.HasSuffix(c.Name, "*") {
		return nil, fmt.Errorf("%w: CHANNEL(%s)", ErrNotFound, c.Name)
	}
	var out []Result
	for _, ch := range chs {
		ad, at := mqDate(ch.Altered)
		vals := map[string]any{"CHLTYPE": ch.Type, "CONNAME": ch.ConnName, "XMITQ": ch.XmitQ, "BATCHSZ": int64(ch.BatchSz),
			"BATCHINT": int64(ch.BatchInt), "HBINT": int64(ch.HBInt), "DISCINT": int64(ch.DiscInt), "SHORTRTY": int64(ch.ShortRty),
			"SHORTTMR": int64(ch.ShortTmr), "LONGRTY": int64(ch.LongRty), "LONGTMR": int64(ch.LongTmr), "NPMSPEED": ch.NPMSpeed,
			"MAXMSGL": int64(ch.MaxMsgL), "SSLCERT": ch.SSLCert, "SSLKEY": ch.SSLKey, "SSLCA": ch.SSLCA, "SSLPEER": ch.SSLPeer,
			"AUTHKEY": authKeyShown(ch), "AUTH": authShown(ch), "RQMNAME": ch.RQMName, "INQUEUES": ch.InQueues, "DESCR": ch.Descr,
			"ALTDATE": ad, "ALTTIME": at}
		r := Result{Header: "AMQ8414I: Display Channel details.", Attrs: []KV{{"CHANNEL", ch.Name}}}
		for _, k := range channelAttrOrder {
			r.Attrs = append(r.Attrs, KV{k, vals[k]})
		}
		out = append(out, r)
	}
	return out, nil
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

func displayChStatus(env Env, c Command) ([]Result, error) {
	if err := checkFlags(c, "ALL"); err != nil {
		return nil, err
	}
	t := channel.NewTable(env.Group())
	all, err := t.All()
	if err != nil {
		return nil, err
	}
	var out []Result
	for _, st := range all {
		if !defs.Match(c.Name, st.Name) || st.State == channel.Inactive && !c.Has("ALL") {
			continue
		}
		ts := func(t time.Time) string {
			if t.IsZero() {
				return ""
			}
			return t.Format("2006-01-02 15:04:05.000")
		}
		locked := "NO"
		if t.Locked(st) {
			locked = "YES"
		}
		// The connections that hold the lock: slot.incarnation in the
		// admin structure (a sender's first lane is CONN, the others LANES).
		tag := func(o lockfree.OwnerTag) string { return fmt.Sprintf("%d.%d", o.Slot(), o.Incarnation()) }
		conn, lanes := "", []string{}
		if st.Conn != 0 {
			conn = tag(st.Conn)
		}
		for _, l := range st.Lanes {
			if l != 0 {
				lanes = append(lanes, tag(l))
			}
		}
		out = append(out, Result{Header: "AMQ8417I: Display Channel Status details.", Attrs: []KV{
			{"CHANNEL", st.Name}, {"CHLTYPE", st.Type}, {"STATUS", st.State.String()}, {"OWNER", ownerName(env, st.Owner)},
			{"LOCKED", locked}, {"CONN", conn}, {"LANES", strings.Join(lanes, ",")}, {"XMITQ", st.XmitQ}, {"RQMNAME", st.RQMName}, {"CONNAME", st.Address},
			{"INDOUBT", int64(st.InDoubt)}, {"LSTSEQNO", int64(st.LastBatch)}, {"MSGS", int64(st.Msgs)},
			{"RETRIES", int64(st.Retries)}, {"NEXTRTY", ts(st.RetryAt)}, {"STOPREQ", yesNo(st.StopReq)},
			{"RESETREQ", yesNo(st.ResetReq)}, {"REASON", st.Reason.Describe(st.Name)}, {"LSTUPDTM", ts(st.Updated)}}})
	}
	if len(out) == 0 && !strings.HasSuffix(c.Name, "*") {
		return nil, fmt.Errorf("%w: no status for CHANNEL(%s)", ErrNotFound, c.Name)
	}
	return out, nil
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
