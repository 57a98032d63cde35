package request_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/qmgr/qmgr/group"
	"github.com/qmgr/qmgr/lockfree"
	"github.com/qmgr/qmgr/mq"
	"github.com/qmgr/qmgr/request"
)

// tortureMaxAttempts is the managers' MaxAttempts (X), as managerMain
// sets it.
const tortureMaxAttempts = 3

// TestTorture: many concurrent requests of the three modes ("ok": FLIGHT,
// save, HOTEL, final reply, PAYMENT) run on three manager processes and
// two server processes (one answering at once, one taking 30 ms a call)
// under a group of three members, while managers
// and servers are SIGKILLed at random and a member (QM2 or QM3; the
// test's own connection is through QM1) is SIGKILLed and started again
// from time to time, and requests in flight (a record on the state queue)
// are cancelled at random (request.Cancel). At the end, with every
// request ended:
//
//   - non-recoverable: zero or one final reply (the program's); none only
//     if its tombstone says PURGED; no call performed twice; its strays
//     on the Unexpected Message Queue say PURGED;
//   - restartable: exactly one final reply (the program's, or "retried X
//     times"); at most X attempts, each call at most once per attempt;
//     PAYMENT (after the final reply) performed unless its attempts ran
//     out;
//   - request-level recoverable: exactly one final reply, the program's;
//     FLIGHT, HOTEL and PAYMENT each performed exactly once; no stray;
//   - a request whose cancel was honoured (its tombstone says CANCELLED;
//     only a request cancelled may say so): non-recoverable, no reply but
//     the program's own final reply if it sent it before the cancel;
//     the others exactly one final reply, "request purged" or the
//     program's if it sent it before the cancel (a recoverable one: no
//     call performed twice, FLIGHT and HOTEL once if it replied); its
//     strays say CANCELLED (restartable: or STALE_ATTEMPT, an earlier
//     attempt's); its cancel is not also on the Unexpected
//     Message Queue. A cancel not honoured (the request ended first) was
//     consumed by the end, or moved to the Unexpected Message Queue, and
//     the request is checked as above;
//   - no call id performed twice; nothing in flight (input, state,
//     reply, cancel and server queues); then (finalCheck) qmgr check and
//     the quiescent checker clean.
//
// It runs 12 s of kills; REQUEST_TORTURE=10m runs longer,
// REQUEST_TORTURE_SEED=n repeats a run's choices.
func TestTorture(t *testing.T) {
	d := 12 * time.Second
	if v := os.Getenv("REQUEST_TORTURE"); v != "" {
		var err error
		if d, err = time.ParseDuration(v); err != nil || d <= 0 {
			t.Fatalf("REQUEST_TORTURE=%q: want a positive duration", v)
		}
	}
	seed := time.Now().UnixNano()
	if v := os.Getenv("REQUEST_TORTURE_SEED"); v != "" {
		var err error
		if seed, err = strconv.ParseInt(v, 10, 64); err != nil {
			t.Fatalf("REQUEST_TORTURE_SEED=%q: %v", v, err)
		}
	}
	kinds := map[string]bool{"manager": true, "server": true, "member": true}
	if v := os.Getenv("REQUEST_TORTURE_KILLS"); v != "" {
		kinds = map[string]bool{}
		for _, k := range strings.Split(v, ",") {
			kinds[k] = true
		}
	}
	t.Logf("REQUEST_TORTURE_SEED=%d, %v of kills of %v", seed, d, kinds)
	members := []string{"QM1", "QM2", "QM3"}
	e := newEnv(t, members...)
	gh, err := group.Open(e.cfg, false)
	if err != nil {
		t.Fatal(err)
	}
	defer gh.Close()
	tt := &torture{e: e, gh: gh, got: map[string][]*mq.Message{}, rng: rand.New(rand.NewPCG(uint64(seed), 1)), down: map[string]time.Time{}, members: members}
	tt.managers = make([]*child, 3)
	tt.servers = make([]*child, 2)
	tt.respawn()

	ids := map[request.ID]request.Mode{}
	cancelled := map[request.ID]bool{}
	t0 := time.Now()
	deadline := t0.Add(d)
	memberEvery := 4 * time.Second // QM2 or QM3, started again a second later
	nextMember := time.Now().Add(memberEvery / 2)
	nextKill := time.Now()
	nextCancel := time.Now().Add(time.Second)
	for time.Now().Before(deadline) {
		// Keep about 30 requests in flight (the input queue's depth
		// counts the ones being run: their gets are not committed).
		// At most 60 requests a second (the structure holds the
		// replies and PERFORMED between two collections).
		allowed := int(time.Since(t0).Seconds()*60) - len(ids)
		for n := tt.depth(inputQ); n < 30 && allowed > 0; n, allowed = n+1, allowed-1 {
			mode := modes[tt.rng.IntN(len(modes))]
			ids[e.put(mode, "ok")] = mode
		}
		tt.collect()
		tt.restartMembers(time.Second)
		tt.respawn()
		if now := time.Now(); now.After(nextMember) && len(tt.down) == 0 && kinds["member"] {
			tt.killMember()
			nextMember = now.Add(memberEvery)
		} else if now.After(nextKill) {
			if tt.rng.IntN(2) == 0 && kinds["manager"] {
				tt.kill("manager", tt.managers)
			} else if kinds["server"] {
				tt.kill("server", tt.servers)
			}
			nextKill = now.Add(time.Duration(150+tt.rng.IntN(450)) * time.Millisecond)
		}
		if now := time.Now(); now.After(nextCancel) {
			tt.cancelOne(ids, cancelled)
			nextCancel = now.Add(time.Duration(100+tt.rng.IntN(300)) * time.Millisecond)
		}
		time.Sleep(20 * time.Millisecond) // the pace of the loop (puts and kills), not synchronisation
	}
	tt.restartMembers(0)
	tt.respawn()
	t.Logf("%d requests, %d cancelled; killed %d managers, %d servers, %d members", len(ids), len(cancelled), tt.kills["manager"], tt.kills["server"], tt.kills["member"])
	if tt.kills["manager"] == 0 && kinds["manager"] || tt.kills["server"] == 0 && kinds["server"] || tt.kills["member"] == 0 && kinds["member"] {
		t.Errorf("kills %v: want managers, servers and a member killed", tt.kills)
	}

	// Every request ends: nothing left on the input, server, reply or
	// cancel queues, nothing uncommitted, no record or marker on the
	// state queue.
	busy := append([]string{inputQ, request.DefaultReplyQueue, request.DefaultCancelQueue}, serverQueues...)
	limit := time.Now().Add(60*time.Second + d/10)
	for why := tt.inFlight(busy); why != ""; why = tt.inFlight(busy) {
		if strings.Contains(why, "on the state queue") {
			// Nothing on the input queue (held or not), nothing
			// uncommitted: no manager holds this request nor ever
			// will, and its record or marker stays for good.
			tt.dumpState(ids)
			t.Errorf("requests ended, but their state is left behind: %s", why)
			break
		}
		if time.Now().After(limit) {
			tt.dumpState(ids)
			t.Fatalf("requests still in flight after the kills stopped: %s", why)
		}
		time.Sleep(10 * time.Millisecond) // polling the queues
	}

	tt.collect()
	tt.conserve(ids, cancelled)
}

