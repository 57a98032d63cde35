package cli

import (
	"fmt"
	"io"

	"github.com/qmgr/qmgr/internal/progress"
	"github.com/qmgr/qmgr/lockfree"
	"github.com/qmgr/qmgr/mq"
	"github.com/qmgr/qmgr/shm"
)

// checkError is a check that found broken invariants (exit status 1).
type checkError struct{ n int }

func (e checkError) Error() string { return fmt.Sprintf("%d broken invariants", e.n) }

// cmdCheck checks every structure, showing the progress of the walk of each
// on stderr (internal/progress: phases of lockfree's checker, shown only
// for a structure whose check takes longer than a second).
func cmdCheck(args []string, _ io.Reader, out, errOut io.Writer) error {
	var gf groupFlags
	fs := newFlags("check", out)
	gf.register(fs)
	fail := fs.Bool("fail", false, "take an application structure that fails the check out of service: the members recover it from its backup and the logs (the check is exact on a quiet structure only)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := gf.config()
	if err != nil {
		return err
	}
	c := struct{ Dir string }{cfg.CFDir}
	names, err := shm.List(c.Dir)
	if err != nil {
		return err
	}
	if len(names) == 0 {
		return fmt.Errorf("check: no structures in %s", c.Dir)
	}
	problems := 0
	for _, n := range names {
		s, err := lockfree.Attach(c.Dir, n)
		if err != nil {
			fmt.Fprintf(out, "%s: cannot attach: %v\n", n, err)
			problems++
			continue
		}
		bar := progress.Stderr(errOut, "check "+n, lockfree.CheckPhases, "phases")
		r := s.Check(lockfree.CheckOptions{Progress: func(done, _ int) { bar.Set(int64(done)) }})
		bar.Done()
		fmt.Fprintf(out, "%s: %v\n", n, r)
		problems += len(r.Problems)
		if n != shm.AdminStructure {
			// Its shared message data sets, against the references the
			// CF's checker found.
			checks, err := mq.CheckDataSetsOf(cfg, n, s, r.Offloaded, false)
			found := 0
			for _, ck := range checks {
				fmt.Fprintf(out, "%s: data set %d: %v\n", n, ck.Num, ck.Report)
				found += len(ck.Report.Problems)
			}
			if err != nil && found == 0 {
				fmt.Fprintf(out, "%s: data sets: %v\n", n, err)
				found++
			}
			problems += found
		}
		if *fail && len(r.Problems) > 0 && n != shm.AdminStructure && s.Fail() {
			fmt.Fprintf(out, "%s: taken out of service; the members recover it\n", n)
		}
		s.Close()
	}
	if problems > 0 {
		return checkError{problems}
	}
	return nil
}
