package lockfree

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

// TestCreateOptionsValidate: Validate changes nothing (the defaults are
// withDefaults's), accepts what Create accepts, and says what is wrong.
func TestCreateOptionsValidate(t *testing.T) {
	dir := t.TempDir()
	o := CreateOptions{Dir: dir, Name: "APPL1"}
	before := o
	if err := o.Validate(); err != nil {
		t.Fatalf("valid options: %v", err)
	}
	if !reflect.DeepEqual(o, before) {
		t.Fatalf("Validate changed its receiver: %+v, was %+v", o, before)
	}
	if d := o.withDefaults(); d.Kind == 0 || d.Dir != dir || d.Name != "APPL1" {
		t.Fatalf("withDefaults: %+v", d)
	}
	for _, c := range []struct {
		o    CreateOptions
		is   error
		says string
	}{
		{CreateOptions{Name: "APPL1"}, ErrParams, "no CF directory"},
		{CreateOptions{Dir: dir, Name: "bad/name"}, ErrBadName, `structure name "bad/name"`},
		{CreateOptions{Dir: dir, Name: "APPL1", Kind: 7}, ErrParams, "kind 7"},
		{CreateOptions{Dir: dir, Name: "APPL1", Params: Params{Owners: 1 << 20}}, ErrParams, "owners 1048576 not in 1..65536"},
		{CreateOptions{Dir: dir, Name: "APPL1", Params: Params{ElementSize: 100}}, ErrParams, "element size 100 not a multiple of 64"},
		{CreateOptions{Dir: dir, Name: "APPL1", Size: 8192}, ErrParams, "8192 bytes cannot hold"},
	} {
		before := c.o
		err := c.o.Validate()
		if !errors.Is(err, c.is) || !strings.Contains(err.Error(), c.says) {
			t.Errorf("%+v: %v, want %v saying %q", c.o, err, c.is, c.says)
		}
		if !reflect.DeepEqual(c.o, before) {
			t.Errorf("Validate changed its receiver: %+v, was %+v", c.o, before)
		}
	}
}

// TestParamsValidate: Params.Validate checks the parameters with their
// defaults applied and changes nothing.
func TestParamsValidate(t *testing.T) {
	p := Params{Owners: 4}
	before := p
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	if p != before {
		t.Fatalf("Validate changed its receiver: %+v, was %+v", p, before)
	}
	for _, c := range []struct {
		p    Params
		says string
	}{
		{Params{Owners: -1}, "owners -1 not in 1..65536"},
		{Params{StatusSize: 12}, "status size 12 not a multiple of 8"},
		{Params{IndexSlots: 100}, "index slots 100 not a power of two"},
	} {
		if err := c.p.Validate(); !errors.Is(err, ErrParams) || !strings.Contains(err.Error(), c.says) {
			t.Errorf("%+v: %v, want ErrParams saying %q", c.p, err, c.says)
		}
	}
}

// TestQueueAttrsNamedLimits: MaxDepthNone refuses every put and
// MaxMsgLenEmpty every message with a body, where zero takes the
// defaults (the structure's entries, 4 MiB).
func TestQueueAttrsNamedLimits(t *testing.T) {
	s := newStructure(t, smallParams)
	o := register(t, s)
	none := mustQueue(t, o, "NONE", QueueAttrs{MaxDepth: MaxDepthNone})
	if err := o.Put(none, &Message{}, PutOptions{}); !errors.Is(err, ErrQueueFull) {
		t.Fatalf("put to a queue of MaxDepthNone: %v, want ErrQueueFull", err)
	}
	empty := mustQueue(t, o, "EMPTY", QueueAttrs{MaxMsgLen: MaxMsgLenEmpty})
	if err := o.Put(empty, &Message{Body: []byte("x")}, PutOptions{}); !errors.Is(err, ErrMsgTooLong) {
		t.Fatalf("a body to a queue of MaxMsgLenEmpty: %v, want ErrMsgTooLong", err)
	}
	put(t, o, empty, "", 0, false)
	dflt := mustQueue(t, o, "DEFAULT", QueueAttrs{})
	put(t, o, dflt, "x", 0, false)
	checkOK(t, s)
}

// TestFillEstimatesUsage: Fill's sampled fractions are those Usage counts
// when every word is sampled, and close to them with fewer samples.
func TestFillEstimatesUsage(t *testing.T) {
	s := newStructure(t, smallParams)
	o := register(t, s)
	q := mustQueue(t, o, "FILL", QueueAttrs{})
	for i := 0; i < s.Params().Entries/2; i++ {
		if err := o.Put(q, &Message{Body: make([]byte, 100)}, PutOptions{}); err != nil {
			break
		}
	}
	u := s.Usage()
	ent, el := s.Fill(1 << 30)
	if want := float64(u.EntriesUsed) / float64(s.Params().Entries); ent != want {
		t.Fatalf("entries: Fill %v, Usage %v", ent, want)
	}
	if want := float64(u.ElementsUsed) / float64(s.Params().Elements); el != want {
		t.Fatalf("elements: Fill %v, Usage %v", el, want)
	}
	if e16, _ := s.Fill(16); e16 < ent-0.3 || e16 > ent+0.3 {
		t.Fatalf("entries sampled 16 times: %v, all of them %v", e16, ent)
	}
}
