package chaos

import (
	"fmt"
	"os"
	"strings"
	"testing"
)

// hist builds a hand-made history: every record one tick after the last.
type hist struct {
	ops    []Op
	t      int64
	next   map[string]int64
	pers   map[string]bool // of each message put
	events []Event
}

func newHist() *hist { return &hist{t: 1000, next: map[string]int64{}, pers: map[string]bool{}} }

func (h *hist) tick() int64 { h.t += 10; return h.t }

// call records an invocation and its completion (ty "" : none).
func (h *hist) call(op Op, ty string, done Op) {
	h.next[op.Proc]++
	op.Index, op.Type, op.T = h.next[op.Proc], Invoke, h.tick()
	h.ops = append(h.ops, op)
	if ty == "" {
		return
	}
	done.Proc, done.Index, done.Type, done.F, done.T = op.Proc, op.Index, ty, op.F, h.tick()
	if done.Queue == "" {
		done.Queue = op.Queue
	}
	h.ops = append(h.ops, done)
}

func (h *hist) put(proc, q string, seq int64, pers bool, uow int64, ty string) string {
	k := Key(proc, seq)
	h.pers[k] = pers
	op := Op{Proc: proc, F: FPut, Queue: q, Msg: k, Pers: pers, Sync: uow != 0, UOW: uow}
	done := op
	if ty == OK {
		done.MsgID = "id-" + k
	}
	h.call(op, ty, done)
	return k
}

func (h *hist) end(proc, f string, uow int64, ty string) {
	h.call(Op{Proc: proc, F: f, UOW: uow}, ty, Op{})
}

// get records a get of key (as it was put) under syncpoint in unit of
// work uow, or outside syncpoint (uow 0).
func (h *hist) get(proc, q, key string, uow int64, backouts int) {
	op := Op{Proc: proc, F: FGet, Queue: q, Sync: uow != 0, UOW: uow}
	done := op
	done.Msg, done.MsgID, done.Pers, done.Backouts = key, "id-"+key, h.pers[key], backouts
	h.call(op, OK, done)
}

func (h *hist) check(t *testing.T, m Model) *Result {
	t.Helper()
	if m.Path == nil {
		m.Path = map[string][]string{"Q": {"A/APPL1"}, "RQ": {"A/APPL1", "B/APPL1"}, "SMALL": {"A/APPL2"}}
	}
	return Check(m, h.ops, h.events)
}

// want checks that the result has exactly the anomaly kinds given (with
// their counts) and returns the anomalies.
func want(t *testing.T, r *Result, kinds map[string]int) {
	t.Helper()
	got := r.ByKind()
	for k, n := range kinds {
		if got[k] != n {
			t.Errorf("%s: %d anomalies, want %d", k, got[k], n)
		}
	}
	for k, n := range got {
		if _, ok := kinds[k]; !ok {
			t.Errorf("unexpected %d %s anomalies", n, k)
		}
	}
	if t.Failed() {
		for _, a := range r.Anomalies {
			t.Log(a)
		}
	}
}

// TestCheckerClean: a history where everything went right, with a
// backout that puts a message back (redelivered after its successor), a
// unit of work backed out by its producer, a failed put, and a commit in
// doubt, has no anomaly.
func TestCheckerClean(t *testing.T) {
	h := newHist()
	a := h.put("p1.1", "Q", 1, true, 0, OK)
	b := h.put("p1.1", "Q", 2, false, 1, OK)
	c := h.put("p1.1", "Q", 3, true, 1, OK)
	h.end("p1.1", FCommit, 1, OK)
	h.put("p1.1", "Q", 4, true, 2, OK)
	h.end("p1.1", FBackout, 2, OK)        // 4 never visible
	h.put("p1.1", "Q", 5, false, 0, Fail) // queue full
	d := h.put("p1.1", "Q", 6, true, 3, OK)
	h.end("p1.1", FCommit, 3, "") // the producer died in the commit: 6 in doubt
	// c1 gets a under syncpoint and backs out; c2 gets b and c meanwhile;
	// a comes back (backout count 1) and is got again.
	h.get("c1.1", "Q", a, 1, 0)
	h.get("c2.1", "Q", b, 0, 0)
	h.get("c2.1", "Q", c, 0, 0)
	h.end("c1.1", FBackout, 1, OK)
	h.get("c1.1", "Q", a, 2, 1)
	h.end("c1.1", FCommit, 2, OK)
	h.get("c2.1", "Q", d, 0, 0)
	r := h.check(t, Model{})
	want(t, r, map[string]int{})
	if r.Msgs["acked.persistent"] != 2 || r.Msgs["acked.nonpersistent"] != 1 || r.Msgs["delivered"] != 4 {
		t.Fatalf("counts: %v", r.Msgs)
	}
}

