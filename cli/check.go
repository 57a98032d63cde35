package cli

import (
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/qmgr/qmgr/defs"
	"github.com/qmgr/qmgr/procid"
	"github.com/qmgr/qmgr/unit/role"

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
	settle := fs.Duration("settle", 5*time.Second, "how long to wait for the members to repair the owners of processes that have just died before reporting them unrepaired (0: no wait)")
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
	// The recovery units' records are checked in their structures,
	// against the services defined in the group's repository (none when
	// no member has created it yet). Read only: the check never waits for
	// a member's definition change, and one that cannot read the
	// repository still checks every structure.
	problems := 0
	repo, err := defs.OpenReadOnly(cfg.DataDir)
	if err != nil && !errors.Is(err, defs.ErrNotFound) {
		fmt.Fprintf(out, "the group's definitions: %v (the recovery units' records are not checked)\n", err)
		problems++
	}
	if repo != nil {
		defer repo.Close()
	}
	settled := time.Now().Add(*settle) // one wait for all the structures
	for _, n := range names {
		s, err := lockfree.Attach(c.Dir, n)
		if err != nil {
			fmt.Fprintf(out, "%s: cannot attach: %v\n", n, err)
			problems++
			continue
		}
		t0 := time.Now()
		if left := settleDeadOwners(s, settled); left > 0 {
			fmt.Fprintf(out, "%s: %d owners of dead processes unrepaired after waiting %v for their members\n", n, left, time.Since(t0).Round(time.Millisecond))
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
			problems += checkUnits(out, repo, n, s)
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

// settleDeadOwners waits until no owner of s is held by a dead process
// (active with its process dead, or being repaired by a repairer that
// died), or until the deadline, and returns how many are left. A member
// repairs such an owner as soon as its pidfd says the process died (and
// takes over a dead repairer's repair at its next look), so a check run
// at that moment would report what is about to be put right; one left
// after the wait is reported by the check itself. A structure whose
// mapping faults is left to the check, which reports it.
func settleDeadOwners(s *lockfree.Structure, deadline time.Time) int {
	for {
		dead := 0
		err := shm.Guard(func() error {
			for _, o := range s.Owners() {
				if (o.State == "active" || o.State == "repairing") && !o.Alive {
					dead++
				}
			}
			return nil
		})
		if err != nil || dead == 0 || !time.Now().Before(deadline) {
			return dead
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// checkUnits checks the records of the recovery units whose structure is
// s (named name), prints each unit's result and returns the problems
// found.
func checkUnits(out io.Writer, repo *defs.Repo, name string, s *lockfree.Structure) int {
	if repo == nil {
		return 0
	}
	var svcs []defs.Service
	if err := repo.View(func(tx *defs.Tx) error { var err error; svcs, err = tx.Services("*"); return err }); err != nil {
		fmt.Fprintf(out, "%s: services: %v\n", name, err)
		return 1
	}
	alive := func(e role.Position) bool {
		if e.StartTime == 0 { // a record of a replica that did not say (built before it did): the pid alone
			_, err := procid.Of(int(e.Pid))
			return e.Pid != 0 && !errors.Is(err, procid.ErrGone)
		}
		return procid.Alive(procid.ID{Pid: int(e.Pid), Start: e.StartTime})
	}
	problems := 0
	for _, svc := range svcs {
		if svc.CFStruct != name {
			continue
		}
		recs, err := role.Read(s, svc.StatusBase)
		var found []string
		if err != nil {
			found = []string{err.Error()}
		} else {
			found = role.CheckRecords(recs, alive)
		}
		if len(found) == 0 {
			fmt.Fprintf(out, "%s: SERVICE(%s): ok\n", name, svc.Name)
			continue
		}
		for _, p := range found {
			fmt.Fprintf(out, "%s: SERVICE(%s): %s\n", name, svc.Name, p)
		}
		problems += len(found)
	}
	return problems
}
