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
		cur, err := g.Peer(p.Slot)
		if err == nil && (cur.Incarnation != p.Incarnation || !cur.State.Running()) {
			fmt.Fprintf(out, "member %s stopped (%s)\n", name, cur.State)
			return nil
		}
		if err == nil && cur.Process == p.Process && !procid.Alive(p.Process) {
			// Its record still says running: it ended without stopping in
			// order (killed meanwhile); a peer's recovery takes it over.
			return fmt.Errorf("stop: %w: %s's process %d ended before it had stopped in order (a peer recovers its work)", ErrNotStoppedInOrder, name, p.Process.Pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("stop: %s did not stop within %v", name, wait)
}