// TestCheckerLost: an acknowledged persistent message never delivered is
// lost; a non-persistent one too, unless its structure was lost after
// its put began.
func TestCheckerLost(t *testing.T) {
	h := newHist()
	h.put("p1.1", "Q", 1, true, 0, OK)
	h.put("p1.1", "Q", 2, true, 1, OK)
	h.end("p1.1", FCommit, 1, OK)
	h.put("p1.1", "Q", 3, false, 0, OK)
	want(t, h.check(t, Model{}), map[string]int{AnomLost: 2, AnomLostNP: 1})

	// The structure of Q (APPL1) lost after the put: excused. A loss of
	// another structure, or one over before the put, excuses nothing.
	h = newHist()
	h.events = append(h.events, Event{Kind: FaultCFRemove, Fault: true, Group: "A", Target: "APPL1", T: 1, End: 2})
	h.put("p1.1", "Q", 1, false, 0, OK)
	h.put("p1.1", "SMALL", 2, false, 0, OK)
	h.put("p1.1", "Q", 3, true, 0, OK)
	h.events = append(h.events, Event{Kind: FaultCFTruncate, Fault: true, Group: "A", Target: "APPL1", T: h.tick()})
	r := h.check(t, Model{})
	want(t, r, map[string]int{AnomLostNP: 1, AnomLost: 1})
	if r.Msgs["excused.np"] != 1 || !strings.Contains(r.Anomalies[0].Msgs[0]+r.Anomalies[1].Msgs[0], "p1.1:2") {
		t.Fatalf("excused %v, anomalies %v", r.Msgs, r.Anomalies)
	}
}

// TestCheckerLostUndrained: a lost message on a queue the final drainer
// could not empty says so.
func TestCheckerLostUndrained(t *testing.T) {
	h := newHist()
	h.put("p1.1", "SMALL", 1, true, 0, OK)
	h.call(Op{Proc: "drain", F: FDrain, Queue: "SMALL"}, Fail, Op{Err: "could not connect and open within 30s"})
	r := h.check(t, Model{})
	want(t, r, map[string]int{AnomLost: 1})
	if d := r.Anomalies[0].Detail; !strings.Contains(d, "final drain of SMALL did not finish: could not connect") {
		t.Fatalf("detail: %s", d)
	}
}

// TestExitReason: exits that differ only in numbers are one reason.
func TestExitReason(t *testing.T) {
	a := exitReason("exit status 1 (pid 123); log A.QMA1.log: x | qmgr: attach /tmp/chaos-7/A/cf/APPL1: file is 100 bytes")
	b := exitReason("exit status 1 (pid 456); log A.QMA1.log: y | qmgr: attach /tmp/chaos-7/A/cf/APPL1: file is 2000 bytes")
	c := exitReason("exit status 2 (pid 456); log A.QMA1.log: panic: index out of range [7] with length 3")
	if a != b || a == c || !strings.Contains(c, "panic") {
		t.Fatalf("%q %q %q", a, b, c)
	}
}

// TestCheckerLostExplained: a get outside syncpoint cut short may have
// taken one missing message; two missing with one such get are lost.
func TestCheckerLostExplained(t *testing.T) {
	h := newHist()
	h.put("p1.1", "Q", 1, true, 0, OK)
	h.call(Op{Proc: "c1.1", F: FGet, Queue: "Q"}, "", Op{})
	r := h.check(t, Model{})
	want(t, r, map[string]int{})
	if r.Msgs["unresolved"] != 1 {
		t.Fatalf("counts: %v", r.Msgs)
	}
	h.put("p1.1", "Q", 2, true, 0, OK)
	want(t, h.check(t, Model{}), map[string]int{AnomLost: 2})
}

