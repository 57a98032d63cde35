package unit

import (
	"encoding/json"
	"errors"
	"io"
	"reflect"
	"runtime"
	"testing"
	"time"

	"github.com/qmgr/qmgr/mq"
	"github.com/qmgr/qmgr/unit/logrec"
	"github.com/qmgr/qmgr/unit/role"
)

// counts is a small handler whose state is a map.
type counts struct{ M map[string]int }

func (c *counts) Handle(*Ctx, *Input) error  { return nil }
func (c *counts) Snapshot(w io.Writer) error { return json.NewEncoder(w).Encode(c) }
func (c *counts) Restore(r io.Reader) error  { return json.NewDecoder(r).Decode(c) }
func newCounts(m map[string]int) *counts     { return &counts{M: m} }
func (c *counts) equal(o *counts) bool       { return reflect.DeepEqual(c.M, o.M) }
func donorForTest(h Handler) *replica {
	return &replica{h: h, gen: 3, applied: 42, lsnOut: 40, dseq: map[string]uint64{}}
}
func joinerForTest(h Handler, gen uint64) *replica {
	return &replica{h: h, gen: gen, dseq: map[string]uint64{}}
}

// TestSnapshotStreamRoundTrip: the stream a donor writes (framework state,
// resend section, handler snapshot), fed to a joiner's restorer in small
// pieces, gives the joiner the donor's applied LSN, destination and source tables,
// resend queue above the donor's LSN_out (every field of each output kept:
// priority as the queue's default, persistence, expiry, properties) and
// handler state. A stream cut short, one of another generation and a
// corrupt resend section are refused.
func TestSnapshotStreamRoundTrip(t *testing.T) {
	donor := donorForTest(newCounts(map[string]int{"a": 1, "b": -7}))
	donor.dseq = map[string]uint64{"CONFIRM": 10, "AUDIT": 3}
	donor.src = map[srcKey]uint64{{id: 0xfeed, gen: 1}: 12, {id: 0xfeed, gen: 2}: 1, {id: 7, gen: 1}: 400}
	donor.outHash = 0x1234_5678_9abc_def0 // the output hash travels in the framework state (diverge.go)
	exp := time.Unix(0, 1_700_000_000_123_456_789)
	donor.resend = []output{
		{lsn: 40, dest: "CONFIRM", seq: 7, msg: mq.Message{Body: []byte("sent already")}},
		{lsn: 41, dest: "CONFIRM", seq: 8, msg: mq.Message{MsgID: logrec.OutputID{Source: 9, Gen: 3, Seq: 8}.MsgID(), Format: "MQSTR",
			Priority: mq.PriorityAsQDef, Persistence: mq.Persistent, ReplyToQ: "R", Properties: []byte("k=v"), Body: []byte("41")}},
		{lsn: 41, dest: "AUDIT", seq: 2, msg: mq.Message{CorrelID: [24]byte{7}, Priority: 3, Persistence: mq.NotPersistent, Expiry: exp, Body: []byte("a41")}},
		{lsn: 42, dest: "CONFIRM", seq: 9, msg: mq.Message{Body: []byte("42")}},
	}
	stream, err := donor.snapshotStream()
	if err != nil {
		t.Fatal(err)
	}

	h := newCounts(nil)
	j := joinerForTest(h, 3)
	rs := newRestorer(h)
	for off := 0; off < len(stream); off += 7 {
		if err := rs.feed(stream[off:min(off+7, len(stream))]); err != nil {
			t.Fatalf("feed at %d: %v", off, err)
		}
	}
	if err := rs.finish(j, 42); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(j.src, donor.src) {
		t.Fatalf("restored source table %v, the donor's %v", j.src, donor.src)
	}
	if j.outHash != donor.outHash {
		t.Fatalf("restored output hash %x, the donor's %x", j.outHash, donor.outHash)
	}
	if j.applied != 42 || !reflect.DeepEqual(j.dseq, donor.dseq) || !h.equal(donor.h.(*counts)) {
		t.Fatalf("restored applied %d dseq %v state %v; the donor's %d %v %v", j.applied, j.dseq, h.M, donor.applied, donor.dseq, donor.h.(*counts).M)
	}
	want := donor.resend[1:]
	if len(j.resend) != len(want) {
		t.Fatalf("resend queue of %d outputs, want %d", len(j.resend), len(want))
	}
	for i := range want {
		g, w := j.resend[i], want[i]
		if !g.msg.Expiry.Equal(w.msg.Expiry) {
			t.Fatalf("output %d: expiry %v, want %v", i, g.msg.Expiry, w.msg.Expiry)
		}
		g.msg.Expiry, w.msg.Expiry = time.Time{}, time.Time{}
		if !reflect.DeepEqual(g, w) {
			t.Fatalf("output %d:\n got %+v\nwant %+v", i, g, w)
		}
	}

	// Cut short: inside the tables, and inside the handler's bytes.
	for _, cut := range []int{30, len(stream) - 3} {
		h := newCounts(nil)
		rs := newRestorer(h)
		if err := rs.feed(stream[:cut]); err != nil {
			t.Fatal(err)
		}
		if err := rs.finish(joinerForTest(h, 3), 42); err == nil {
			t.Fatalf("a stream cut at %d of %d bytes restored", cut, len(stream))
		}
	}
	// Another generation.
	rs = newRestorer(newCounts(nil))
	rs.feed(stream)
	if err := rs.finish(joinerForTest(newCounts(nil), 4), 42); !errors.Is(err, logrec.ErrCorrupt) {
		t.Fatalf("a snapshot of generation 3 restored into generation 4: %v", err)
	}
	// A corrupt resend section: its magic.
	fw, n, err := logrec.DecodeFramework(stream)
	if err != nil || fw.LSN != 42 {
		t.Fatal(fw, err)
	}
	bad := append([]byte(nil), stream...)
	bad[n] = 'X'
	rs = newRestorer(newCounts(nil))
	if err := rs.feed(bad); !errors.Is(err, logrec.ErrBadMagic) {
		t.Fatalf("a corrupt resend section: %v", err)
	}
	rs.abort()
}

