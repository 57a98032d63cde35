package cli

import (
	"encoding/json"
	"fmt"
	"io"

	"github.com/qmgr/qmgr/group"
	"github.com/qmgr/qmgr/status"
)

// cmdStatus prints the group's status (package status, which also serves
// a member's /api/status) as aligned text or JSON.
func cmdStatus(args []string, out io.Writer) error {
	var gf groupFlags
	var asJSON bool
	fs := newFlags("status", out)
	gf.register(fs)
	fs.BoolVar(&asJSON, "json", false, "print JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := gf.config()
	if err != nil {
		return err
	}
	g, err := group.Open(cfg, false)
	if err != nil {
		if asJSON {
			b, _ := json.Marshal(status.Empty(cfg))
			fmt.Fprintln(out, string(b))
		} else {
			fmt.Fprintf(out, "group %s: not running (%v)\n", cfg.Name, err)
		}
		return exitError{1, fmt.Errorf("no active member")}
	}
	defer g.Close()
	rep, err := status.Collect(g)
	if err != nil {
		return err
	}
	if asJSON {
		b, _ := json.Marshal(rep)
		fmt.Fprintln(out, string(b))
	} else {
		rep.WriteText(out)
	}
	if rep.Active == 0 {
		return exitError{1, fmt.Errorf("no active member")}
	}
	return nil
}