// TestCheckerDuplicate: consumed twice (outside syncpoint, or committed)
// is a duplicate; a get in a unit of work backed out (by a call, or by
// the consumer's death) and a later one is not.
func TestCheckerDuplicate(t *testing.T) {
	h := newHist()
	a := h.put("p1.1", "Q", 1, true, 0, OK)
	b := h.put("p1.1", "Q", 2, false, 0, OK)
	c := h.put("p1.1", "Q", 3, false, 0, OK)
	h.get("c1.1", "Q", a, 1, 0) // c1.1 dies: backed out
	h.get("c1.2", "Q", a, 1, 1)
	h.end("c1.2", FCommit, 1, OK)
	h.get("c2.1", "Q", b, 0, 0)
	h.get("c2.1", "Q", b, 0, 0)
	h.get("c2.1", "Q", c, 7, 0)
	h.end("c2.1", FBackout, 7, OK)
	h.get("c2.1", "Q", c, 0, 1)
	r := h.check(t, Model{})
	want(t, r, map[string]int{AnomDuplicate: 1})
	if r.Anomalies[0].Msgs[0] != b {
		t.Fatalf("duplicate of %v, want %s", r.Anomalies[0].Msgs, b)
	}
	h.get("c3.1", "Q", c, 1, 0)
	h.end("c3.1", FCommit, 1, OK)
	want(t, h.check(t, Model{}), map[string]int{AnomDuplicate: 2})
}

// TestCheckerOrder: a producer's message delivered after its successor
// while nobody held it is an anomaly; held by a getter that backed out,
// or by a get nobody recorded (a backout count), it is not.
func TestCheckerOrder(t *testing.T) {
	h := newHist()
	a := h.put("p1.1", "Q", 1, true, 0, OK)
	b := h.put("p1.1", "Q", 2, true, 0, OK)
	h.get("c1.1", "Q", b, 0, 0)
	h.get("c1.1", "Q", a, 0, 0)
	r := h.check(t, Model{})
	want(t, r, map[string]int{AnomOrder: 1})
	if got := strings.Join(r.Anomalies[0].Msgs, " "); got != a+" "+b {
		t.Fatalf("order anomaly names %s", got)
	}

	h = newHist()
	a = h.put("p1.1", "Q", 1, true, 0, OK)
	b = h.put("p1.1", "Q", 2, true, 0, OK)
	h.get("c1.1", "Q", a, 1, 0)
	h.get("c2.1", "Q", b, 0, 0)
	h.end("c1.1", FBackout, 1, OK)
	h.get("c2.1", "Q", a, 0, 1)
	want(t, h.check(t, Model{}), map[string]int{})

	h = newHist()
	a = h.put("p1.1", "Q", 1, true, 0, OK)
	b = h.put("p1.1", "Q", 2, true, 0, OK)
	h.call(Op{Proc: "c1.1", F: FGet, Queue: "Q", Sync: true, UOW: 1}, "", Op{}) // took a, died
	h.get("c2.1", "Q", b, 0, 0)
	h.get("c2.1", "Q", a, 0, 1)
	want(t, h.check(t, Model{}), map[string]int{})

	// a and b in one unit of work: visible together, a first.
	h = newHist()
	a = h.put("p1.1", "Q", 1, true, 1, OK)
	b = h.put("p1.1", "Q", 2, false, 1, OK)
	h.end("p1.1", FCommit, 1, OK)
	h.get("c1.1", "Q", b, 0, 0)
	h.get("c1.1", "Q", a, 0, 0)
	want(t, h.check(t, Model{}), map[string]int{AnomOrder: 1})

	// A get outside syncpoint that ran while b was got and did not return
	// OK may have held a (claimed, then given back unchanged): one such get
	// explains one skipped message, and only while it ran.
	for _, tc := range []struct {
		name    string
		msgs    int  // messages put before b
		overlap bool // the failed get runs during b's get
		want    int
	}{
		{"held by a failed get", 1, true, 0},
		{"two skipped, one holder", 2, true, 1},
		{"the failed get ended before", 1, false, 1},
	} {
		h = newHist()
		var before []string
		for i := 0; i < tc.msgs; i++ {
			before = append(before, h.put("p1.1", "Q", int64(i+1), true, 0, OK))
		}
		b = h.put("p1.1", "Q", int64(tc.msgs+1), true, 0, OK)
		h.next["c2.1"]++
		inv := Op{Proc: "c2.1", Index: h.next["c2.1"], Type: Invoke, F: FGet, Queue: "Q", T: h.tick()}
		h.ops = append(h.ops, inv)
		failed := Op{Proc: "c2.1", Index: inv.Index, Type: Info, F: FGet, Queue: "Q", RC: 2009, Err: "its log record is not known to be durable"}
		if !tc.overlap {
			failed.T = h.tick()
			h.ops = append(h.ops, failed)
		}
		h.get("c1.1", "Q", b, 0, 0)
		if tc.overlap {
			failed.T = h.tick()
			h.ops = append(h.ops, failed)
		}
		for _, k := range before {
			h.get("c1.1", "Q", k, 0, 0)
		}
		r := h.check(t, Model{})
		if got := r.ByKind()[AnomOrder]; got != tc.want {
			t.Errorf("%s: %d order anomalies, want %d", tc.name, got, tc.want)
		}
	}

	// A get that never ended (its process killed) holds nothing for the
	// rule above: its message would come back with a backout count.
	h = newHist()
	h.next["c2.1"]++
	h.ops = append(h.ops, Op{Proc: "c2.1", Index: h.next["c2.1"], Type: Invoke, F: FGet, Queue: "Q", T: h.tick()})
	a = h.put("p1.1", "Q", 1, true, 0, OK)
	b = h.put("p1.1", "Q", 2, true, 0, OK)
	h.get("c1.1", "Q", b, 0, 0)
	h.get("c1.1", "Q", a, 0, 0)
	want(t, h.check(t, Model{}), map[string]int{AnomOrder: 1})

	// a's commit in doubt: when it became visible is unknown.
	h = newHist()
	a = h.put("p1.1", "Q", 1, true, 1, OK)
	h.end("p1.1", FCommit, 1, Info)
	b = h.put("p1.1", "Q", 2, true, 0, OK)
	h.get("c1.1", "Q", b, 0, 0)
	h.get("c1.1", "Q", a, 0, 0)
	want(t, h.check(t, Model{}), map[string]int{})
}

