package mqsc

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/qmgr/qmgr/defs"
	"github.com/qmgr/qmgr/group"
	"github.com/qmgr/qmgr/recovery/logbuf"
)

// groupObj is a member of the group as DISPLAY GROUP shows it.
type groupObj struct {
	name, qsg, state, heartbeat string
	version                     string // "" from a member older than the field
	pid, incarnation            int64
	port, genPort               int64
	log                         []KV // an active member's log attributes (logAttrs)
}

// logAttr is one of an active member's log attributes (logAttrs), left
// out when the member has none.
func logAttr(name string) attr[groupObj] {
	return attr[groupObj]{name: name, show: func(o *groupObj) any {
		for _, kv := range o.log {
			if kv.Key == name {
				return kv.Value
			}
		}
		return nil
	}}
}

var groupTable = table[groupObj]{
	typ: "GROUP", header: "AMQ8200I: Display group details.", defaultAll: true,
	attrs: []attr[groupObj]{
		{name: "QMNAME", ident: true, show: func(o *groupObj) any { return o.name }},
		{name: "QSGNAME", show: func(o *groupObj) any { return o.qsg }},
		{name: "STATUS", show: func(o *groupObj) any { return o.state }},
		{name: "PID", show: func(o *groupObj) any { return o.pid }},
		{name: "INCARNATION", show: func(o *groupObj) any { return o.incarnation }},
		{name: "HEARTBEAT", show: func(o *groupObj) any { return o.heartbeat }},
		{name: "PORT", show: func(o *groupObj) any { return o.port }},
		{name: "GENPORT", show: func(o *groupObj) any { return o.genPort }},
		// VERSION: the binary the member runs (qmgr version), so that a
		// group of mixed versions shows it.
		{name: "VERSION", show: func(o *groupObj) any { return o.version }},
		logAttr("LOGSTATUS"), logAttr("LOGFAILS"), logAttr("LOGSINCE"), logAttr("LOGREASON"), logAttr("LOGRESERVE"),
	},
}

// displayGroup shows the group's members, by name.
func displayGroup(env Env, c Command) ([]Result, error) {
	return display(c, &groupTable, func() ([]groupObj, error) {
		peers, err := env.Group().Peers()
		if err != nil {
			return nil, err
		}
		sort.Slice(peers, func(i, j int) bool { return peers[i].Name < peers[j].Name })
		var out []groupObj
		for _, p := range peers {
			o := groupObj{name: p.Name, qsg: env.Group().Config().Name, state: strings.ToUpper(p.State.String()),
				pid: int64(p.Process.Pid), incarnation: int64(p.Incarnation), port: int64(p.Port), genPort: int64(p.GenericPort),
				version: p.Version}
			if p.State.Running() && !p.ProcessAlive() {
				o.state = "FAILED"
			}
			if p.Heartbeat != 0 && p.State.Running() {
				o.heartbeat = time.Since(time.Unix(0, p.Heartbeat)).Round(time.Millisecond).String()
			}
			if o.state == "ACTIVE" {
				o.log = logAttrs(env.Group().Config().CFDir, p.Name)
			}
			out = append(out, o)
		}
		return out, nil
	})
}

// logAttrs are a running member's recovery log attributes: LOGSTATUS
// (OK, FAILED, or UNKNOWN when its log buffer cannot be read), LOGFAILS
// (failures since the member started), LOGREASON (why it is failed, or
// why it failed last) and LOGSINCE (when it failed).
func logAttrs(cfDir, member string) []KV {
	st, err := logbuf.ReadStatus(cfDir, member)
	if err != nil {
		return []KV{{"LOGSTATUS", "UNKNOWN"}, {"LOGREASON", err.Error()}}
	}
	kv := []KV{{"LOGSTATUS", "OK"}, {"LOGFAILS", int64(st.Failures)}}
	if st.Failed {
		kv[0].Value = "FAILED"
		kv = append(kv, KV{"LOGSINCE", st.Since.Format(time.RFC3339)})
	}
	if st.Reason != "" {
		kv = append(kv, KV{"LOGREASON", st.Reason})
	}
	if st.ReserveErr != "" {
		kv = append(kv, KV{"LOGRESERVE", st.ReserveErr})
	}
	return kv
}

// connObj is a connection to the admin structure as DISPLAY CONN shows
// it.
type connObj struct {
	id, qmgr, state, uow, since string
	pid                         int64
}

var connTable = table[connObj]{
	typ: "CONN", header: "AMQ8276I: Display Connection details.", defaultAll: true,
	attrs: []attr[connObj]{
		{name: "CONN", ident: true, show: func(o *connObj) any { return o.id }},
		{name: "QMNAME", show: func(o *connObj) any { return o.qmgr }},
		{name: "PID", show: func(o *connObj) any { return o.pid }},
		{name: "STATE", show: func(o *connObj) any { return o.state }},
		{name: "UOWSTATE", show: func(o *connObj) any { return o.uow }},
		{name: "SINCE", show: func(o *connObj) any { return o.since }},
	},
}

// displayConns shows the connections whose id (slot and incarnation, in
// hex) matches the name; none is no error.
func displayConns(env Env, c Command) ([]Result, error) {
	return display(c, &connTable, func() ([]connObj, error) {
		peers, _ := env.Group().Peers()
		names := map[int]string{}
		for _, p := range peers {
			names[p.Slot] = p.Name
		}
		var out []connObj
		for _, info := range env.Group().Admin().Owners() {
			id := fmt.Sprintf("%04X%04X", info.Tag.Slot(), info.Tag.Incarnation())
			if c.Name != "*" && !defs.Match(c.Name, id) {
				continue
			}
			qm := ""
			if peer, _, ok := group.LabelPeer(info.Label); ok {
				qm = names[peer]
			}
			uow := "NONE"
			for _, n := range structNames(env) {
				if s, err := env.Group().Structure(n, false); err == nil {
					if oi, ok := s.Owner(info.Tag.Slot()); ok && oi.UOWActive {
						uow = "ACTIVE"
					}
				}
			}
			out = append(out, connObj{id: id, qmgr: qm, pid: int64(info.Process.Pid), state: strings.ToUpper(info.State),
				uow: uow, since: info.Since.Format(time.RFC3339)})
		}
		return out, nil
	})
}

func structNames(env Env) []string {
	names, _ := env.Group().Structures()
	return names
}
