package qm

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"time"

	"golang.org/x/sys/unix"

	"github.com/qmgr/qmgr/defs"
	"github.com/qmgr/qmgr/group"
	"github.com/qmgr/qmgr/lockfree"
	"github.com/qmgr/qmgr/procid"
	"github.com/qmgr/qmgr/shm"
)

// ErrLeftFailed: a RECAUTO(NO) structure left failed until RECOVER
// CFSTRUCT (with lockfree.ErrStructureFailed).
var ErrLeftFailed = errors.New("qm: structure left failed (RECAUTO(NO))")

// ErrStructureFine: RECOVER CFSTRUCT of a structure in service.
var ErrStructureFine = errors.New("qm: the structure is in service; nothing to recover")

// checkStructures looks at every application structure the member uses:
// one whose file is gone, truncated, renamed away, replaced by another
// file, given to another user or opened to others (shm.Mapping.Check)
// has failed, and so has one
// that someone took out of service as failed (qmgr check --fail). The member
// takes it out of service (in every process that maps it), stops using
// it, and recovers it unless its definition says RECAUTO(NO). A structure
// in the CF directory left recovering by a recoverer that died is
// recovered again.
func (m *Member) checkStructures() {
	abandoned := m.abandonedRecoveries()
	m.mu.Lock()
	found := map[string]*lockfree.Structure{} // name -> the mapping found failed
	for name, o := range m.apps {
		s := o.Structure()
		if err := s.Mapping().Check(); err != nil {
			m.log.Error("structure failed", "event", "structure_failed", "structure", name, "err", err)
			found[name] = s
		} else if s.Failed() {
			m.log.Error("structure failed", "event", "structure_failed", "structure", name, "err", "taken out of service (qmgr check --fail found it damaged)")
			found[name] = s
		}
	}
	var failed []string
	for name := range found {
		delete(m.apps, name)
		failed = append(failed, name)
	}
	// An abandoned recovery, and a recovery of ours that failed, are not
	// failed here: the group may map a structure another member has
	// recovered since, and the recovery (recoverLocked, under the
	// structure's recovery lock) judges what it finds.
	for _, name := range abandoned {
		if !slices.Contains(failed, name) {
			failed = append(failed, name)
		}
	}
	for name, at := range m.retryRecover {
		if time.Now().After(at) && !slices.Contains(failed, name) {
			failed = append(failed, name)
		}
		if time.Now().After(at) {
			delete(m.retryRecover, name)
		}
	}
	m.mu.Unlock()
	for _, name := range failed {
		m.stats.structureFailed(name)
		if s, ok := found[name]; ok {
			m.g.Failed(name, s) // that mapping only: not a recovered file of the same name
		}
		var c defs.CFStruct
		if err := m.repo.View(func(tx *defs.Tx) error { var err error; c, err = tx.Struct(name); return err }); err == nil && c.NoRecAuto {
			m.leaveFailed(name, "found failed")
			continue
		}
		m.goRecoverStructure(name)
	}
}

// abandonedRecoveries lists the structures in the CF directory that are
// recovering while their recoverer is dead (killed in the middle of its
// replay): nobody else finishes them.
func (m *Member) abandonedRecoveries() []string {
	names, err := shm.List(m.g.Config().CFDir)
	if err != nil {
		return nil
	}
	var out []string
	for _, name := range names {
		if name == shm.AdminStructure {
			continue
		}
		s, err := m.g.Structure(name, false)
		if err != nil {
			continue // not an application structure, or being replaced
		}
		st, rec := s.Service()
		switch {
		case st != lockfree.Recovering:
			continue
		case rec != m.self && !procid.Alive(rec):
			m.log.Error("structure failed", "event", "structure_failed", "structure", name, "err", "its recoverer died in the middle of the recovery", "recoverer", rec.String())
			out = append(out, name)
		case rec == m.self && m.recoveryLockFree(name):
			// A recovery of ours that failed (a command's): nobody else
			// finishes it.
			m.log.Error("structure failed", "event", "structure_failed", "structure", name, "err", "its recovery by this member failed")
			out = append(out, name)
		default:
			continue
		}
		if _, err := m.structDef(name); errors.Is(err, defs.ErrNotFound) {
			// Left by a DEFINE CFSTRUCT that failed: defined again, it is
			// recovered then.
			out = out[:len(out)-1]
		}
	}
	return out
}

