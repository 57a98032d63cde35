package channel

import (
	"errors"
	"testing"
	"time"
)

func TestInboundValidate(t *testing.T) {
	var d Inbound
	if err := d.Validate(); err != nil {
		t.Fatal(err)
	}
	if d != (Inbound{Bind: DefaultBind, MaxConns: DefaultMaxInbound, HelloTimeout: DefaultHelloTimeout}) {
		t.Fatalf("defaults: %+v", d)
	}
	for _, ok := range []Inbound{{Bind: "0.0.0.0"}, {Bind: "::"}, {Bind: "::1"}, {Bind: "192.0.2.7", MaxConns: 1, HelloTimeout: time.Millisecond}} {
		if err := ok.Validate(); err != nil {
			t.Errorf("%+v: %v", ok, err)
		}
	}
	for _, bad := range []Inbound{{Bind: "localhost"}, {Bind: "127.0.0.1:1414"}, {Bind: "*"}, {MaxConns: -1}, {MaxConns: 65536},
		{HelloTimeout: -time.Second}, {HelloTimeout: 2 * time.Hour}} {
		if err := bad.Validate(); !errors.Is(err, ErrConfig) {
			t.Errorf("%+v accepted: %v", bad, err)
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