// TestCheckerOrderThroughChannel: through a channel a message committed
// before its successor was put must arrive first.
func TestCheckerOrderThroughChannel(t *testing.T) {
	m := Model{Route: map[string]string{"RQ": "TARGET"}}
	h := newHist()
	a := h.put("r1.1", "RQ", 1, false, 1, OK)
	h.end("r1.1", FCommit, 1, OK)
	b := h.put("r1.1", "RQ", 2, false, 0, OK)
	h.get("rc.1", "TARGET", b, 0, 0)
	h.get("rc.1", "TARGET", a, 0, 0)
	want(t, h.check(t, m), map[string]int{AnomOrder: 1})
	// Got from the wrong queue: misrouted.
	h = newHist()
	a = h.put("r1.1", "RQ", 1, false, 0, OK)
	h.get("rc.1", "RQ", a, 0, 0)
	want(t, h.check(t, m), map[string]int{AnomCorrupt: 1})
}

// TestCheckerUncommitted: messages of a put that failed, of a unit of
// work backed out or never ended, and one got before its commit began,
// must never be delivered.
func TestCheckerUncommitted(t *testing.T) {
	h := newHist()
	a := h.put("p1.1", "Q", 1, true, 1, OK)
	h.end("p1.1", FBackout, 1, OK)
	b := h.put("p1.1", "Q", 2, false, 0, Fail)
	c := h.put("p1.1", "Q", 3, true, 2, OK) // the producer dies before its commit
	d := h.put("p1.2", "Q", 1, true, 1, OK)
	h.end("p1.2", FCommit, 1, Fail) // 2003: backed out
	for _, k := range []string{a, b, c, d} {
		h.get("c1.1", "Q", k, 0, 0)
	}
	want(t, h.check(t, Model{}), map[string]int{AnomUncommitted: 4})

	h = newHist()
	e := h.put("p1.1", "Q", 1, true, 1, OK)
	h.get("c1.1", "Q", e, 0, 0) // a dirty read
	h.end("p1.1", FCommit, 1, OK)
	want(t, h.check(t, Model{}), map[string]int{AnomUncommitted: 1})
}

// TestCheckerPhantomAndCorrupt: a message nobody put, a body that is not
// a harness message, a message id or persistence that changed.
func TestCheckerPhantomAndCorrupt(t *testing.T) {
	h := newHist()
	h.get("c1.1", "Q", Key("nobody.1", 7), 0, 0)
	h.call(Op{Proc: "c1.1", F: FGet, Queue: "Q"}, OK, Op{Err: "chaos: not a harness message body"})
	a := h.put("p1.1", "Q", 1, true, 0, OK)
	b := h.put("p1.1", "Q", 2, true, 0, OK)
	h.get("c1.1", "Q", a, 0, 0)
	h.call(Op{Proc: "c1.1", F: FGet, Queue: "Q"}, OK, Op{Msg: b, MsgID: "other", Pers: true})
	c := h.put("p1.1", "Q", 3, true, 0, OK)
	h.get("c1.1", "Q", c, 0, 0)
	h.ops[len(h.ops)-1].Pers = false
	want(t, h.check(t, Model{}), map[string]int{AnomPhantom: 1, AnomCorrupt: 3})
}

