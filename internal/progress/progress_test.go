package progress

import (
	"strings"
	"testing"
	"time"
)

// clock is a fake clock moved by the test.
type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }
func newClock() *clock                   { return &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)} }
func bar(c *clock, cfg Config) (*Bar, *strings.Builder) {
	var out strings.Builder
	cfg.Now = c.now
	return New(&out, cfg), &out
}

func TestQuietWhenShort(t *testing.T) {
	for _, tty := range []bool{false, true} {
		c := newClock()
		b, out := bar(c, Config{What: "put Q", Total: 100, Unit: "msgs", TTY: tty})
		for i := 0; i < 100; i++ {
			c.advance(9 * time.Millisecond)
			b.Add(1)
		}
		b.Done()
		if out.Len() != 0 {
			t.Errorf("tty=%v: an operation of 0.9s wrote %q, want nothing", tty, out.String())
		}
	}
}

func TestPlainLines(t *testing.T) {
	c := newClock()
	b, out := bar(c, Config{What: "put Q", Total: 1000, Unit: "msgs"})
	// 1000 messages at 100/s: a line at each 10% step once the quiet second
	// has passed, none in between.
	for i := 0; i < 1000; i++ {
		c.advance(10 * time.Millisecond)
		b.Add(1)
	}
	b.Done()
	want := []string{
		"put Q:  10% 100/1000 msgs, 100 msgs/s, ETA 9s",
		"put Q:  20% 200/1000 msgs, 100 msgs/s, ETA 8s",
		"put Q:  30% 300/1000 msgs, 100 msgs/s, ETA 7s",
		"put Q:  40% 400/1000 msgs, 100 msgs/s, ETA 6s",
		"put Q:  50% 500/1000 msgs, 100 msgs/s, ETA 5s",
		"put Q:  60% 600/1000 msgs, 100 msgs/s, ETA 4s",
		"put Q:  70% 700/1000 msgs, 100 msgs/s, ETA 3s",
		"put Q:  80% 800/1000 msgs, 100 msgs/s, ETA 2s",
		"put Q:  90% 900/1000 msgs, 100 msgs/s, ETA 1s",
		"put Q: 100% 1000/1000 msgs, 100 msgs/s, ETA 0s",
		"put Q: done, 1000 msgs in 10s (100 msgs/s)",
	}
	if got := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n"); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestPlainLinesEveryWithoutTotal(t *testing.T) {
	c := newClock()
	b, out := bar(c, Config{What: "RECOVER CFSTRUCT(APP1)", Every: 5 * time.Second})
	for i := 0; i < 120; i++ { // 12s, ticked every 100ms
		c.advance(100 * time.Millisecond)
		b.Tick()
	}
	b.Done()
	want := "RECOVER CFSTRUCT(APP1): running, 1s elapsed\n" +
		"RECOVER CFSTRUCT(APP1): running, 6s elapsed\n" +
		"RECOVER CFSTRUCT(APP1): running, 11s elapsed\n" +
		"RECOVER CFSTRUCT(APP1): done in 12s\n"
	if out.String() != want {
		t.Errorf("got\n%s\nwant\n%s", out.String(), want)
	}
}

func TestTTYBar(t *testing.T) {
	c := newClock()
	b, out := bar(c, Config{What: "get Q", Total: 400, Unit: "msgs", TTY: true, Redraw: 500 * time.Millisecond})
	for i := 0; i < 400; i++ { // 4s at 100/s
		c.advance(10 * time.Millisecond)
		b.Add(1)
	}
	b.Done()
	frames := strings.Split(out.String(), "\r")[1:]
	want := []string{
		"get Q [######------------------]  25% 100/400 msgs, 100 msgs/s, ETA 3s\x1b[K",
		"get Q [#########---------------]  37% 150/400 msgs, 100 msgs/s, ETA 2.5s\x1b[K",
		"get Q [############------------]  50% 200/400 msgs, 100 msgs/s, ETA 2s\x1b[K",
		"get Q [###############---------]  62% 250/400 msgs, 100 msgs/s, ETA 1.5s\x1b[K",
		"get Q [##################------]  75% 300/400 msgs, 100 msgs/s, ETA 1s\x1b[K",
		"get Q [#####################---]  87% 350/400 msgs, 100 msgs/s, ETA 500ms\x1b[K",
		"get Q [########################] 100% 400/400 msgs, 100 msgs/s, ETA 0s\x1b[K",
		"get Q [########################] 100% 400/400 msgs, 100 msgs/s, ETA 0s\x1b[K\n",
	}
	if strings.Join(frames, "|") != strings.Join(want, "|") {
		t.Errorf("got frames\n%q\nwant\n%q", frames, want)
	}
	if strings.Count(out.String(), "\n") != 1 {
		t.Errorf("a TTY bar ends with exactly one newline: %q", out.String())
	}
}

func TestDoneOnceAndSilentAfter(t *testing.T) {
	c := newClock()
	b, out := bar(c, Config{What: "check", Total: 10})
	c.advance(2 * time.Second)
	b.Done()
	b.Done()
	b.Add(5)
	if want := "check: done, 0 items in 2s (0 items/s)\n"; out.String() != want {
		t.Errorf("got %q, want %q", out.String(), want)
	}
}

func TestUnknownTotalWithCounts(t *testing.T) {
	c := newClock()
	b, out := bar(c, Config{What: "get Q", Unit: "msgs", TTY: true})
	c.advance(2 * time.Second)
	b.Add(50)
	if want := "\rget Q 50 msgs, 25 msgs/s, 2s elapsed\x1b[K"; out.String() != want {
		t.Errorf("got %q, want %q", out.String(), want)
	}
}

func TestNilBarIsSilent(t *testing.T) {
	var b *Bar
	b.Add(1)
	b.Set(2)
	b.SetTotal(3)
	b.Tick()
	b.Done()
}
