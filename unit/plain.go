package unit

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/qmgr/qmgr/mq"
)

// PlainConfig configures RunPlain.
type PlainConfig struct {
	Connect mq.ConnectOptions
	Input   string // the queue to consume
	// Commit is how many inputs one unit of work takes (default 1).
	Commit int
	// Poll is how long a waiting get sleeps before it looks at ctx again
	// (default 100 ms).
	Poll   time.Duration
	Logger *slog.Logger
}

// RunPlain runs h as a plain consumer under syncpoint, without replicas
// or logging: get, Handle (its choices made and forgotten), put its
// outputs, commit every cfg.Commit inputs. It is the baseline the
// benchmark compares a unit with (a crash loses h's state). Outputs get
// MsgIDs of their own (no sequence numbers).
func RunPlain(ctx context.Context, cfg PlainConfig, h Handler) error {
	if cfg.Commit <= 0 {
		cfg.Commit = 1
	}
	if cfg.Poll <= 0 {
		cfg.Poll = 100 * time.Millisecond
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	c, err := mq.Connect(cfg.Connect)
	if err != nil {
		return fmt.Errorf("plain consumer of %s: connect: %w", cfg.Input, err)
	}
	defer c.Disconnect()
	var stop mq.Interrupter
	defer context.AfterFunc(ctx, stop.Interrupt)()
	in, err := c.Open(cfg.Input, mq.OpenOptions{Input: true})
	if err != nil {
		return fmt.Errorf("plain consumer of %s: %w", cfg.Input, err)
	}
	dests := map[string]*mq.Queue{}
	var lsn uint64
	inUOW := 0
	for {
		opt := mq.GetOptions{Syncpoint: true, Wait: cfg.Poll, Interrupt: &stop}
		if inUOW > 0 {
			opt.Wait, opt.Interrupt = 0, nil
		}
		m, err := in.Get(opt)
		switch {
		case errors.Is(err, mq.ErrInterrupted) && ctx.Err() != nil:
			c.Backout()
			return nil
		case errors.Is(err, mq.ErrNoMessage):
			if inUOW > 0 {
				if err := c.Commit(); err != nil {
					return fmt.Errorf("plain consumer of %s: commit: %w", cfg.Input, err)
				}
				inUOW = 0
			}
			if ctx.Err() != nil {
				return nil
			}
			continue
		case err != nil:
			c.Backout()
			return fmt.Errorf("plain consumer of %s: %w", cfg.Input, err)
		}
		lsn++
		cx := &Ctx{lsn: lsn, log: cfg.Logger}
		if err := h.Handle(cx, inputOf(m, lsn)); err != nil {
			c.Backout()
			return fmt.Errorf("plain consumer of %s: handler failed on input %d: %w", cfg.Input, lsn, err)
		}
		for _, o := range cx.sends {
			q, ok := dests[o.dest]
			if !ok {
				if q, err = c.Open(o.dest, mq.OpenOptions{Output: true}); err != nil {
					c.Backout()
					return fmt.Errorf("plain consumer of %s: open %s: %w", cfg.Input, o.dest, err)
				}
				dests[o.dest] = q
			}
			msg := o.msg
			if err := q.Put(&msg, mq.PutOptions{Syncpoint: true}); err != nil {
				c.Backout()
				return fmt.Errorf("plain consumer of %s: put to %s: %w", cfg.Input, o.dest, err)
			}
		}
		if inUOW++; inUOW >= cfg.Commit {
			if err := c.Commit(); err != nil {
				return fmt.Errorf("plain consumer of %s: commit: %w", cfg.Input, err)
			}
			inUOW = 0
		}
	}
}