// TestSnapshotStreamLongFormat: a handler may Send an output whose Format
// is longer than a message's 8 bytes (mq.Put keeps the first 8). A donor
// holding such an output above its LSN_out must still write its snapshot
// (else it fails stop, and so does every donor after it), and the joiner
// must hold the output as the sender would put it.
func TestSnapshotStreamLongFormat(t *testing.T) {
	donor := donorForTest(newCounts(map[string]int{"a": 1}))
	donor.resend = []output{{lsn: 41, dest: "CONFIRM", seq: 8, msg: mq.Message{Format: "MQSTRINGX", Body: []byte("41")}}}
	stream, err := donor.snapshotStream()
	if err != nil {
		t.Fatalf("snapshot of a resend queue with a 9-byte Format: %v", err)
	}
	h := newCounts(nil)
	j := joinerForTest(h, 3)
	rs := newRestorer(h)
	if err := rs.feed(stream); err != nil {
		t.Fatal(err)
	}
	if err := rs.finish(j, 42); err != nil {
		t.Fatal(err)
	}
	if len(j.resend) != 1 || j.resend[0].msg.Format != "MQSTRING" || string(j.resend[0].msg.Body) != "41" {
		t.Fatalf("restored resend queue %+v, want the output with Format %q", j.resend, "MQSTRING")
	}
}

// TestRestorerFeedLinear: a joiner feeds its restorer chunk by chunk; the
// framework state and resend section are decoded once they are whole. A
// resend section spread over many chunks must not be decoded again, its
// bodies copied, at every chunk (quadratic in the section: a donor's
// resend queue of 100 MB in 256 KiB chunks would copy some 20 GB).
func TestRestorerFeedLinear(t *testing.T) {
	donor := donorForTest(newCounts(map[string]int{"a": 1}))
	body := make([]byte, 1024)
	for i := 0; i < 400; i++ {
		donor.resend = append(donor.resend, output{lsn: 41, dest: "CONFIRM", seq: uint64(i + 1), msg: mq.Message{Body: body}})
	}
	stream, err := donor.snapshotStream()
	if err != nil {
		t.Fatal(err)
	}
	// TotalAlloc counts every goroutine's allocations (the runtime's, and
	// those of goroutines earlier tests left ending): the least of a few
	// runs is the feed's own.
	least := ^uint64(0)
	for range 5 {
		h := newCounts(nil)
		rs := newRestorer(h)
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		for off := 0; off < len(stream); off += 4096 {
			if err := rs.feed(stream[off:min(off+4096, len(stream))]); err != nil {
				t.Fatalf("feed at %d: %v", off, err)
			}
		}
		runtime.ReadMemStats(&after)
		if err := rs.finish(joinerForTest(h, 3), 42); err != nil {
			t.Fatal(err)
		}
		least = min(least, after.TotalAlloc-before.TotalAlloc)
	}
	if least > 6*uint64(len(stream)) {
		t.Fatalf("feeding a %d-byte stream in 4 KiB pieces allocated %d bytes (%.0f times the stream)", len(stream), least, float64(least)/float64(len(stream)))
	}
	t.Logf("feeding a %d-byte stream in 4 KiB pieces allocated %d bytes (%.1f times the stream)", len(stream), least, float64(least)/float64(len(stream)))
}

// TestTrimBoundRacesRestore: the primary's trim reads the progress
// records one after another while a joiner (position 0) restored at
// s = 50 publishes that it is restored and its donor (position 1, a
// secondary) then clears its hold. Whenever that happens between two of
// the trim's reads, the bound must stay at or below s: the restored
// joiner needs the log above s. The trim's role record is the one it read
// before (position 0 joining).
func TestTrimBoundRacesRestore(t *testing.T) {
	rec := &role.Role{Primary: 2, Sender: 2, Fanout: true}
	for k := range rec.Pos {
		rec.Pos[k].Donor = role.None
	}
	rec.Pos[0] = role.Position{State: role.Joining, Donor: 1, Tag: 10}
	rec.Pos[1] = role.Position{State: role.Active, Donor: role.None, Tag: 11}
	rec.Pos[2] = role.Position{State: role.Active, Donor: role.None, Tag: 12}
	before := map[uint8]*role.Progress{
		0: {Position: 0, Role: role.SeenJoiner, Tag: 10},
		1: {Position: 1, Role: role.SeenSecondary, Tag: 11, Applied: 90, Hold: 50},
	}
	after := map[uint8]*role.Progress{
		0: {Position: 0, Role: role.SeenSecondary, Tag: 10, Applied: 50},
		1: {Position: 1, Role: role.SeenSecondary, Tag: 11, Applied: 90},
	}
	for change := 0; change <= 2; change++ {
		reads := 0
		progress := func(k uint8) (*role.Progress, uint64) {
			reads++
			if reads > change {
				return after[k], 0
			}
			return before[k], 0
		}
		if got, _, _ := trimBound(rec, 2, 100, 0, progress); got > 50 {
			t.Fatalf("the joiner restored and its donor's hold cleared after %d of the trim's reads: trimmed to %d, above the snapshot's LSN 50", change, got)
		}
	}
}
