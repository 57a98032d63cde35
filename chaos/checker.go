package chaos

import (
	"fmt"
	"math"
	"sort"
	"strings"
)

// Anomaly kinds the history checker finds.
const (
	AnomLost        = "lost"             // an acknowledged persistent message never delivered
	AnomLostNP      = "lost-np"          // an acknowledged non-persistent message never delivered, its structures intact
	AnomDuplicate   = "duplicate"        // a message consumed twice
	AnomOrder       = "order"            // a producer's message delivered after its successor
	AnomUncommitted = "uncommitted-read" // a message of a put that failed or was backed out delivered, or one delivered before its commit
	AnomPhantom     = "phantom"          // a message nobody put, or delivered before it was put
	AnomCorrupt     = "corrupt"          // a body changed, or its id, persistence or queue not what the put said
	AnomMaxDepth    = "maxdepth"         // more messages certainly on a queue at once than its MAXDEPTH
)

// Anomaly kinds the harness finds around the histories.
const (
	AnomCheck       = "structure-check" // qmgr check failed at the end
	AnomMemberCrash = "member-crash"    // a member exited without being killed
	AnomFenced      = "member-fenced"   // a member a peer killed as hung though nothing stopped it (its heartbeat stood still)
	AnomClientCrash = "client-crash"    // a client exited without being killed
	AnomStuck       = "stuck"           // not healed, or not drained, at the end
)

// Model is what the checker knows of the workload.
type Model struct {
	// Route maps the queue producers put to to the queue its messages
	// are got from (a remote queue to its target); absent: the same.
	Route map[string]string
	// Xmit maps a remote queue to its transmission queue (where its
	// messages wait for the channel).
	Xmit map[string]string
	// Path maps the queue producers put to to the structures its
	// messages live in on their way ("A/APPL1"): a loss of one of them
	// lets its non-persistent messages vanish.
	Path map[string][]string
	// MaxDepth is the MAXDEPTH of the queues (got from) to check.
	MaxDepth map[string]int
	// T0 is the run's start (Now()), for printing times in anomalies.
	T0 int64
}

// Structure-loss fault kinds: non-persistent messages on the lost
// structures (Event.Target: a structure name, or "*" for all of the
// group's) may vanish.
var structureLoss = map[string]bool{FaultCFRemove: true, FaultCFTruncate: true, FaultCFLost: true}

// Anomaly is one thing the checker proved wrong.
type Anomaly struct {
	Kind   string
	Msgs   []string // message keys involved
	Detail string
	Ops    []*Op   // the history records that show it
	Faults []Event // the faults around it
}

func (a Anomaly) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s: %s", a.Kind, strings.Join(a.Msgs, ","), a.Detail)
	for _, o := range a.Ops {
		fmt.Fprintf(&b, "\n      %s", o)
	}
	for _, e := range a.Faults {
		fmt.Fprintf(&b, "\n      fault %s", e)
	}
	return b.String()
}

// Result is the checker's verdict and counts.
type Result struct {
	Anomalies []Anomaly
	// Ops counts operations by "f/outcome" ("put/ok", "get/none": an
	// invocation without completion).
	Ops map[string]int
	// Counts of messages: "acked.persistent", "acked.nonpersistent",
	// "delivered", "excused.np" (vanished with a lost structure),
	// "unresolved" (missing, but as many gets outside syncpoint were cut
	// short and may have taken them), "stranded" (left on a
	// transmission queue).
	Msgs map[string]int
}

// ByKind counts anomalies by kind.
func (r *Result) ByKind() map[string]int {
	out := map[string]int{}
	for _, a := range r.Anomalies {
		out[a.Kind]++
	}
	return out
}

type pair struct{ inv, done *Op } // done nil: the process died in the call

func (p pair) outcome() string {
	if p.done == nil {
		return "none"
	}
	return p.done.Type
}

// Message states from the histories.
const (
	stNever = iota // the put failed, or its unit of work was backed out
	stMaybe        // unknown
	stAcked        // the put (outside syncpoint) or its commit returned OK
)

// Unit-of-work fates.
const (
	uowBackedOut = iota
	uowUnknown
	uowCommitted
)

