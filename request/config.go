package request

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/qmgr/qmgr/defs"
	"github.com/qmgr/qmgr/mq"
)

// The group-wide queues of request managers (Definitions defines them).
const (
	DefaultStateQueue      = "SYSTEM.REQUEST.STATE"
	DefaultReplyQueue      = "SYSTEM.REQUEST.REPLY"
	DefaultCancelQueue     = "SYSTEM.REQUEST.CANCEL"
	DefaultUnexpectedQueue = "SYSTEM.REQUEST.UNEXPECTED"
	DefaultTombstoneQueue  = "SYSTEM.REQUEST.TOMBSTONE"
)

// Config configures a request manager. The zero value of every field but
// Input and Program means its default (WithDefaults).
type Config struct {
	// Name names the manager in the state records and DISPLAY REQUESTS;
	// default "RM.<pid>".
	Name string
	// Connect says which group to connect to and through which member
	// first; when that member is not active, or dies, the manager
	// connects through any active member.
	Connect mq.ConnectOptions
	// Input is the queue of requests (required). It must have no backout
	// threshold (BOTHRESH 0): a request's backout count counts its
	// failures, and the manager, not mq, decides what becomes of it.
	Input string
	// Program runs each request (required).
	Program Program
	// DefaultMode is the mode of a request whose message has no request
	// header, or one with mode 0; default ModeRestartable.
	DefaultMode Mode
	// MaxAttempts is X of the restartable mode: a request that failed on
	// its X-th attempt gets a final reply saying it was retried X times
	// and will not be retried; default 3.
	MaxAttempts int
	// MaxResumes bounds how many times a request-level recoverable
	// request is resumed (taken again after a failure of its manager, its
	// member or its process): the take after its MaxResumes-th resumption
	// ends it with a final reply (FormatRetried) saying "request resumed
	// N times and will not be resumed again", or without one if it sent
	// its final reply already; a request that kills its process every time
	// is not resumed for ever. Default 10.
	MaxResumes int
	// Workers is how many requests the manager runs at once, each on two
	// connections of its own; default 4.
	Workers int
	// CallTimeout is a call's timeout when CallOptions.Timeout is 0;
	// default 30 s.
	CallTimeout time.Duration
	// CancelCheck is how often a call that waits for its reply looks for
	// a cancel (the most a cancel waits to be seen); default 100 ms.
	CancelCheck time.Duration
	// SweepInterval is how often the manager's sweeper moves stray
	// messages to the Unexpected Message Queue; default 1 s; negative:
	// no sweeper (another manager's does it).
	SweepInterval time.Duration
	// CancelGrace is how old a cancel must be before the sweeper moves it
	// as one for an unknown request (a request not taken yet has no
	// state); default 30 s. A cancel of a request that waits on its input
	// queue longer than that is lost: make it longer than the longest
	// backlog.
	CancelGrace time.Duration
	// TombstoneTTL is how long the tombstone of a request that ended with
	// replies possibly still to come stays on the tombstone queue, for the
	// sweeper to say why those replies are unexpected; default 10 min.
	TombstoneTTL time.Duration
	// ReconnectWait is the pause between two attempts to connect when no
	// member answers, and the first of the back-offs below; default
	// 100 ms.
	ReconnectWait time.Duration
	// MaxBackoff caps the back-offs (from ReconnectWait, doubling) between
	// two sessions that ended quickly, and between two takes of a request
	// whose state record is held by a unit of work not yet recovered;
	// default 5 s. A session that lasted less than MaxBackoff is a quick
	// one: the manager waits before it connects again (after a longer one
	// it connects again at once).
	MaxBackoff time.Duration
	// StateWaitWarn: once the record of a request has been held so for
	// longer than this (a member's recovery of a dead manager's
	// connection gives it back within seconds), each take of it logs at
	// Warn, with how long and how many takes, instead of Info; default
	// 30 s.
	StateWaitWarn time.Duration
	// StateQueue, ReplyQueue, CancelQueue, UnexpectedQueue and
	// TombstoneQueue name the group-wide queues; default DefaultStateQueue
	// and the others.
	StateQueue, ReplyQueue, CancelQueue, UnexpectedQueue, TombstoneQueue string
	// Log receives the manager's events; default none.
	Log *slog.Logger
	// Ended, when set, is called after a request ended (its end
	// committed) with how it ended: StatusDone, StatusPurged or
	// StatusCancelled. For tests and monitors; it must not block long.
	Ended func(id ID, how Status)
}