// cancelOne cancels a request of the test in flight (its record on the
// state queue, not ended), at random, not cancelled before.
func (tt *torture) cancelOne(ids map[request.ID]request.Mode, cancelled map[request.ID]bool) {
	rs, err := request.List(tt.e.c, "")
	if err != nil {
		tt.e.t.Fatal(err)
	}
	var in []request.ID
	for _, r := range rs {
		if _, ours := ids[r.RequestID]; ours && !cancelled[r.RequestID] && r.Status < request.StatusDone {
			in = append(in, r.RequestID)
		}
	}
	if len(in) == 0 {
		return
	}
	id := in[tt.rng.IntN(len(in))]
	if err := request.Cancel(tt.e.c, "", id); err != nil {
		tt.e.t.Fatal(err)
	}
	cancelled[id] = true
}

// collect takes the messages off the requester's reply queue, PERFORMED
// and the Unexpected Message Queue (so that a long run does not fill the
// structure), keeping them for conserve.
func (tt *torture) collect() {
	t := tt.e.t
	for _, name := range []string{clientQ, performedQ, request.DefaultUnexpectedQueue} {
		q := tt.qs[name]
		if q == nil {
			var err error
			if q, err = tt.e.c.Open(name, mq.OpenOptions{Input: true}); err != nil {
				t.Fatal(err)
			}
			if tt.qs == nil {
				tt.qs = map[string]*mq.Queue{}
			}
			tt.qs[name] = q
		}
		for {
			m, err := q.Get(mq.GetOptions{})
			if errors.Is(err, mq.ErrNoMessage) {
				break
			}
			if err != nil {
				t.Fatalf("collect %s: %v", name, err)
			}
			tt.got[name] = append(tt.got[name], m)
		}
	}
}