type uowID struct {
	proc string
	uow  int64
}

type uowInfo struct {
	fate     int
	commit   *pair   // its commit, if invoked
	end      *pair   // its commit or backout
	returned int64   // backed out by its own call: when the call returned (0: unknown)
	okInv    []int64 // invocation times of its operations that returned OK
}

type delivery struct {
	pair
	fate     int   // of its unit of work: uowCommitted for gets outside syncpoint
	returned int64 // backed out: when the message was certainly back
}

type message struct {
	key     string
	proc    string
	seq     int64
	put     pair
	queue   string // put to
	dq      string // got from
	pers    bool
	state   int
	visible int64 // stAcked: when it was certainly visible
	commit  int64 // under syncpoint: the commit's invocation (0: none)
	held    int64 // not committed: until when it certainly stayed on the queue (depth)
	gets    []*delivery
	browsed []*Op
}

type checker struct {
	m        Model
	events   []Event
	res      *Result
	uows     map[uowID]*uowInfo
	msgs     map[string]*message
	unknown  map[string]int    // gets outside syncpoint cut short, by queue
	mayHold  map[string][]pair // gets outside syncpoint that may have held a message for a while and given it back, by queue
	deliverd map[string][]*delivery
	undrain  map[string]string // queues the final drainer could not empty, and why
}

// Check checks histories against the model; events is the fault log.
func Check(m Model, ops []Op, events []Event) *Result {
	c := &checker{m: m, events: events, res: &Result{Ops: map[string]int{}, Msgs: map[string]int{}},
		uows: map[uowID]*uowInfo{}, msgs: map[string]*message{}, unknown: map[string]int{}, mayHold: map[string][]pair{}, deliverd: map[string][]*delivery{},
		undrain: map[string]string{}}
	pairs := pairUp(ops)
	for _, p := range pairs {
		c.res.Ops[p.inv.F+"/"+p.outcome()]++
	}
	c.units(pairs)
	c.puts(pairs)
	c.gets(pairs)
	c.checkDeliveries()
	c.checkLost()
	c.checkOrder()
	c.checkDepth()
	return c.res
}

func (c *checker) add(a Anomaly) { c.res.Anomalies = append(c.res.Anomalies, a) }

// pairUp matches completions to invocations, in each process's order.
func pairUp(ops []Op) []pair {
	type id struct {
		proc string
		i    int64
	}
	byID := map[id]int{}
	var out []pair
	for i := range ops {
		o := &ops[i]
		k := id{o.Proc, o.Index}
		if o.Type == Invoke {
			byID[k] = len(out)
			out = append(out, pair{inv: o})
			continue
		}
		if j, ok := byID[k]; ok && out[j].done == nil {
			out[j].done = o
		}
	}
	return out
}

// units works out the fate of every unit of work.
func (c *checker) units(pairs []pair) {
	for i := range pairs {
		p := &pairs[i]
		if p.inv.UOW == 0 || p.inv.F == FDisconnect || p.inv.F == FConnect {
			continue
		}
		id := uowID{p.inv.Proc, p.inv.UOW}
		u := c.uows[id]
		if u == nil {
			u = &uowInfo{fate: uowBackedOut}
			c.uows[id] = u
		}
		if p.outcome() == OK {
			u.okInv = append(u.okInv, p.inv.T)
		}
		switch p.inv.F {
		case FCommit:
			u.commit, u.end = p, p
			switch p.outcome() {
			case OK:
				u.fate = uowCommitted
			case Fail:
				u.fate, u.returned = uowBackedOut, p.done.T
			default:
				u.fate = uowUnknown
			}
		case FBackout:
			u.end = p
			if p.outcome() == OK {
				u.returned = p.done.T
			}
		}
	}
}

func (c *checker) route(q string) string {
	if r, ok := c.m.Route[q]; ok {
		return r
	}
	return q
}

