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