// torture is TestTorture's processes and what it did to them.
type torture struct {
	e        *env
	gh       *group.Group
	rng      *rand.Rand
	members  []string
	managers []*child
	servers  []*child
	down     map[string]time.Time // members killed and not started again, since when
	kills    map[string]int
	qs       map[string]*mq.Queue     // the queues collect reads
	got      map[string][]*mq.Message // what collect took, by queue
}

// up is a member that is running, at random.
func (tt *torture) up() string {
	var live []string
	for _, m := range tt.members {
		if _, d := tt.down[m]; !d {
			live = append(live, m)
		}
	}
	return live[tt.rng.IntN(len(live))]
}

// respawn starts a manager or server in each slot whose process is gone
// (killed, or exited when its member died), through a running member.
func (tt *torture) respawn() {
	for i, ch := range tt.managers {
		if ch == nil || exited(ch) {
			tt.managers[i] = tt.e.start("manager", tt.up(), nil, "-name", fmt.Sprintf("RM%d", i+1), "-workers", "3", "-tombstone-ttl", "24h")
		}
	}
	for i, ch := range tt.servers {
		if ch == nil || exited(ch) {
			// One server answers at once (the managers' commits then
			// come fast, and a kill lands inside one more often), the
			// other takes 30 ms a call (a kill finds requests waiting).
			tt.servers[i] = tt.e.start("server", tt.up(), nil, "-delay", []string{"0s", "30ms"}[i%2])
		}
	}
}

func exited(ch *child) bool {
	select {
	case <-ch.done:
		return true
	default:
		return false
	}
}

// kill SIGKILLs one of slots at random, and waits until it is gone.
func (tt *torture) kill(what string, slots []*child) {
	ch := slots[tt.rng.IntN(len(slots))]
	if exited(ch) {
		return
	}
	ch.p.Process.Signal(syscall.SIGKILL)
	<-ch.done
	tt.count(what)
}

func (tt *torture) count(what string) {
	if tt.kills == nil {
		tt.kills = map[string]int{}
	}
	tt.kills[what]++
}

// killMember SIGKILLs QM2 or QM3: the managers and servers connected
// through it lose their connections (managers connect again through
// another member; servers exit and are started again).
func (tt *torture) killMember() {
	name := tt.members[1+tt.rng.IntN(len(tt.members)-1)]
	tt.e.g.Kill(name)
	tt.down[name] = time.Now()
	tt.count("member")
}

// restartMembers starts again the members down for at least after.
func (tt *torture) restartMembers(after time.Duration) {
	for name, since := range tt.down {
		if time.Since(since) < after {
			continue
		}
		if _, err := tt.e.g.Start(name); err != nil {
			tt.e.t.Fatalf("start %s again: %v", name, err)
		}
		delete(tt.down, name)
	}
}

// info is every queue of the group by name.
func (tt *torture) info() map[string]lockfree.QueueInfo {
	out, err := tt.gh.QueueInfos()
	if err != nil {
		tt.e.t.Fatal(err)
	}
	return out
}

func (tt *torture) depth(q string) int { return int(tt.info()[q].Depth) }

