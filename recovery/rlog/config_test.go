package rlog

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/qmgr/qmgr/vfs"
)

// TestConfigValidateIsPure: Validate changes nothing (the defaults are
// withDefaults's) and says what is wrong with a bad configuration.
func TestConfigValidateIsPure(t *testing.T) {
	var src Counter
	c := Config{Dir: "/x", LRSN: &src}
	before := c
	if err := c.Validate(); err != nil {
		t.Fatalf("valid configuration: %v", err)
	}
	if c != before {
		t.Fatalf("Validate changed its receiver: %+v, was %+v", c, before)
	}
	d := c.withDefaults()
	if d.FS != vfs.OS() || d.SegmentSize != DefaultSegmentSize || d.MaxPending != DefaultMaxPending || d.RetryInterval != time.Second {
		t.Fatalf("withDefaults: %+v", d)
	}
	for _, b := range []struct {
		c    Config
		says string
	}{
		{Config{LRSN: &src}, "no directory"},
		{Config{Dir: "/x"}, "no LRSN source"},
		{Config{Dir: "/x", LRSN: &src, Name: strings.Repeat("n", 25)}, "longer than 24 bytes"},
		{Config{Dir: "/x", LRSN: &src, SegmentSize: 100}, "segment size 100"},
		{Config{Dir: "/x", LRSN: &src, SegmentSize: 4097}, "segment size 4097"},
		{Config{Dir: "/x", LRSN: &src, SegmentSize: 1<<40 + 8}, "at most 1 TiB"},
		{Config{Dir: "/x", LRSN: &src, MaxPending: -1}, "MaxPending -1"},
		{Config{Dir: "/x", LRSN: &src, RetryInterval: -time.Second}, "RetryInterval -1s"},
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
	if err := CheckSegmentSize(MinSegmentSize); err != nil {
		t.Errorf("the smallest segment size: %v", err)
	}
}