// puts makes a message of every put.
func (c *checker) puts(pairs []pair) {
	for _, p := range pairs {
		if p.inv.F != FPut {
			continue
		}
		proc, seq, err := ParseKey(p.inv.Msg)
		if err != nil {
			continue
		}
		m := &message{key: p.inv.Msg, proc: proc, seq: seq, put: p, queue: p.inv.Queue, dq: c.route(p.inv.Queue), pers: p.inv.Pers}
		m.held = m.putDone()
		switch {
		case !p.inv.Sync:
			switch p.outcome() {
			case OK:
				m.state, m.visible, m.held = stAcked, p.done.T, math.MaxInt64
			case Fail:
				m.state = stNever
			default:
				m.state = stMaybe
			}
		default:
			u := c.uows[uowID{p.inv.Proc, p.inv.UOW}]
			if u == nil {
				u = &uowInfo{fate: uowBackedOut}
			}
			if u.commit != nil {
				m.commit = u.commit.inv.T
			}
			m.state = syncState(p.outcome(), u.fate)
			if m.state == stAcked {
				m.visible = u.commit.done.T
				m.held = math.MaxInt64
			} else if p.outcome() == OK {
				for _, t := range u.okInv {
					m.held = max(m.held, t)
				}
			}
		}
		if m.state == stAcked {
			if m.pers {
				c.res.Msgs["acked.persistent"]++
			} else {
				c.res.Msgs["acked.nonpersistent"]++
			}
		}
		c.msgs[m.key] = m
	}
}

func (m *message) putDone() int64 {
	if m.put.done == nil {
		return m.put.inv.T
	}
	return m.put.done.T
}

// syncState is a put under syncpoint's state from its outcome and its
// unit of work's fate.
func syncState(put string, fate int) int {
	switch {
	case put == Fail || fate == uowBackedOut:
		return stNever
	case put == OK && fate == uowCommitted:
		return stAcked
	}
	return stMaybe
}

// gets attaches every delivery to its message.
func (c *checker) gets(pairs []pair) {
	for i := range pairs {
		p := pairs[i]
		switch {
		case p.inv.F == FGet && !p.inv.Sync && (p.outcome() == "none" || p.outcome() == Info):
			c.unknown[p.inv.Queue]++
			if p.outcome() == Info {
				// A get that never ended (its process was killed) is not a
				// holder: its message comes back through the repair of its
				// owner, with a backout count, which the order check allows.
				c.mayHold[p.inv.Queue] = append(c.mayHold[p.inv.Queue], p)
			}
			continue
		case p.inv.F == FGet && !p.inv.Sync && p.outcome() == Fail && p.done.RC == rcCFStructFailed:
			// Claimed, then given back (its structure failed meanwhile).
			c.mayHold[p.inv.Queue] = append(c.mayHold[p.inv.Queue], p)
			continue
		case p.inv.F == FDrain && p.outcome() != OK:
			c.undrain[p.inv.Queue] = "the final drain of " + p.inv.Queue + " did not finish"
			if p.done != nil {
				c.undrain[p.inv.Queue] += ": " + p.done.Err
			}
			continue
		case p.inv.F == FBrowse && p.outcome() == OK && p.done.Msg != "":
			if m := c.msgs[p.done.Msg]; m != nil {
				m.browsed = append(m.browsed, p.done)
			}
			continue
		case p.inv.F != FGet || p.outcome() != OK:
			continue
		}
		if p.done.Msg == "" {
			c.add(Anomaly{Kind: AnomCorrupt, Detail: "a get returned a body that is not a harness message: " + p.done.Err, Ops: []*Op{p.inv, p.done}})
			continue
		}
		d := &delivery{pair: p, fate: uowCommitted}
		if p.inv.Sync {
			u := c.uows[uowID{p.inv.Proc, p.inv.UOW}]
			d.fate = uowBackedOut
			if u != nil {
				d.fate, d.returned = u.fate, u.returned
			}
		}
		c.deliverd[p.done.Msg] = append(c.deliverd[p.done.Msg], d)
		if m := c.msgs[p.done.Msg]; m != nil {
			m.gets = append(m.gets, d)
		}
	}
	for _, m := range c.msgs {
		sort.Slice(m.gets, func(i, j int) bool { return m.gets[i].inv.T < m.gets[j].inv.T })
	}
}