// inFlight says what is still in flight ("" nothing): a message on one
// of busy, a unit of work open anywhere, a record or marker on the
// state queue (tombstones are on a queue of their own).
func (tt *torture) inFlight(busy []string) string {
	info := tt.info()
	for _, q := range busy {
		if d := info[q].Depth; d != 0 {
			return fmt.Sprintf("%d on %s", d, q)
		}
	}
	for name, qi := range info {
		if qi.Uncom != 0 {
			return fmt.Sprintf("%d uncommitted on %s", qi.Uncom, name)
		}
	}
	for _, m := range tt.e.browse(request.DefaultStateQueue) {
		return "a " + m.Format + " on the state queue"
	}
	return ""
}

// conserve checks what became of every request, from the queues read
// once each.
func (tt *torture) conserve(ids map[request.ID]request.Mode, cancelled map[request.ID]bool) {
	t := tt.e.t
	type rfacts struct {
		finals    []string
		performed map[string]int
		tomb      *request.Record
		strays    []request.UnexpectedHeader
		cancels   []request.UnexpectedHeader // its cancels moved to the Unexpected Message Queue
	}
	byKey := map[request.Key]*rfacts{}
	byID := map[request.ID]*rfacts{}
	for id := range ids {
		f := &rfacts{performed: map[string]int{}}
		byKey[request.KeyOf(id)] = f
		byID[id] = f
	}
	keyOf := func(correl [24]byte) request.Key { return request.Key(correl[:16]) }
	for _, m := range tt.got[clientQ] {
		f := byID[request.ID(m.CorrelID)]
		if f == nil {
			t.Errorf("a reply on %s to no request of the test: CorrelID %x", clientQ, m.CorrelID)
			continue
		}
		if request.IsFinalFormat(m.Format) {
			f.finals = append(f.finals, m.Format+":"+string(m.Body))
		} else {
			t.Errorf("request %s: an intermediate reply %q (the program sends none)", request.ID(m.CorrelID), m.Body)
		}
	}
	calls := map[[24]byte]int{}
	for _, m := range tt.got[performedQ] {
		f := byKey[keyOf(m.CorrelID)]
		if f == nil {
			t.Errorf("a call of no request of the test performed: %x", m.CorrelID)
			continue
		}
		f.performed[string(m.Body)]++
		if calls[m.CorrelID]++; calls[m.CorrelID] == 2 {
			t.Errorf("call %x (%s) performed twice", m.CorrelID, m.Body)
		}
	}
	for _, m := range tt.e.browse(request.DefaultStateQueue) {
		t.Errorf("on the state queue: a %s message, CorrelID %x", m.Format, m.CorrelID)
	}
	for _, m := range tt.e.browse(request.DefaultTombstoneQueue) {
		f := byKey[keyOf(m.CorrelID)]
		if f == nil || m.Format != request.FormatTombstone {
			t.Errorf("on the tombstone queue: a %s message, CorrelID %x", m.Format, m.CorrelID)
			continue
		}
		r, err := request.ParseRecord(m.Body)
		if err != nil {
			t.Fatalf("tombstone %x: %v", m.CorrelID, err)
		}
		f.tomb = r
	}
	for _, m := range tt.got[request.DefaultUnexpectedQueue] {
		h, _, err := request.ParseUnexpectedHeader(m.Body)
		if err != nil {
			t.Fatalf("unexpected message queue: %v", err)
		}
		f := byKey[keyOf(h.CorrelID)]
		if f == nil {
			f = byID[h.RequestID]
		}
		if f == nil {
			t.Errorf("a stray of no request of the test: %+v", h)
			continue
		}
		if h.OrigQ == request.DefaultCancelQueue {
			f.cancels = append(f.cancels, h)
			continue
		}
		f.strays = append(f.strays, h)
	}

	const done = request.FormatFinal + ":FLIGHT-ok+HOTEL-ok"
	retried := fmt.Sprintf("%s:request retried %d times and will not be retried", request.FormatRetried, tortureMaxAttempts)
	tally := map[string]int{}
	failures := 0
	for id, mode := range ids {
		f := byID[id]
		bad := func(format string, a ...any) {
			failures++
			t.Errorf("%v request %s: %s (finals %q, performed %v, tombstone %+v, strays %+v, cancelled %v, cancels moved %+v)", mode, id, fmt.Sprintf(format, a...), f.finals, f.performed, f.tomb, f.strays, cancelled[id], f.cancels)
		}
		if len(f.cancels) > 0 && !cancelled[id] {
			bad("a cancel of it moved to the Unexpected Message Queue, but the test sent none")
		}
		if f.tomb != nil && f.tomb.Status == request.StatusCancelled {
			if !cancelled[id] {
				bad("cancelled, but the test sent no cancel")
			}
			if len(f.cancels) > 0 {
				bad("its cancel honoured and moved to the Unexpected Message Queue too")
			}
			tt.conserveCancelled(mode, f.finals, f.performed, f.tomb, f.strays, bad)
			how := "noreply"
			if len(f.finals) > 0 {
				how = strings.ToLower(strings.TrimPrefix(f.finals[0], "MQR")[:5]) // "final" (the program's) or "purge"
			}
			tally[fmt.Sprintf("cancelled.%v.%s", strings.ToLower(mode.String()), how)]++
			if failures > 20 {
				t.Fatal("more than 20 requests wrong; stopping")
			}
			continue
		}
		if cancelled[id] {
			if len(f.cancels) > 0 {
				tally["cancel.moved"]++ // the request ended before its cancel was put
			} else {
				tally["cancel.consumed"]++ // ... or before its manager saw it: its end took it
			}
		}
		switch mode {
		case request.ModeNonRecoverable:
			switch {
			case len(f.finals) > 1:
				bad("more than one final reply")
			case len(f.finals) == 1 && f.finals[0] != done:
				bad("a final reply not the program's")
			case len(f.finals) == 0 && (f.tomb == nil || f.tomb.Status != request.StatusPurged):
				bad("no final reply and not purged")
			}
			for q, n := range f.performed {
				if n > 1 {
					bad("%s performed %d times", q, n)
				}
			}
			for _, s := range f.strays {
				if s.Reason != request.ReasonPurged {
					bad("a stray saying %v, want PURGED", s.Reason)
				}
			}
			if len(f.finals) == 0 {
				tally["nonrecoverable.purged"]++
			} else {
				tally["nonrecoverable.replied"]++
			}
		case request.ModeRestartable:
			if len(f.finals) != 1 || f.finals[0] != done && f.finals[0] != retried {
				bad("want exactly one final reply")
				continue
			}
			attempts := 1
			if f.tomb != nil {
				attempts = int(f.tomb.Attempts)
			}
			if attempts > tortureMaxAttempts {
				bad("%d attempts", attempts)
			}
			for q, n := range f.performed {
				if n > attempts {
					bad("%s performed %d times in %d attempts", q, n, attempts)
				}
			}
			if f.finals[0] == done && attempts < tortureMaxAttempts && f.performed["PAYMENT"] == 0 {
				bad("PAYMENT, after the final reply, never performed")
			}
			if f.finals[0] == retried {
				tally["restartable.retried"]++
			} else {
				tally[fmt.Sprintf("restartable.attempts%d", attempts)]++
			}
		case request.ModeRecoverable:
			if len(f.finals) == 1 && strings.HasPrefix(f.finals[0], request.FormatRetried+":request resumed ") {
				// Killed with its manager more often than Config.MaxResumes
				// (default 10) allows: ended saying so, no call twice.
				if f.tomb == nil || f.tomb.Attempts <= 10 {
					bad("resumed out after %v takes", f.tomb)
				}
				for q, n := range f.performed {
					if n > 1 {
						bad("%s performed %d times", q, n)
					}
				}
				tally["recoverable.resumedout"]++
				break
			}
			if len(f.finals) != 1 || f.finals[0] != done {
				bad("want exactly one final reply, the program's")
			}
			for _, q := range []string{"FLIGHT", "HOTEL", "PAYMENT"} {
				if f.performed[q] != 1 {
					bad("%s performed %d times, want once", q, f.performed[q])
				}
			}
			if len(f.strays) != 0 {
				bad("strays")
			}
			if f.tomb != nil && f.tomb.Attempts > 1 {
				tally["recoverable.resumed"]++
			} else {
				tally["recoverable.once"]++
			}
		}
		if failures > 20 {
			t.Fatal("more than 20 requests wrong; stopping")
		}
	}
	t.Logf("outcomes: %v", tally)
}

