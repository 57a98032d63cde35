package cli

import (
	"errors"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/qmgr/qmgr/group"
	"github.com/qmgr/qmgr/internal/progress"
	"github.com/qmgr/qmgr/qm"
)

// cmdMQSC sends admin commands to a member. While a long command runs
// (RECOVER CFSTRUCT, BACKUP CFSTRUCT) it shows the time elapsed on stderr
// (longRunning).
func cmdMQSC(args []string, in io.Reader, out, errOut io.Writer) error {
	var gf groupFlags
	var command, name string
	var asJSON bool
	fs := newFlags("mqsc", out)
	gf.register(fs)
	fs.StringVar(&command, "c", "", "the command (default: commands from stdin; give commands with a secret, AUTHKEY or PASSWORD, on stdin: arguments are visible to every local user)")
	fs.StringVar(&name, "name", "", "member to run them (default: any active member)")
	fs.BoolVar(&asJSON, "json", false, "print one JSON object per result")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := gf.config()
	if err != nil {
		return err
	}
	if command == "" {
		b, err := io.ReadAll(in)
		if err != nil {
			return err
		}
		command = string(b)
	}
	if strings.TrimSpace(command) == "" {
		return errors.New("mqsc: no command")
	}
	member, err := activeMember(cfg, name)
	if err != nil {
		return err
	}
	bar, stop := longRunning(errOut, member, command)
	var resp qm.Response
	if bar != nil {
		var total int64
		resp, err = qm.CommandProgress(cfg, member, command, func(p qm.Progress) { total = p.Total; bar.SetTotal(p.Total); bar.Set(p.Done) })
		if err == nil && resp.OK && total > 0 {
			bar.Set(total) // the reports are at most five a second: the last one may be short of the end
		}
	} else {
		resp, err = qm.Command(cfg, member, command)
	}
	stop()
	if err != nil {
		return err
	}
	if asJSON {
		for _, o := range resp.Objects {
			fmt.Fprintln(out, string(o))
		}
	} else {
		fmt.Fprint(out, resp.Text)
	}
	if !resp.OK {
		return exitError{1, fmt.Errorf("%s", resp.Error)}
	}
	return nil
}

// activeMember picks the named member or any active one.
func activeMember(cfg group.Config, name string) (string, error) {
	g, err := group.Open(cfg, false)
	if err != nil {
		return "", err
	}
	defer g.Close()
	peers, err := g.Peers()
	if err != nil {
		return "", err
	}
	sort.Slice(peers, func(i, j int) bool { return peers[i].Name < peers[j].Name })
	for _, p := range peers {
		if (name == "" || p.Name == name) && p.State == group.PeerActive && p.ProcessAlive() {
			return p.Name, nil
		}
	}
	if name != "" {
		return "", fmt.Errorf("member %s of group %s is not active", name, cfg.Name)
	}
	return "", fmt.Errorf("group %s has no active member", cfg.Name)
}

// longCommand matches the commands that may run long: their progress is
// shown while the member runs them.
var longCommand = regexp.MustCompile(`(?i)\b(RECOVER|BACKUP)\s+CFSTRUCT\s*\(\s*([^)\s]*)\s*\)`)

// longRunning shows the progress of a long command run in member: the
// messages it went through of its total, as the member reports them
// (qm.CommandProgress: BACKUP CFSTRUCT browses the structure's queues,
// RECOVER CFSTRUCT puts the persistent messages back), and the time elapsed
// before the first report (a member older than the reports sends none).
// internal/progress: nothing for a command that ends within a second, a bar
// redrawn on a terminal, a line at each tenth or every ten seconds
// otherwise. For other commands it returns a nil bar. The returned func
// stops it.
func longRunning(errOut io.Writer, member, command string) (*progress.Bar, func()) {
	m := longCommand.FindStringSubmatch(command)
	if m == nil {
		return nil, func() {}
	}
	bar := progress.Stderr(errOut, fmt.Sprintf("%s CFSTRUCT(%s) on %s", strings.ToUpper(m[1]), strings.ToUpper(m[2]), member), 0, "msgs")
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				bar.Tick()
			}
		}
	}()
	return bar, func() {
		close(done)
		<-stopped
		bar.Done()
	}
}