// checkDeliveries: phantoms, corruption, uncommitted reads, duplicates.
func (c *checker) checkDeliveries() {
	keys := make([]string, 0, len(c.deliverd))
	for k := range c.deliverd {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		ds := c.deliverd[k]
		c.res.Msgs["delivered"]++
		m := c.msgs[k]
		if m == nil {
			c.add(Anomaly{Kind: AnomPhantom, Msgs: []string{k}, Detail: "delivered, but no history has its put", Ops: deliveryOps(ds)})
			continue
		}
		var consumed []*delivery
		for _, d := range ds {
			c.checkDelivery(m, d)
			if d.fate == uowCommitted {
				consumed = append(consumed, d)
			}
		}
		if len(consumed) > 1 {
			c.add(Anomaly{Kind: AnomDuplicate, Msgs: []string{k}, Detail: fmt.Sprintf("consumed %d times (gets outside syncpoint, or under syncpoint and committed)", len(consumed)),
				Ops: append(m.putOps(c), deliveryOps(consumed)...), Faults: c.faultsAround(m.put.inv.T, consumed[len(consumed)-1].done.T)})
		}
	}
}

// checkDelivery checks one delivery of m.
func (c *checker) checkDelivery(m *message, d *delivery) {
	got := d.done
	ops := append(m.putOps(c), d.inv, got)
	switch {
	case got.Queue != m.dq:
		c.add(Anomaly{Kind: AnomCorrupt, Msgs: []string{m.key}, Detail: fmt.Sprintf("put to %s (for %s), got from %s", m.queue, m.dq, got.Queue), Ops: ops})
	case m.put.done != nil && m.put.done.MsgID != "" && got.MsgID != m.put.done.MsgID:
		c.add(Anomaly{Kind: AnomCorrupt, Msgs: []string{m.key}, Detail: fmt.Sprintf("message id %s at the put, %s at the get", m.put.done.MsgID, got.MsgID), Ops: ops})
	case got.Pers != m.pers:
		c.add(Anomaly{Kind: AnomCorrupt, Msgs: []string{m.key}, Detail: fmt.Sprintf("put persistent=%v, got persistent=%v", m.pers, got.Pers), Ops: ops})
	}
	switch {
	case got.T < m.put.inv.T:
		c.add(Anomaly{Kind: AnomPhantom, Msgs: []string{m.key}, Detail: "got before its put was invoked", Ops: ops})
	case m.state == stNever:
		why := "its put failed"
		if m.put.outcome() != Fail {
			why = "its unit of work was backed out (never committed)"
			if u := c.uows[uowID{m.put.inv.Proc, m.put.inv.UOW}]; u != nil && u.end != nil {
				ops = append(ops, u.end.inv)
				if u.end.done != nil {
					ops = append(ops, u.end.done)
				}
			}
		}
		c.add(Anomaly{Kind: AnomUncommitted, Msgs: []string{m.key}, Detail: "delivered, but " + why, Ops: ops,
			Faults: c.faultsAround(m.put.inv.T, got.T)})
	case m.put.inv.Sync && m.commit != 0 && got.T < m.commit:
		c.add(Anomaly{Kind: AnomUncommitted, Msgs: []string{m.key}, Detail: fmt.Sprintf("got %.3f ms before its unit of work's commit was invoked", float64(m.commit-got.T)/1e6), Ops: ops})
	}
}

// putOps are the records of m's put and of its unit of work's end.
func (m *message) putOps(c *checker) []*Op {
	ops := []*Op{m.put.inv}
	if m.put.done != nil {
		ops = append(ops, m.put.done)
	}
	if m.put.inv.Sync {
		if u := c.uows[uowID{m.put.inv.Proc, m.put.inv.UOW}]; u != nil && u.end != nil {
			ops = append(ops, u.end.inv)
			if u.end.done != nil {
				ops = append(ops, u.end.done)
			}
		}
	}
	return ops
}

func deliveryOps(ds []*delivery) []*Op {
	var out []*Op
	for _, d := range ds {
		out = append(out, d.inv, d.done)
	}
	return out
}

