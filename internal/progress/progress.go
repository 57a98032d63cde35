// Package progress shows the progress of a long operation on standard
// error: a bar with rate and ETA redrawn in place when it is a terminal,
// an occasional plain line when it is not (a log file, a pipe, the
// journal), and nothing at all for an operation that ends within the quiet
// period.
//
// A Bar is driven by its caller (Add, Set, Tick); it has no goroutine of its
// own and reads the time through Config.Now, so its output is a pure
// function of the calls and the clock (tests inject the clock).
package progress

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/term"
)

// Config describes a bar. The zero value of every field but What is
// usable.
type Config struct {
	// What is the operation, first on every line ("put Q1").
	What string
	// Total is the amount of work, in Unit; 0 when unknown (the bar shows
	// the amount done, the rate and the elapsed time, without percent or
	// ETA).
	Total int64
	// Unit names the amount ("msgs"); default "items".
	Unit string
	// TTY redraws one line in place (a terminal); otherwise the bar writes
	// plain lines.
	TTY bool
	// Quiet: nothing is shown before this much time has passed, so a short
	// operation stays silent (default 1s).
	Quiet time.Duration
	// Every: without a TTY, a line at most this often (default 10s), and
	// also whenever the work crosses a step of 10% of Total.
	Every time.Duration
	// Redraw: on a TTY, the bar is redrawn at most this often (default
	// 100ms).
	Redraw time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// withDefaults fills the documented defaults.
func (c Config) withDefaults() Config {
	if c.Unit == "" {
		c.Unit = "items"
	}
	if c.Quiet == 0 {
		c.Quiet = time.Second
	}
	if c.Every == 0 {
		c.Every = 10 * time.Second
	}
	if c.Redraw == 0 {
		c.Redraw = 100 * time.Millisecond
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// Bar is the progress of one operation. Its methods may be called from
// several goroutines; on a nil *Bar they do nothing (an operation that shows
// no progress).
type Bar struct {
	mu    sync.Mutex
	w     io.Writer
	c     Config
	start time.Time
	done  int64
	shown bool      // something was written
	last  time.Time // when it was last written
	step  int64     // non-TTY: the last 10% step written
	ended bool
}

// New starts a bar writing to w.
func New(w io.Writer, c Config) *Bar {
	c = c.withDefaults()
	return &Bar{w: w, c: c, start: c.Now()}
}

// IsTerminal reports whether w is a terminal.
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// Stderr starts a bar on w (standard error, typically), as a TTY bar when
// w is a terminal.
func Stderr(w io.Writer, what string, total int64, unit string) *Bar {
	return New(w, Config{What: what, Total: total, Unit: unit, TTY: IsTerminal(w)})
}

// Add records n more units done.
func (b *Bar) Add(n int64) {
	if b == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.done += n
	b.update()
}

// Set records that done units are done in all.
func (b *Bar) Set(done int64) {
	if b == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.done = done
	b.update()
}

// SetTotal changes the amount of work (0: unknown).
func (b *Bar) SetTotal(total int64) {
	if b == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.c.Total = total
	b.update()
}

// Tick shows the bar if it is due, without new work done: the elapsed time
// of an operation that reports nothing else.
func (b *Bar) Tick() {
	if b == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.update()
}

// Done ends the bar: a last line with the totals if anything was shown, or
// if the operation took longer than the quiet period. Calls after the first
// do nothing.
func (b *Bar) Done() {
	if b == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ended {
		return
	}
	b.ended = true
	now := b.c.Now()
	el := now.Sub(b.start)
	if !b.shown && el < b.c.Quiet {
		return
	}
	if b.c.TTY {
		fmt.Fprintf(b.w, "\r%s\x1b[K\n", b.line(now, true))
		return
	}
	if b.c.Total <= 0 && b.done == 0 {
		fmt.Fprintf(b.w, "%s: done in %s\n", b.c.What, round(el))
		return
	}
	fmt.Fprintf(b.w, "%s: done, %d %s in %s (%s)\n", b.c.What, b.done, b.c.Unit, round(el), b.rate(el))
}

// update writes the bar if it is due (mu held).
func (b *Bar) update() {
	if b.ended {
		return
	}
	now := b.c.Now()
	if now.Sub(b.start) < b.c.Quiet {
		return
	}
	if b.c.TTY {
		if b.shown && now.Sub(b.last) < b.c.Redraw {
			return
		}
		fmt.Fprintf(b.w, "\r%s\x1b[K", b.line(now, true))
	} else {
		step := b.step10()
		if b.shown && now.Sub(b.last) < b.c.Every && step <= b.step {
			return
		}
		b.step = step
		fmt.Fprintf(b.w, "%s\n", b.line(now, false))
	}
	b.shown, b.last = true, now
}

// step10 is the 10% step the work has reached (0 without a total).
func (b *Bar) step10() int64 {
	if b.c.Total <= 0 {
		return 0
	}
	return min(b.done, b.c.Total) * 10 / b.c.Total
}

// barWidth is the number of cells of the TTY bar.
const barWidth = 24

// line is the bar's text at now: with the drawn bar on a TTY.
func (b *Bar) line(now time.Time, tty bool) string {
	el := now.Sub(b.start)
	var s strings.Builder
	s.WriteString(b.c.What)
	if !tty {
		s.WriteString(":")
	}
	if b.c.Total > 0 {
		pct := min(b.done, b.c.Total) * 100 / b.c.Total
		if tty {
			fill := int(min(b.done, b.c.Total) * barWidth / b.c.Total)
			fmt.Fprintf(&s, " [%s%s]", strings.Repeat("#", fill), strings.Repeat("-", barWidth-fill))
		}
		fmt.Fprintf(&s, " %3d%% %d/%d %s, %s, ETA %s", pct, b.done, b.c.Total, b.c.Unit, b.rate(el), b.eta(el))
	} else if b.done > 0 {
		fmt.Fprintf(&s, " %d %s, %s, %s elapsed", b.done, b.c.Unit, b.rate(el), round(el))
	} else {
		fmt.Fprintf(&s, " running, %s elapsed", round(el)) // only the time is known
	}
	return s.String()
}

// rate is the average rate so far.
func (b *Bar) rate(el time.Duration) string {
	if el <= 0 {
		return "- " + b.c.Unit + "/s"
	}
	return fmt.Sprintf("%.0f %s/s", float64(b.done)/el.Seconds(), b.c.Unit)
}

// eta is the time left at the average rate so far.
func (b *Bar) eta(el time.Duration) string {
	if b.done <= 0 || el <= 0 {
		return "-"
	}
	left := b.c.Total - b.done
	if left <= 0 {
		return "0s"
	}
	return round(time.Duration(float64(el) * float64(left) / float64(b.done)))
}

// round shows d to a tenth of a second below a minute, to the second
// above.
func round(d time.Duration) string {
	if d < time.Minute {
		return d.Round(100 * time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}