// TestCheckerMaxDepth: three messages certainly on a queue of MAXDEPTH 2
// at once is an anomaly; when a get of one began before the third put
// ended it is not; a put under syncpoint counts while its unit of work
// is open.
func TestCheckerMaxDepth(t *testing.T) {
	m := Model{MaxDepth: map[string]int{"SMALL": 2}}
	h := newHist()
	a := h.put("s1.1", "SMALL", 1, false, 0, OK)
	b := h.put("s2.1", "SMALL", 1, true, 0, OK)
	c := h.put("s1.1", "SMALL", 2, false, 0, OK)
	for _, k := range []string{a, b, c} {
		h.get("sc.1", "SMALL", k, 0, 0)
	}
	r := h.check(t, m)
	want(t, r, map[string]int{AnomMaxDepth: 1})
	if len(r.Anomalies[0].Msgs) != 3 {
		t.Fatalf("maxdepth anomaly names %v", r.Anomalies[0].Msgs)
	}

	h = newHist()
	a = h.put("s1.1", "SMALL", 1, false, 0, OK)
	b = h.put("s2.1", "SMALL", 1, false, 0, OK)
	h.call(Op{Proc: "sc.1", F: FGet, Queue: "SMALL"}, OK, Op{Msg: a, MsgID: "id-" + a})
	c = h.put("s1.1", "SMALL", 2, false, 0, OK)
	h.get("sc.1", "SMALL", b, 0, 0)
	h.get("sc.1", "SMALL", c, 0, 0)
	want(t, h.check(t, m), map[string]int{})

	// Uncommitted puts count until their unit of work's last OK call
	// (here a second put), then are backed out.
	h = newHist()
	a = h.put("s1.1", "SMALL", 1, false, 0, OK)
	h.put("s2.1", "SMALL", 1, false, 1, OK)
	h.put("s2.1", "SMALL", 2, false, 1, OK)
	h.put("s2.1", "SMALL", 3, false, 1, OK)
	h.end("s2.1", FBackout, 1, OK)
	h.get("sc.1", "SMALL", a, 0, 0)
	want(t, h.check(t, m), map[string]int{AnomMaxDepth: 1})
}

// TestCheckerReadsItsOwnHistories: records written by a Recorder read
// back, a torn last line dropped.
func TestCheckerReadsItsOwnHistories(t *testing.T) {
	dir := t.TempDir()
	r, err := NewRecorder(dir+"/p1.1.jsonl", "p1.1", true)
	if err != nil {
		t.Fatal(err)
	}
	i := r.Invoke(Op{F: FPut, Queue: "Q", Msg: Key("p1.1", 1), Pers: true})
	r.Complete(i, Op{Type: OK, F: FPut, Queue: "Q", Msg: Key("p1.1", 1), Pers: true})
	r.Invoke(Op{F: FPut, Queue: "Q", Msg: Key("p1.1", 2), Pers: true})
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(dir+"/p1.1.jsonl", os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(`{"p":"p1.1","i":3,"ty":"ok","f":"pu`)
	f.Close()
	ops, err := ReadHistories(dir)
	if err != nil || len(ops) != 3 {
		t.Fatalf("read %d records: %v", len(ops), err)
	}
	res := Check(Model{}, ops, nil)
	if res.Ops["put/ok"] != 1 || res.Ops["put/none"] != 1 {
		t.Fatalf("ops: %v", res.Ops)
	}
	want(t, res, map[string]int{AnomLost: 1})
}

// TestBody: bodies name their message and detect damage.
func TestBody(t *testing.T) {
	b := EncodeBody("p1.3", 17, 300)
	k, err := DecodeBody(b)
	if err != nil || k != "p1.3:17" {
		t.Fatalf("%q %v", k, err)
	}
	b[len(b)-5] ^= 1
	if _, err := DecodeBody(b); err == nil {
		t.Fatal("a damaged body decoded")
	}
	if p, s, err := ParseKey(k); err != nil || p != "p1.3" || s != 17 {
		t.Fatalf("ParseKey: %s %d %v", p, s, err)
	}
}

func FuzzDecodeBody(f *testing.F) {
	f.Add(EncodeBody("p1.1", 1, 0))
	f.Add(EncodeBody("r1.12", 123456, 700))
	f.Add([]byte("CHAOS1|x|y|z|"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		k, err := DecodeBody(b)
		if err != nil {
			return
		}
		p, s, err := ParseKey(k)
		if err != nil {
			t.Fatalf("decoded key %q does not parse: %v", k, err)
		}
		if !strings.HasPrefix(string(b), fmt.Sprintf("%s|%s|%d|", bodyMagic, p, s)) {
			t.Fatalf("key %q from %q", k, b)
		}
	})
}