// excused reports whether non-persistent m may have vanished with a
// structure: one on its path was lost after its put began, or was lost
// before and not yet back in service when its put began.
func (c *checker) excused(m *message) bool {
	for _, e := range c.events {
		if !structureLoss[e.Kind] || (e.End != 0 && e.End < m.put.inv.T) {
			continue
		}
		for _, s := range c.m.Path[m.queue] {
			g, name, _ := strings.Cut(s, "/")
			if e.Group == g && (e.Target == name || e.Target == "*") {
				return true
			}
		}
	}
	return false
}

// checkLost: every acknowledged message is delivered, possibly consumed,
// stranded on a transmission queue, or (non-persistent) excused by a
// structure loss. Gets outside syncpoint cut short (the process died in
// the call) may each have taken one message nobody saw: a queue with no
// more missing messages than such gets is counted unresolved, not lost.
func (c *checker) checkLost() {
	missing := map[string][]*message{}
	for _, m := range c.msgs {
		if m.state != stAcked {
			continue
		}
		taken := false
		for _, d := range m.gets {
			if d.fate != uowBackedOut {
				taken = true
			}
		}
		switch {
		case taken:
		case len(m.browsed) > 0:
			c.res.Msgs["stranded"]++
		case !m.pers && c.excused(m):
			c.res.Msgs["excused.np"]++
		default:
			missing[m.dq] = append(missing[m.dq], m)
		}
	}
	for q, ms := range missing {
		if len(ms) <= c.unknown[q] {
			c.res.Msgs["unresolved"] += len(ms)
			continue
		}
		sort.Slice(ms, func(i, j int) bool { return ms[i].key < ms[j].key })
		for _, m := range ms {
			kind := AnomLost
			if !m.pers {
				kind = AnomLostNP
			}
			last := m.visible
			ops := m.putOps(c)
			for _, d := range m.gets {
				ops = append(ops, d.inv, d.done)
				last = max(last, d.done.T)
			}
			detail := fmt.Sprintf("acknowledged, never delivered (queue %s: %d missing, %d gets outside syncpoint cut short)", q, len(ms), c.unknown[q])
			for _, dq := range []string{q, c.m.Xmit[m.queue]} {
				if why, ok := c.undrain[dq]; ok {
					detail += "; " + why
				}
			}
			c.add(Anomaly{Kind: kind, Msgs: []string{m.key}, Ops: ops, Faults: c.faultsAround(m.put.inv.T, last), Detail: detail})
		}
	}
}

// orderKey is a producer's stream on one queue at one priority.
type orderKey struct {
	proc, dq string
	prio     int
}

// checkOrder: within a queue and a priority, MQ delivers in arrival
// order, and a producer's messages (one connection, one after the
// other) arrive in its order. So when message a of producer P was
// certainly visible before a get of P's later message b began, and
// nobody had got a before that get ended, the get should have returned a
// (or another message ahead of b): delivering b first is an anomaly.
// Messages held by a get nobody recorded (a consumer killed in the call:
// the first recorded get of a has a backout count) and messages whose
// put is in doubt are left out. Through a channel the arrival time at
// the target is unknown, so the rule is weaker there: a was committed
// before b was put, and nobody had got a before b's get ended.
func (c *checker) checkOrder() {
	streams := map[orderKey][]*message{}
	for _, m := range c.msgs {
		if len(m.gets) == 0 || m.state == stNever {
			continue
		}
		k := orderKey{m.proc, m.dq, m.gets[0].done.Prio}
		streams[k] = append(streams[k], m)
	}
	keys := make([]orderKey, 0, len(streams))
	for k := range streams {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].proc != keys[j].proc {
			return keys[i].proc < keys[j].proc
		}
		return keys[i].dq < keys[j].dq
	})
	for _, k := range keys {
		c.checkStream(streams[k])
	}
}