// conserveCancelled checks a request whose cancel was honoured (its
// tombstone says CANCELLED): a non-recoverable one sends no reply of the
// manager's (only the program's final reply, if it sent it before the
// cancel); the others exactly one final reply, "request purged" unless
// the program's was sent before the cancel; no call performed more than
// its mode allows; strays say CANCELLED (or, restartable, STALE_ATTEMPT).
func (tt *torture) conserveCancelled(mode request.Mode, finals []string, performed map[string]int, tomb *request.Record, strays []request.UnexpectedHeader, bad func(string, ...any)) {
	const done = request.FormatFinal + ":FLIGHT-ok+HOTEL-ok"
	const purged = request.FormatPurged + ":request purged"
	switch mode {
	case request.ModeNonRecoverable:
		if len(finals) > 1 || len(finals) == 1 && finals[0] != done {
			bad("cancelled: final replies other than the program's one")
		}
		for q, n := range performed {
			if n > 1 {
				bad("cancelled: %s performed %d times", q, n)
			}
		}
	case request.ModeRestartable:
		if len(finals) != 1 || finals[0] != done && finals[0] != purged {
			bad("cancelled: want exactly one final reply, the program's or %q", purged)
		}
		if tomb.Attempts > tortureMaxAttempts {
			bad("cancelled: %d attempts", tomb.Attempts)
		}
		for q, n := range performed {
			if n > int(tomb.Attempts) {
				bad("cancelled: %s performed %d times in %d attempts", q, n, tomb.Attempts)
			}
		}
	case request.ModeRecoverable:
		if len(finals) != 1 || finals[0] != done && finals[0] != purged {
			bad("cancelled: want exactly one final reply, the program's or %q", purged)
		}
		for _, q := range []string{"FLIGHT", "HOTEL", "PAYMENT"} {
			if performed[q] > 1 || len(finals) == 1 && finals[0] == done && q != "PAYMENT" && performed[q] != 1 {
				bad("cancelled: %s performed %d times", q, performed[q])
			}
		}
	}
	for _, s := range strays {
		// A restartable request's earlier attempts' replies may have
		// been moved before the cancel.
		if s.Reason != request.ReasonCancelled && !(mode == request.ModeRestartable && s.Reason == request.ReasonStaleAttempt) {
			bad("cancelled: a stray saying %v, want CANCELLED", s.Reason)
		}
	}
}

// dumpState logs what the state queue holds, and what the
// queues say of each request it names: a failed torture's account.
func (tt *torture) dumpState(ids map[request.ID]request.Mode) {
	t := tt.e.t
	byKey := map[request.Key]request.ID{}
	for id := range ids {
		byKey[request.KeyOf(id)] = id
	}
	for _, m := range tt.e.browse(request.DefaultStateQueue) {
		r, err := request.ParseRecord(m.Body)
		if err != nil {
			t.Logf("state queue: %s %x: %v", m.Format, m.CorrelID, err)
			continue
		}
		id := byKey[request.Key(m.CorrelID[:16])]
		f := tt.e.facts(id)
		t.Logf("state queue: %s of %v request %s: status %v attempts %d manager %s step %q pending %d journal %d, put %v\n  facts: finals %q performed %v live %v tomb %+v strays %+v onInput %v onReplyQ %d",
			m.Format, r.Mode, id, r.Status, r.Attempts, r.Manager, r.Step, len(r.Pending), len(r.Journal), m.PutTime, f.finals, f.performed, f.live, f.tomb, f.strays, f.onInput, f.onReplyQ)
	}
}
