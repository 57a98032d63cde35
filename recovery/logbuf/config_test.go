package logbuf

import (
	"errors"
	"strings"
	"testing"
)

// TestConfigValidateIsPure: Validate changes nothing (the defaults are
// withDefaults's) and says what is wrong with a bad configuration.
func TestConfigValidateIsPure(t *testing.T) {
	c := Config{CFDir: "/x", Member: "QM1"}
	before := c
	if err := c.Validate(); err != nil {
		t.Fatalf("valid configuration: %v", err)
	}
	if c != before {
		t.Fatalf("Validate changed its receiver: %+v, was %+v", c, before)
	}
	if d := c.withDefaults(); d.Rings != DefaultRings || d.RingSize != DefaultRingSize {
		t.Fatalf("withDefaults: %+v", d)
	}
	for _, b := range []struct {
		c    Config
		says string
	}{
		{Config{Member: "QM1"}, "CF directory and member name are required"},
		{Config{CFDir: "/x"}, "CF directory and member name are required"},
		{Config{CFDir: "/x", Member: "bad/name"}, `member name "bad/name"`},
		{Config{CFDir: "/x", Member: "QM1", Rings: -1}, "-1 rings (1 to 4096)"},
		{Config{CFDir: "/x", Member: "QM1", Rings: 4097}, "4097 rings"},
		{Config{CFDir: "/x", Member: "QM1", RingSize: 5000}, "ring size 5000 (a power of two"},
		{Config{CFDir: "/x", Member: "QM1", RingSize: 2048}, "ring size 2048"},
	} {
		before := b.c
		err := b.c.Validate()
		if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), b.says) {
			t.Errorf("%+v: %v, want ErrConfig saying %q", b.c, err, b.says)
		}
		if b.c != before {
			t.Errorf("Validate changed its receiver: %+v, was %+v", b.c, before)
		}
	}
}