func (c *checker) checkStream(ms []*message) {
	sort.Slice(ms, func(i, j int) bool { return ms[i].seq < ms[j].seq })
	// The acknowledged messages (visible times rise with seq) and the
	// prefix maximum of their first get's invocation.
	var acked []*message
	var prefix []int64 // prefix[i]: max first-get invocation of acked[0..i]
	var who []int      // the index achieving it
	for _, m := range ms {
		if m.state != stAcked {
			continue
		}
		first := m.gets[0]
		t := first.inv.T
		if first.done.Backouts > 0 {
			t = math.MinInt64 // held by a get nobody recorded before
		}
		i := len(acked)
		acked = append(acked, m)
		if i == 0 || t > prefix[i-1] {
			prefix, who = append(prefix, t), append(who, i)
		} else {
			prefix, who = append(prefix, prefix[i-1]), append(who, who[i-1])
		}
	}
	for _, b := range ms {
		g := b.gets[0]
		threshold := g.inv.T // local: a visible before b's get began
		if b.dq != b.queue {
			threshold = b.put.inv.T // channel: a committed before b was put
		}
		// acked[0..n-1]: visible before the threshold and earlier than b.
		n := sort.Search(len(acked), func(i int) bool { return acked[i].visible >= threshold || acked[i].seq >= b.seq })
		if n == 0 || prefix[n-1] <= g.done.T {
			continue
		}
		a := acked[who[n-1]]
		if c.heldMeanwhile(acked[:n], b, g) {
			continue
		}
		ops := append(a.putOps(c), b.putOps(c)...)
		ops = append(ops, g.inv, g.done, a.gets[0].inv, a.gets[0].done)
		c.add(Anomaly{Kind: AnomOrder, Msgs: []string{a.key, b.key},
			Detail: fmt.Sprintf("%s delivered (get ended %s) before %s, which was visible since %s and first got at %s", b.key,
				c.at(g.done.T), a.key, c.at(a.visible), c.at(a.gets[0].inv.T)),
			Ops: ops, Faults: c.faultsAround(a.put.inv.T, a.gets[0].done.T)})
	}
}

// rcCFStructFailed is MQRC 2373 (the checker reads histories, not mq).
const rcCFStructFailed = 2373

// heldMeanwhile reports whether every message of before that was still
// not got when b's get g ended (a skip, were it free) may have been held
// by a get outside syncpoint that ran during g and did not return OK: it
// claimed a message, could not make its get durable and gave the message
// back unchanged (a get that did not happen leaves no backout count). Each
// such get held at most one message.
func (c *checker) heldMeanwhile(before []*message, b *message, g *delivery) bool {
	holders := 0
	for _, h := range c.mayHold[b.dq] {
		if h.inv.T < g.done.T && h.done.T > g.inv.T {
			holders++
		}
	}
	if holders == 0 {
		return false
	}
	skipped := 0
	for _, a := range before {
		if a.gets[0].done.Backouts == 0 && a.gets[0].inv.T > g.done.T {
			skipped++
		}
	}
	return skipped <= holders
}

// at prints a time relative to the run's start.
func (c *checker) at(t int64) string { return fmt.Sprintf("%+.3fs", float64(t-c.m.T0)/1e9) }

// checkDepth: a message is certainly on its queue from the end of its put
// until a get of it begins (after a backout by the getter's own call,
// again from the call's end until the next get); an uncommitted put until
// the last operation of its unit of work that returned OK (a connection
// is revoked only between operations, and the next call then fails); a
// non-persistent one until a loss of its structure. A message whose
// first recorded get has a backout count was held by a get nobody
// recorded, and one never delivered may have been taken by a get cut
// short: both count from their put only up to nothing. More messages
// certainly on a queue at one moment than its MAXDEPTH is an anomaly.
func (c *checker) checkDepth() {
	type edge struct {
		t     int64
		delta int
		m     *message
	}
	byQ := map[string][]edge{}
	for _, m := range c.msgs {
		limit, ok := c.m.MaxDepth[m.dq]
		if !ok || limit <= 0 || m.put.outcome() != OK {
			continue
		}
		for _, iv := range c.presence(m) {
			if iv[1] > iv[0] {
				byQ[m.dq] = append(byQ[m.dq], edge{iv[0], +1, m}, edge{iv[1], -1, m})
			}
		}
	}
	for q, es := range byQ {
		sort.Slice(es, func(i, j int) bool {
			if es[i].t != es[j].t {
				return es[i].t < es[j].t
			}
			return es[i].delta < es[j].delta // an end before a start at the same instant
		})
		limit := c.m.MaxDepth[q]
		on := map[*message]int{}
		var peak []*message // the most messages at once in the current excursion above the limit
		var peakT int64
		reported := 0
		for _, e := range es {
			if e.delta > 0 {
				on[e.m]++
			} else if on[e.m]--; on[e.m] == 0 {
				delete(on, e.m)
			}
			if len(on) > limit && len(on) > len(peak) {
				peak, peakT = peak[:0], e.t
				for m := range on {
					peak = append(peak, m)
				}
			}
			if len(on) <= limit && len(peak) > 0 {
				if reported++; reported <= 5 { // the first few say it
					c.add(c.depthAnomaly(q, limit, peak, peakT))
				}
				peak = nil
			}
		}
		if reported > 5 {
			c.add(Anomaly{Kind: AnomMaxDepth, Detail: fmt.Sprintf("%d more times above MAXDEPTH %d on %s", reported-5, limit, q)})
		}
	}
}