// recoveryLockFree reports whether nobody holds structure name's recovery
// lock (so nobody, this member included, is recovering it now).
func (m *Member) recoveryLockFree(name string) bool {
	unlock, err := lockRecover(m.g.Config().DataDir, name, unix.LOCK_NB)
	if err != nil {
		return false
	}
	unlock()
	return true
}

// testHookRecover runs first in RecoverStructure (tests make it fail).
var testHookRecover = func(string) error { return nil }

// testHookRecoverInto runs before a new structure is filled (tests make
// its recovery fail).
var testHookRecoverInto = func(string) error { return nil }

// goRecoverStructure recovers structure name in the background; a failed
// recovery is tried again a second later (checkStructures). While another
// member recovers the structure it waits, without holding cmdMu (commands,
// DISPLAY CFSTATUS among them, go on meanwhile), and then finds the
// structure in service. Every holder of a recovery lock in this process
// holds cmdMu, so RECOVER CFSTRUCT may wait for the lock under cmdMu.
func (m *Member) goRecoverStructure(name string) {
	m.goRecover("structure:"+name, func() {
		for {
			m.cmdMu.Lock()
			if m.stopping.Load() {
				m.cmdMu.Unlock()
				return
			}
			err := testHookRecover(name)
			var c defs.CFStruct
			if err == nil {
				c, err = m.structDef(name)
			}
			if err == nil {
				err = m.tryRecover(c)
			}
			m.cmdMu.Unlock()
			if !errors.Is(err, group.ErrStructureBusy) {
				if err != nil && !errors.Is(err, ErrStructureFine) {
					m.log.Error("recover structure; trying again in a second", "structure", name, "err", err)
					m.mu.Lock()
					m.retryRecover[name] = time.Now().Add(time.Second)
					m.mu.Unlock()
				}
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
}

// Recover is RECOVER CFSTRUCT (mqsc.Env).
func (m *Member) Recover(name string) (string, error) {
	if err := m.RecoverStructure(name); err != nil {
		if errors.Is(err, ErrStructureFine) {
			return fmt.Sprintf("CFSTRUCT(%s) is in service; nothing was changed.", name), nil
		}
		return "", err
	}
	return fmt.Sprintf("CFSTRUCT(%s) recovered.", name), nil
}

// RecoverStructure rebuilds structure name when it failed, or when the
// member recovering it died: the failed structure is taken out of
// service, the operations that logged their records before it failed are
// given time to end, its file is removed, and a new one is filled from the
// newest backup and the logs. A structure in service is left alone
// (ErrStructureFine). It waits for a recovery of the structure another
// member is running. Callers hold cmdMu.
func (m *Member) RecoverStructure(name string) error {
	if err := testHookRecover(name); err != nil {
		return err
	}
	c, err := m.structDef(name)
	if err != nil {
		return err
	}
	unlock, err := lockRecover(m.g.Config().DataDir, name, 0)
	if err != nil {
		return err
	}
	defer unlock()
	return m.recoverLocked(c)
}

// structDef reads the definition of structure name.
func (m *Member) structDef(name string) (defs.CFStruct, error) {
	var c defs.CFStruct
	err := m.repo.View(func(tx *defs.Tx) error { var err error; c, err = tx.Struct(name); return err })
	return c, err
}

// recoverLocked is RecoverStructure once the structure's recovery lock is
// held: nobody else is recovering it, so a structure out of service is
// failed, or was left recovering by a recoverer that died or gave up.
func (m *Member) recoverLocked(c defs.CFStruct) error {
	name := c.Name
	s, err := m.g.Structure(name, false)
	if err == nil && s.InService() && s.Mapping().Check() == nil {
		return ErrStructureFine
	} else if err == nil {
		if st, rec := s.Service(); st == lockfree.Recovering {
			m.log.Warn("structure left recovering; recovering it again", "structure", name, "recoverer", m.describeProcess(rec))
		}
	}
	// Out of service everywhere (if a file is still mapped), then let the
	// operations that logged before it failed finish (or fail).
	m.mu.Lock()
	delete(m.apps, name)
	m.mu.Unlock()
	if err == nil {
		m.g.Failed(name, s) // under the recovery lock: no newer file can be there
	}
	if err := m.waitLoggedOps(); err != nil {
		return err
	}
	if err := shm.Remove(m.g.Config().CFDir, name); err != nil && !errors.Is(err, os.ErrNotExist) && !errors.Is(err, shm.ErrNotFound) {
		return fmt.Errorf("remove the failed structure's file: %w", err)
	}
	// No longer left failed, for the group: the recovery itself, and then
	// every member, use it. A recovery that fails leaves it failed again
	// at the members' next check. (Written only when it was marked: a
	// recovery must not wait for the repository otherwise.)
	if m.leftFailedNow(name) {
		if err := m.repo.Update(func(tx *defs.Tx) error { return tx.ClearStructFailed(name) }); err != nil {
			return fmt.Errorf("record the recovery in the group's definitions: %w", err)
		}
	}
	m.mu.Lock()
	delete(m.leftFailed, name)
	m.mu.Unlock()
	if _, err := m.createLocked(c, "failed"); err != nil { // creates it, recovers it, puts it in service, logs it
		return err
	}
	m.stats.structureRecovered(name)
	return nil
}

// createStructure creates structure c, whose file is missing, and
// recovers it (createLocked), under its recovery lock. When another member
// holds the lock (it is creating or recovering the structure) it fails at
// once with group.ErrStructureBusy: the caller either reports that
// (commands) or waits (readyStructure). Callers hold cmdMu.
func (m *Member) createStructure(c defs.CFStruct) (*lockfree.Structure, error) {
	unlock, err := lockRecover(m.g.Config().DataDir, c.Name, unix.LOCK_NB)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if c.NoRecAuto && m.structMade(c.Name) {
		// Made once and its file gone (still, now that nobody can be
		// recreating it): lost, not new. Failed, whichever member finds
		// it first and whether it mapped it or not.
		s, err := m.g.StructureSized(c.Name, false, 0)
		if !errors.Is(err, shm.ErrNotFound) {
			return s, err
		}
		m.leaveFailedLocked(c.Name, "its file is gone")
		return nil, fmt.Errorf("structure %s failed (RECAUTO(NO): RECOVER CFSTRUCT(%s) recovers it): %w: %w", c.Name, c.Name, ErrLeftFailed, lockfree.ErrStructureFailed)
	}
	return m.createLocked(c, "missing")
}

// createLocked creates structure c and fills it, the recovery lock held.
// The structure is created out of service, recording this process as its
// recoverer, and stays so until its queues and persistent messages are
// back (recoverInto). When its file exists already it is attached as it is
// (the caller looks at its state). cause says why it is created: "failed"
// (RECOVER CFSTRUCT, or a failure the member found) or "missing" (no file:
// the group's first start, or the CF lost with the host's /dev/shm). The
// recovery is logged as one line (event structure_recovered) when the
// structure failed or something was put back.
func (m *Member) createLocked(c defs.CFStruct, cause string) (*lockfree.Structure, error) {
	t0 := time.Now()
	s, created, err := m.g.CreateStructure(c.Name, uint64(c.SizeMB)<<20, c.ElemSize) // may take a while
	if err != nil || !created {
		return s, err
	}
	o, err := m.registerIn(c.Name, s)
	if err != nil {
		return nil, err
	}
	o.SetRecoverer(true)
	var st replayStats
	err = testHookRecoverInto(c.Name)
	if err == nil {
		st, err = m.recoverInto(c.Name)
	}
	if err != nil {
		m.log.Error("structure recovery failed", "event", "structure_recovery_failed", "structure", c.Name, "cause", cause,
			"took", time.Since(t0).Round(time.Millisecond), "err", err)
		return nil, fmt.Errorf("recover structure %s: %w", c.Name, err)
	}
	m.recordMade(c.Name, t0)
	if cause == "failed" || st.records > 0 || st.backup.Path != "" {
		m.log.Info("structure recovered", "event", "structure_recovered", "structure", c.Name, "cause", cause,
			"messages", st.restored, "backup", st.backup.Path, "backup_messages", st.backup.Messages, "backup_places", st.backup.Places,
			"from_lrsn", st.from, "records", st.records, "units", st.units, "dropped", st.dropped, "logs", st.logs,
			"bodies_kept", st.bodiesKept, "bodies_lost", st.bodiesLost,
			"replay_took", st.took.Round(time.Millisecond), "took", time.Since(t0).Round(time.Millisecond))
	}
	return s, nil
}

// readyStructure returns structure c in service: attached, created and
// recovered from the logs when its file is missing, recovered again when
// it failed or was left recovering by a recoverer that died, and waited for
// while another member creates or recovers it (it holds the structure's
// recovery lock), until deadline. A structure failed with RECAUTO(NO) is
// left failed (nil, nil). Callers hold cmdMu.
func (m *Member) readyStructure(c defs.CFStruct, deadline time.Time) (*lockfree.Structure, error) {
	var waited time.Time // when the member began to wait for another's recovery
	for {
		// Attached, and the member's owner registered only once it is in
		// service: an owner closed in a structure out of service keeps its
		// slot until the process ends.
		s, err := m.attachStructure(c, true)
		if errors.Is(err, ErrLeftFailed) {
			return nil, nil
		}
		state := "being created" // its file is missing, and another member holds its recovery lock
		var rec procid.ID
		if err == nil {
			var st lockfree.ServiceState
			st, rec = s.Service()
			state = st.String()
			if st == lockfree.InService {
				if _, err := m.registerIn(c.Name, s); err != nil {
					return nil, err
				}
				if !waited.IsZero() {
					m.log.Info("structure in service", "structure", c.Name, "waited", time.Since(waited).Round(time.Millisecond))
				}
				return s, nil
			}
			if st == lockfree.Failed && c.NoRecAuto {
				m.leaveFailed(c.Name, "found failed")
				return nil, nil
			}
			// Failed, or recovering: unless someone holds the recovery
			// lock (and so is recovering it now), recover it.
			err = m.tryRecover(c)
			if err == nil || errors.Is(err, ErrStructureFine) {
				continue
			}
		} else if errors.Is(err, shm.ErrTruncated) || errors.Is(err, shm.ErrCorrupt) || errors.Is(err, lockfree.ErrCorrupt) {
			// Its file is damaged (a crash or a hand): recover it.
			m.log.Error("structure failed", "event", "structure_failed", "structure", c.Name, "err", err)
			if err = m.tryRecover(c); err == nil || errors.Is(err, ErrStructureFine) {
				continue
			}
		}
		if !transientStructureErr(err) {
			return nil, fmt.Errorf("structure %s: %w", c.Name, err)
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("qm: structure %s is still %s (%s) after waiting %v (StructureWait): %w",
				c.Name, state, m.describeProcess(rec), m.cfg.StructureWait, err)
		}
		if waited.IsZero() {
			waited = time.Now()
			m.log.Info("waiting for another member to create or recover a structure", "structure", c.Name, "state", state, "recoverer", m.describeProcess(rec), "err", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// tryRecover recovers structure c unless another member holds its
// recovery lock (group.ErrStructureBusy).
func (m *Member) tryRecover(c defs.CFStruct) error {
	unlock, err := lockRecover(m.g.Config().DataDir, c.Name, unix.LOCK_NB)
	if err != nil {
		return err
	}
	defer unlock()
	return m.recoverLocked(c)
}

// describeProcess names a process for logs and errors: the member it is,
// when it is one, its pid, and whether it is alive.
func (m *Member) describeProcess(id procid.ID) string {
	if id.Pid == 0 {
		return "no recoverer"
	}
	name := ""
	if peers, err := m.g.Peers(); err == nil {
		for _, p := range peers {
			if p.Process == id {
				name = "member " + p.Name + ", "
			}
		}
	}
	state := "alive"
	if !procid.Alive(id) {
		state = "dead"
	}
	return fmt.Sprintf("%spid %d, %s", name, id.Pid, state)
}

// waitLoggedOps waits until every operation that had logged its record
// but not yet made it visible ends (see BackupStructure).
func (m *Member) waitLoggedOps() error {
	_, waits, closeAll, err := m.logOpsInFlight(0)
	defer closeAll()
	if err != nil {
		return err
	}
	if err := m.waitOps(waits, false); err != nil {
		return fmt.Errorf("qm: %w", err)
	}
	return nil
}

// lockRecover takes the recovery lock of structure name: whoever creates
// the structure's file, or recovers it, holds it from before the file is
// created until the structure is in service (or the recovery failed), so
// that at most one process of the group recovers a structure at a time and
// a structure out of service whose lock is free is nobody's to finish.
// flags is unix.LOCK_NB (fail with group.ErrStructureBusy when another
// holds it) or 0 (wait).
func lockRecover(data, name string, flags int) (func(), error) {
	unlock, err := lockIn(data, name, ".recover.lock", "recovery", flags)
	if errors.Is(err, unix.EWOULDBLOCK) {
		return nil, fmt.Errorf("%w: %s", group.ErrStructureBusy, name)
	}
	return unlock, err
}

// leaveFailed leaves RECAUTO(NO) structure name failed (why: how it was
// found), for the whole group: recorded in the definitions, so that no
// member creates or recovers it, whether it mapped it or not, until
// RECOVER CFSTRUCT. It takes the structure's recovery lock: a member
// that holds it is recovering the structure (RECOVER CFSTRUCT), which is
// not to be marked failed under it, and one that recovered it meanwhile
// left it in service.
func (m *Member) leaveFailed(name, why string) {
	unlock, err := lockRecover(m.g.Config().DataDir, name, unix.LOCK_NB)
	if err != nil {
		m.log.Info("structure failed; RECAUTO(NO), but it is being recovered", "structure", name, "why", why, "err", err)
		return
	}
	defer unlock()
	if s, err := m.g.Structure(name, false); err == nil && s.InService() && s.Mapping().Check() == nil {
		return // recovered since it was found failed
	}
	m.leaveFailedLocked(name, why)
}

// leaveFailedLocked is leaveFailed with the recovery lock held.
func (m *Member) leaveFailedLocked(name, why string) {
	m.log.Error("structure failed; RECAUTO(NO): it stays failed until RECOVER CFSTRUCT", "event", "structure_left_failed", "structure", name, "why", why)
	m.mu.Lock()
	m.leftFailed[name] = true
	m.mu.Unlock()
	if err := m.repo.Update(func(tx *defs.Tx) error { return tx.SetStructFailed(name, time.Now()) }); err != nil {
		m.log.Error("structure left failed, not recorded in the group's definitions: other members may recover it", "structure", name, "err", err)
	}
}

// leftFailedNow reports whether RECAUTO(NO) structure name is left failed,
// as the group's definitions say (and this member's memory, when they
// cannot be read), bringing the member's memory up to date: a member
// that left it failed uses it again once another recovered it.
func (m *Member) leftFailedNow(name string) bool {
	var st defs.StructState
	err := m.repo.View(func(tx *defs.Tx) error { var err error; st, err = tx.StructState(name); return err })
	m.mu.Lock()
	defer m.mu.Unlock()
	if err != nil {
		m.log.Warn("cannot read a structure's state in the group's definitions", "structure", name, "err", err)
		return m.leftFailed[name]
	}
	if st.Failed.IsZero() {
		delete(m.leftFailed, name)
		return false
	}
	m.leftFailed[name] = true
	return true
}

// recordMade records in the group's definitions that structure name was
// made (at), the first time: what tells a RECAUTO(NO) structure lost from
// one never made. A repository that cannot take it (busy for longer than
// its timeout) costs only that, logged: the structure is in service.
func (m *Member) recordMade(name string, at time.Time) {
	if m.structMade(name) {
		return
	}
	if err := m.repo.Update(func(tx *defs.Tx) error { return tx.SetStructMade(name, at) }); err != nil {
		m.log.Warn("structure made, not recorded in the group's definitions: if RECAUTO(NO) and its file is lost, a member will make it again instead of leaving it failed", "structure", name, "err", err)
	}
}

// structMade reports whether structure name was made once (its file
// gone then means lost). An error reading it counts as made: a
// RECAUTO(NO) structure is left failed rather than made again.
func (m *Member) structMade(name string) bool {
	var st defs.StructState
	if err := m.repo.View(func(tx *defs.Tx) error { var err error; st, err = tx.StructState(name); return err }); err != nil {
		m.log.Warn("cannot read a structure's state in the group's definitions", "structure", name, "err", err)
		return true
	}
	return !st.Made.IsZero()
}
