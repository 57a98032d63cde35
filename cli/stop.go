package cli

import (
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/qmgr/qmgr/group"
	"github.com/qmgr/qmgr/procid"
	"github.com/qmgr/qmgr/qm"
)

// ErrNotStoppedInOrder: the member asked to stop ended some other way.
var ErrNotStoppedInOrder = errors.New("cli: member did not stop in order")

// cmdStop asks a member to stop in order and waits until it has.
func cmdStop(args []string, out io.Writer) error {
	var gf groupFlags
	var name string
	var wait time.Duration
	fs := newFlags("stop", out)
	gf.register(fs)
	fs.StringVar(&name, "name", "", "member to stop (required)")
	fs.DurationVar(&wait, "wait", 30*time.Second, "how long to wait for it")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := gf.config()
	if err != nil {
		return err
	}
	if name == "" {
		return errors.New("stop: --name is required")
	}
	g, err := group.Open(cfg, false)
	if err != nil {
		return err
	}
	defer g.Close()
	p, err := qm.SignalStop(g, name)
	if err != nil {
		return err
	}
	deadline := time.Now().Add(wait)
	for time.Now().Before(deadline) {
		// Looked at before the record is read: a process found dead
		// writes no more, so the record read after is its last word.
		dead := !procid.Alive(p.Process)
		cur, err := g.Peer(p.Slot)
		if err == nil {
			if done, err := stopOutcome(name, p, cur, dead, out); done {
				return err
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("stop: %s did not stop within %v", name, wait)
}

// stopOutcome says whether the stop of p (its record when signalled) has
// ended, given its record cur (read after its process was found dead, if
// dead), and how: stopped in order (nil), or ended some other way
// (ErrNotStoppedInOrder: killed meanwhile, or died, and a peer recovers
// or recovered it).
func stopOutcome(name string, p, cur group.Peer, dead bool, out io.Writer) (bool, error) {
	switch {
	case cur.State == group.PeerEmpty || cur.Name != p.Name:
		// The slot was emptied (or is another member's): nothing says
		// how the member ended, only whether its process did.
		if dead {
			return true, fmt.Errorf("stop: %w: %s's process %d ended and its record is gone", ErrNotStoppedInOrder, name, p.Process.Pid)
		}
		return false, nil
	case cur.Incarnation != p.Incarnation:
		fmt.Fprintf(out, "member %s ended; it has started again since (incarnation %d, %s)\n", name, cur.Incarnation, cur.State)
		return true, nil
	case cur.State == group.PeerStopped:
		fmt.Fprintf(out, "member %s stopped (%s)\n", name, cur.State)
		return true, nil
	case !cur.State.Running():
		return true, fmt.Errorf("stop: %w: %s is %s (its process %d ended some other way; a peer recovers its work)", ErrNotStoppedInOrder, name, cur.State, p.Process.Pid)
	case dead && cur.Process == p.Process:
		return true, fmt.Errorf("stop: %w: %s's process %d ended and its record still says %s (a peer recovers its work)", ErrNotStoppedInOrder, name, p.Process.Pid, cur.State)
	}
	return false, nil
}
