package unit

import (
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"testing"

	"github.com/qmgr/qmgr/mq"
	"github.com/qmgr/qmgr/unit/logrec"
)

// stamper is a handler whose input "t" takes a choice (the time) and any
// other none; each input sends its body with what it chose.
type stamper struct{ Seen []string }

func (s *stamper) Handle(ctx *Ctx, in *Input) error {
	v := string(in.Body)
	if v == "t" {
		v += ctx.Now().String()
	}
	s.Seen = append(s.Seen, v)
	ctx.Send("OUT", &mq.Message{Body: []byte(v)})
	return nil
}
func (s *stamper) Snapshot(w io.Writer) error { return json.NewEncoder(w).Encode(s) }
func (s *stamper) Restore(r io.Reader) error  { return json.NewDecoder(r).Decode(s) }

func earlyReplica() (*replica, *stamper) {
	h := &stamper{}
	r := &replica{h: h, gen: 1, dseq: map[string]uint64{}, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	r.svc.Logging, r.svc.ChkInt = "EARLY", 2
	return r, h
}

func earlyIn(lsn uint64, body string) logrec.Record {
	return logrec.Record{Kind: logrec.KindInputEarly, Input: &logrec.Input{LSN: lsn, Body: []byte(body)}}
}

// roundTrip encodes and decodes m, as the log carries it.
func roundTrip(t *testing.T, m logrec.LogMessage) *logrec.LogMessage {
	t.Helper()
	m.Gen = 1
	for _, rec := range m.Records {
		if rec.Kind == logrec.KindInputEarly || rec.Kind == logrec.KindInput {
			if m.FirstLSN == 0 {
				m.FirstLSN = rec.Input.LSN
			}
			m.LastLSN = rec.Input.LSN
		}
	}
	b, err := m.Encode()
	if err != nil {
		t.Fatal(err)
	}
	lm, err := logrec.DecodeLog(b)
	if err != nil {
		t.Fatal(err)
	}
	return lm
}

// TestEarlyFollow: the primary's side (earlyProcess: the choices and a
// CHECK every CHKINT kept to be logged) and a secondary's (earlyFollow)
// through encoded log messages. The secondary holds each input until a
// message's completed-through reaches it, then applies it with its
// logged choices, checks the CHECK at its LSN and the output hash at
// completed-through, and ends in the primary's state; a message seen
// again changes nothing.
func TestEarlyFollow(t *testing.T) {
	p, ph := earlyReplica()
	s, sh := earlyReplica()
	ins := []logrec.Record{earlyIn(1, "t"), earlyIn(2, "n"), earlyIn(3, "t")}
	m1 := roundTrip(t, logrec.LogMessage{Epoch: 1, Records: ins})
	if err := s.earlyFollow(m1); err != nil {
		t.Fatal(err)
	}
	if s.applied != 0 || len(s.el.pending) != 3 {
		t.Fatalf("before their choices: applied %d, pending %d", s.applied, len(s.el.pending))
	}
	for _, rec := range ins {
		if err := p.earlyProcess(1, rec.Input); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(p.el.unlogged); n != 3 { // CHOICES 1, CHECK 2, CHOICES 3
		t.Fatalf("the primary keeps %d records to log, want 3: %+v", n, p.el.unlogged)
	}
	m2 := roundTrip(t, logrec.LogMessage{Epoch: 1, Completed: p.applied, OutHash: p.outHash,
		Records: append(p.el.unlogged, earlyIn(4, "n"))})
	if err := s.earlyFollow(m2); err != nil {
		t.Fatal(err)
	}
	if s.applied != 3 || len(s.el.pending) != 1 || s.outHash != p.outHash || s.checkLSN != 2 {
		t.Fatalf("applied %d pending %d output hash %x (primary's %x) check at %d", s.applied, len(s.el.pending), s.outHash, p.outHash, s.checkLSN)
	}
	if err := s.earlyFollow(m1); err != nil || s.applied != 3 || len(s.el.pending) != 1 {
		t.Fatalf("a message seen again: %v, applied %d pending %d", err, s.applied, len(s.el.pending))
	}
	if len(sh.Seen) != 3 || sh.Seen[0] != ph.Seen[0] || sh.Seen[2] != ph.Seen[2] || sh.Seen[1] != "n" {
		t.Fatalf("the secondary saw %q, the primary %q", sh.Seen, ph.Seen)
	}
	// Input 4 took no choice: an empty CHOICES record completes it.
	if err := p.earlyProcess(1, m2.Records[3].Input); err != nil {
		t.Fatal(err)
	}
	m3 := roundTrip(t, logrec.LogMessage{Epoch: 1, Completed: 4, OutHash: p.outHash, Records: []logrec.Record{{Kind: logrec.KindChoices, LSN: 4}}})
	if err := s.earlyFollow(m3); err != nil || s.applied != 4 || len(s.el.pending) != 0 {
		t.Fatalf("CHOICES alone: %v, applied %d pending %d", err, s.applied, len(s.el.pending))
	}
}

// TestEarlyFollowDiverges: completed-through passing an input whose
// choice was never logged is divergence, not a wait; so are a CHECK or an
// output hash that differ. A gap in the inputs, or choices of an input
// not logged before them, is a gap.
func TestEarlyFollowDiverges(t *testing.T) {
	for name, msgs := range map[string][]logrec.LogMessage{
		"choice never logged": {
			{Records: []logrec.Record{earlyIn(1, "t")}},
			{Completed: 1, Records: []logrec.Record{{Kind: logrec.KindChoices, LSN: 1}}},
		},
		"other check": {
			{Records: []logrec.Record{earlyIn(1, "n"), earlyIn(2, "n")}},
			{Completed: 2, Records: []logrec.Record{{Kind: logrec.KindCheck, LSN: 2, CheckHash: 1, CheckLen: 1}}},
		},
		"other output hash": {
			{Records: []logrec.Record{earlyIn(1, "n")}},
			{Completed: 1, OutHash: 12345, Records: []logrec.Record{{Kind: logrec.KindChoices, LSN: 1}}},
		},
	} {
		s, _ := earlyReplica()
		var err error
		for _, m := range msgs {
			if err = s.earlyFollow(roundTrip(t, m)); err != nil {
				break
			}
		}
		if !errors.Is(err, ErrDiverged) {
			t.Errorf("%s: %v, want ErrDiverged", name, err)
		}
	}
	for name, msgs := range map[string][]logrec.LogMessage{
		"input gap": {
			{Records: []logrec.Record{earlyIn(1, "n")}},
			{Records: []logrec.Record{earlyIn(3, "n")}},
		},
		"choices before their input": {
			{Records: []logrec.Record{earlyIn(1, "n")}},
			{Completed: 1, Records: []logrec.Record{{Kind: logrec.KindChoices, LSN: 2, Choices: []logrec.Choice{{Kind: logrec.ChoiceTime, Data: make([]byte, 8)}}}}},
		},
	} {
		s, _ := earlyReplica()
		var err error
		for _, m := range msgs {
			if err = s.earlyFollow(roundTrip(t, m)); err != nil {
				break
			}
		}
		if !errors.Is(err, ErrLogGap) {
			t.Errorf("%s: %v, want ErrLogGap", name, err)
		}
	}
	// A LATE record in an EARLY log.
	s, _ := earlyReplica()
	late := logrec.LogMessage{Records: []logrec.Record{{Kind: logrec.KindInput, Input: &logrec.Input{LSN: 1}}}}
	if err := s.earlyFollow(roundTrip(t, late)); !errors.Is(err, ErrConfig) {
		t.Errorf("an INPUT record: %v, want ErrConfig", err)
	}
}
