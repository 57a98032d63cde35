package qsg

import (
	"bytes"
	"testing"

	"github.com/qmgr/qmgr/amqp"
)

// FuzzParseStored: the properties of a message read from the CF (written
// by any process of the group, or by an mq application) never panic the
// parser, and what appendStored wrote parses back to itself.
func FuzzParseStored(f *testing.F) {
	good, _ := appendStored(nil, "amq.topic", "a.b", &amqp.Properties{ContentType: "text/plain", Headers: amqp.Table{"k": "v"}, DeliveryMode: 2})
	f.Add(good)
	f.Add([]byte(propMagic))
	f.Add([]byte(propMagic + "\x05ab"))
	f.Add([]byte("not amqp"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		s, ok, err := parseStored(b)
		if !ok || err != nil {
			return
		}
		p, rest, err := amqp.DecodeProperties(s.props)
		if err != nil || len(rest) != 0 {
			t.Fatalf("parseStored accepted properties that do not decode: %v", err)
		}
		again, err := appendStored(nil, s.exchange, s.key, &p)
		if err != nil {
			return // e.g. a table nested too deep to encode
		}
		s2, ok2, err2 := parseStored(again)
		if !ok2 || err2 != nil || s2.exchange != s.exchange || s2.key != s.key {
			t.Fatalf("re-encoded properties do not parse back: %v", err2)
		}
		if p2, _, _ := amqp.DecodeProperties(s2.props); !bytes.Equal(mustProps(t, &p2), mustProps(t, &p)) {
			t.Fatal("properties changed through a round trip")
		}
	})
}

func mustProps(t *testing.T, p *amqp.Properties) []byte {
	b, err := amqp.AppendProperties(nil, p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestStoredLayout: the stored form is the documented one.
func TestStoredLayout(t *testing.T) {
	b, err := appendStored(nil, "ex", "key", &amqp.Properties{})
	if err != nil {
		t.Fatal(err)
	}
	if string(b[propOffMagic:propOffExLen]) != propMagic || b[propOffExLen] != 2 || string(b[propOffExchange:propOffExchange+2]) != "ex" ||
		b[propOffExchange+2] != 3 || string(b[propOffExchange+3:propOffExchange+6]) != "key" {
		t.Fatalf("stored form %q", b)
	}
}

// TestPriorityMapping: AMQP priorities map onto mq's ten, capped at the
// queue's x-max-priority.
func TestPriorityMapping(t *testing.T) {
	for _, c := range []struct{ p, max, want int }{{0, 5, 0}, {5, 5, 5}, {9, 5, 5}, {255, 255, 9}, {128, 255, 4}, {3, 9, 3}} {
		if got := mqPriority(c.p, c.max); got != c.want {
			t.Errorf("mqPriority(%d, %d) = %d, want %d", c.p, c.max, got, c.want)
		}
	}
}
