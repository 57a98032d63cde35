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

func displayGroup(env Env, c Command) ([]Result, error) {
	if err := checkFlags(c, "ALL"); err != nil {
		return nil, err
	}
	peers, err := env.Group().Peers()
	if err != nil {
		return nil, err
	}
	sort.Slice(peers, func(i, j int) bool { return peers[i].Name < peers[j].Name })
	var out []Result
	for _, p := range peers {
		state := strings.ToUpper(p.State.String())
		if p.State.Running() && !p.ProcessAlive() {
			state = "FAILED"
		}
		hb := ""
		if p.Heartbeat != 0 && p.State.Running() {
			hb = time.Since(time.Unix(0, p.Heartbeat)).Round(time.Millisecond).String()
		}
		attrs := []KV{
			{"QMNAME", p.Name}, {"QSGNAME", env.Group().Config().Name}, {"STATUS", state}, {"PID", int64(p.Process.Pid)},
			{"INCARNATION", int64(p.Incarnation)}, {"HEARTBEAT", hb}, {"PORT", int64(p.Port)}, {"GENPORT", int64(p.GenericPort)}}
		if state == "ACTIVE" {
			attrs = append(attrs, logAttrs(env.Group().Config().CFDir, p.Name)...)
		}
		out = append(out, Result{Header: "AMQ8200I: Display group details.", Attrs: attrs})
	}
	return out, nil
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

func displayConns(env Env, c Command) ([]Result, error) {
	if err := checkFlags(c, "ALL"); err != nil {
		return nil, err
	}
	peers, _ := env.Group().Peers()
	names := map[int]string{}
	for _, p := range peers {
		names[p.Slot] = p.Name
	}
	var out []Result
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
		out = append(out, Result{Header: "AMQ8276I: Display Connection details.", Attrs: []KV{
			{"CONN", id}, {"QMNAME", qm}, {"PID", int64(info.Process.Pid)}, {"STATE", strings.ToUpper(info.State)},
			{"UOWSTATE", uow}, {"SINCE", info.Since.Format(time.RFC3339)}}})
	}
	return out, nil
}

func structNames(env Env) []string {
	names, _ := env.Group().Structures()
	return names
}
