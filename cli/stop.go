package cli

import (
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/qmgr/qmgr/group"
	"github.com/qmgr/qmgr/qm"
)

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
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("stop: %s did not stop within %v", name, wait)
}
