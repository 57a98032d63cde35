package mq

import (
	"errors"
	"testing"
	"time"
)

func TestDLHRoundTrip(t *testing.T) {
	h := DLH{Reason: RCQFull, DestQ: "Q.A", DestQMgr: "QM9", OrigFormat: "MQSTR", Time: time.Unix(0, 12345)}
	got, body, err := ParseDLH(h.Encode([]byte("payload")))
	if err != nil || got != h || string(body) != "payload" {
		t.Fatalf("%+v %q %v", got, body, err)
	}
	if _, _, err := ParseDLH([]byte("short")); err == nil {
		t.Fatal("short header accepted")
	}
}

func FuzzParseDLH(f *testing.F) {
	f.Add(DLH{Reason: RCQFull, DestQ: "Q", DestQMgr: "QM1", OrigFormat: "MQSTR", Time: time.Unix(1, 0)}.Encode([]byte("x")))
	f.Add([]byte("DLH \x02\x00\x00\x00"))
	f.Add(make([]byte, 200))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, body, err := ParseDLH(b)
		if err != nil {
			return
		}
		if len(body) != len(b)-dlhSize || len(h.DestQ) > 48 || len(h.DestQMgr) > 48 {
			t.Fatalf("%+v", h)
		}
	})
}

func TestReasons(t *testing.T) {
	if ReasonOf(nil) != RCNone || ReasonOf(&Error{Reason: RCQFull}) != RCQFull {
		t.Fatal("ReasonOf")
	}
	e := &Error{Op: "put Q", Reason: RCQFull}
	if !errorsIs(e, ErrQueueFull) || errorsIs(e, ErrNoMessage) {
		t.Fatal("errors.Is by reason")
	}
	if RCConnectionBroken.String() != "MQRC 2009 (connection broken)" {
		t.Fatal(RCConnectionBroken.String())
	}
}

func errorsIs(err, target error) bool { return errors.Is(err, target) }
