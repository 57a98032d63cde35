package channel

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestInboundValidate(t *testing.T) {
	var d Inbound
	if err := d.Validate(); err != nil {
		t.Fatal(err)
	}
	if d != (Inbound{}) {
		t.Fatalf("Validate changed its receiver: %+v", d)
	}
	if d := d.withDefaults(); d != (Inbound{Bind: DefaultBind, MaxConns: DefaultMaxInbound, HelloTimeout: DefaultHelloTimeout}) {
		t.Fatalf("defaults: %+v", d)
	}
	for _, ok := range []Inbound{{Bind: "0.0.0.0"}, {Bind: "::"}, {Bind: "::1"}, {Bind: "192.0.2.7", MaxConns: 1, HelloTimeout: time.Millisecond}} {
		if err := ok.Validate(); err != nil {
			t.Errorf("%+v: %v", ok, err)
		}
	}
	for _, bad := range []Inbound{{Bind: "localhost"}, {Bind: "127.0.0.1:1414"}, {Bind: "*"}, {MaxConns: -1}, {MaxConns: 65536},
		{HelloTimeout: -time.Second}, {HelloTimeout: 2 * time.Hour}} {
		before := bad
		if err := bad.Validate(); !errors.Is(err, ErrConfig) {
			t.Errorf("%+v accepted: %v", bad, err)
		}
		if bad != before {
			t.Errorf("Validate changed its receiver: %+v, was %+v", bad, before)
		}
	}
	for _, c := range []struct {
		in   Inbound
		says string
	}{
		{Inbound{Bind: "localhost"}, `bind address "localhost" is not an IP address`},
		{Inbound{MaxConns: 65536}, "at most 65536 inbound connections per listener: want 1..65535"},
		{Inbound{HelloTimeout: 2 * time.Hour}, "HELLO deadline 2h0m0s not in 0..1h"},
	} {
		if err := c.in.Validate(); err == nil || !strings.Contains(err.Error(), c.says) {
			t.Errorf("%+v: %v, want an error saying %q", c.in, err, c.says)
		}
	}
}

// TestRefusalLogRateLimit: refusals are logged in a burst, then at the
// refill rate, and the next line logged says how many were not.
func TestRefusalLogRateLimit(t *testing.T) {
	var f refusals
	t0 := time.Unix(1000, 0)
	logged := 0
	for i := 0; i < 1000; i++ {
		if ok, _ := f.allow(7, t0); ok {
			logged++
		}
	}
	if logged != refusalBurst {
		t.Fatalf("%d of 1000 refusals at once logged, want the burst of %d", logged, refusalBurst)
	}
	ok, unlogged := f.allow(7, t0.Add(refusalEvery))
	if !ok || unlogged != 1000-refusalBurst {
		t.Fatalf("after %v: logged %v, unlogged %d, want true and %d", refusalEvery, ok, unlogged, 1000-refusalBurst)
	}
	if ok, _ := f.allow(8, t0); !ok {
		t.Fatal("another counter's bucket is shared")
	}
}