// WithDefaults is c with every zero field set to its default.
func (c Config) WithDefaults() Config {
	if c.Name == "" {
		c.Name = fmt.Sprintf("RM.%d", os.Getpid())
	}
	if c.DefaultMode == ModeDefault {
		c.DefaultMode = ModeRestartable
	}
	if c.MaxAttempts == 0 {
		c.MaxAttempts = 3
	}
	if c.MaxResumes == 0 {
		c.MaxResumes = 10
	}
	if c.Workers == 0 {
		c.Workers = 4
	}
	if c.CallTimeout == 0 {
		c.CallTimeout = 30 * time.Second
	}
	if c.CancelCheck == 0 {
		c.CancelCheck = 100 * time.Millisecond
	}
	if c.SweepInterval == 0 {
		c.SweepInterval = time.Second
	}
	if c.CancelGrace == 0 {
		c.CancelGrace = 30 * time.Second
	}
	if c.TombstoneTTL == 0 {
		c.TombstoneTTL = 10 * time.Minute
	}
	if c.ReconnectWait == 0 {
		c.ReconnectWait = 100 * time.Millisecond
	}
	if c.MaxBackoff == 0 {
		c.MaxBackoff = 5 * time.Second
	}
	if c.StateWaitWarn == 0 {
		c.StateWaitWarn = 30 * time.Second
	}
	if c.StateQueue == "" {
		c.StateQueue = DefaultStateQueue
	}
	if c.ReplyQueue == "" {
		c.ReplyQueue = DefaultReplyQueue
	}
	if c.CancelQueue == "" {
		c.CancelQueue = DefaultCancelQueue
	}
	if c.UnexpectedQueue == "" {
		c.UnexpectedQueue = DefaultUnexpectedQueue
	}
	if c.TombstoneQueue == "" {
		c.TombstoneQueue = DefaultTombstoneQueue
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	return c
}

// Validate reports what is wrong with c (after WithDefaults: a zero field
// is an error here). It changes nothing and looks at nothing but c.
func (c Config) Validate() error {
	var errs []error
	if c.Name == "" || len(c.Name) > 48 {
		errs = append(errs, fmt.Errorf("request: manager name %q: 1 to 48 bytes", c.Name))
	}
	for _, q := range []struct{ what, name string }{{"input", c.Input}, {"state", c.StateQueue}, {"reply", c.ReplyQueue}, {"cancel", c.CancelQueue}, {"unexpected", c.UnexpectedQueue}, {"tombstone", c.TombstoneQueue}} {
		if !defs.ValidName(q.name) {
			errs = append(errs, fmt.Errorf("request: %s queue %q is not a valid queue name", q.what, q.name))
		}
	}
	if c.Input != "" && (c.Input == c.StateQueue || c.Input == c.ReplyQueue || c.Input == c.CancelQueue || c.Input == c.UnexpectedQueue || c.Input == c.TombstoneQueue) {
		errs = append(errs, fmt.Errorf("request: input queue %s is one of the group-wide request queues", c.Input))
	}
	if c.Program == nil {
		errs = append(errs, errors.New("request: no Program"))
	}
	if c.DefaultMode < ModeNonRecoverable || c.DefaultMode > ModeRecoverable {
		errs = append(errs, fmt.Errorf("request: default mode %v", c.DefaultMode))
	}
	if c.MaxAttempts < 1 || c.MaxAttempts > 1<<20 {
		errs = append(errs, fmt.Errorf("request: MaxAttempts %d: 1 to %d", c.MaxAttempts, 1<<20))
	}
	if c.MaxResumes < 1 || c.MaxResumes > 1<<20 {
		errs = append(errs, fmt.Errorf("request: MaxResumes %d: 1 to %d", c.MaxResumes, 1<<20))
	}
	if c.Workers < 1 || c.Workers > 256 {
		errs = append(errs, fmt.Errorf("request: Workers %d: 1 to 256", c.Workers))
	}
	for _, d := range []struct {
		what string
		d    time.Duration
	}{{"CallTimeout", c.CallTimeout}, {"CancelCheck", c.CancelCheck}, {"CancelGrace", c.CancelGrace}, {"TombstoneTTL", c.TombstoneTTL}, {"ReconnectWait", c.ReconnectWait}, {"MaxBackoff", c.MaxBackoff}, {"StateWaitWarn", c.StateWaitWarn}} {
		if d.d <= 0 {
			errs = append(errs, fmt.Errorf("request: %s %v: must be positive", d.what, d.d))
		}
	}
	if c.MaxBackoff > 0 && c.MaxBackoff < c.ReconnectWait {
		errs = append(errs, fmt.Errorf("request: MaxBackoff %v is less than ReconnectWait %v", c.MaxBackoff, c.ReconnectWait))
	}
	if c.SweepInterval == 0 {
		errs = append(errs, errors.New("request: SweepInterval 0 (negative turns the sweeper off)"))
	}
	if c.Log == nil {
		errs = append(errs, errors.New("request: no Log"))
	}
	return errors.Join(errs...)
}