func (c *checker) depthAnomaly(q string, limit int, peak []*message, t int64) Anomaly {
	sort.Slice(peak, func(i, j int) bool { return peak[i].key < peak[j].key })
	a := Anomaly{Kind: AnomMaxDepth, Faults: c.faultsAround(t-int64(1e9), t),
		Detail: fmt.Sprintf("%d messages certainly on %s (MAXDEPTH %d) at %s", len(peak), q, limit, c.at(t))}
	for _, m := range peak {
		a.Msgs = append(a.Msgs, m.key)
		a.Ops = append(a.Ops, m.put.inv, m.put.done)
		if len(m.gets) > 0 {
			a.Ops = append(a.Ops, m.gets[0].inv)
		}
	}
	return a
}

// presence is the intervals during which m was certainly on its queue.
func (c *checker) presence(m *message) [][2]int64 {
	start := m.put.done.T
	end := m.held // uncommitted: its unit of work's last OK operation
	if len(m.gets) == 0 && end == math.MaxInt64 {
		end = start // visible, never delivered: maybe taken by a get cut short
	}
	var out [][2]int64
	backedOut := 0 // recorded gets backed out so far: the backout count the next get must see
	for i := 0; i <= len(m.gets); i++ {
		if i < len(m.gets) {
			d := m.gets[i]
			if d.done.Backouts > backedOut {
				break // held by a get nobody recorded since the last interval began
			}
			end = min(end, d.inv.T)
		}
		out = append(out, [2]int64{start, end})
		if i == len(m.gets) {
			break
		}
		d := m.gets[i]
		if d.fate != uowBackedOut || d.returned == 0 || i+1 == len(m.gets) {
			break // consumed, or back at a time nobody knows, or maybe taken by a get cut short
		}
		backedOut++
		start, end = d.returned, math.MaxInt64
	}
	if !m.pers {
		for _, e := range c.events {
			if !structureLoss[e.Kind] || !c.excusedBy(m, e) {
				continue
			}
			for k := range out {
				if e.T >= out[k][0] {
					out[k][1] = min(out[k][1], e.T)
				}
			}
		}
	}
	return out
}

func (c *checker) excusedBy(m *message, e Event) bool {
	for _, s := range c.m.Path[m.queue] {
		g, name, _ := strings.Cut(s, "/")
		if e.Group == g && (e.Target == name || e.Target == "*") {
			return true
		}
	}
	return false
}

// faultsAround are the faults from a second before from to a second after
// to: every loss of a structure among them, and the others nearest to the
// window's end, eight in all at most.
func (c *checker) faultsAround(from, to int64) []Event {
	var losses, others []Event
	for _, e := range c.events {
		if !e.Fault || e.T < from-int64(1e9) || e.T > to+int64(1e9) {
			continue
		}
		if structureLoss[e.Kind] {
			losses = append(losses, e)
		} else {
			others = append(others, e)
		}
	}
	if n := 8 - len(losses); len(others) > max(n, 0) {
		others = others[len(others)-max(n, 0):]
	}
	out := append(losses, others...)
	sort.Slice(out, func(i, j int) bool { return out[i].T < out[j].T })
	return out
}
