package qm

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/qmgr/qmgr/defs"
	"github.com/qmgr/qmgr/shm"
)

// ErrStructureFine: RECOVER CFSTRUCT of a structure in service.
var ErrStructureFine = errors.New("qm: the structure is in service; nothing to recover")

// checkStructures looks at every application structure the member uses:
// one whose file is gone, truncated or replaced has failed, and so has one
// that someone took out of service as failed (qmgr check --fail). The member
// takes it out of service (in every process that maps it), stops using
// it, and recovers it unless its definition says RECAUTO(NO).
func (m *Member) checkStructures() {
	m.mu.Lock()
	var failed []string
	for name, o := range m.apps {
		s := o.Structure()
		if err := s.Mapping().Check(); err != nil {
			m.log.Error("structure failed", "structure", name, "err", err)
			failed = append(failed, name)
		} else if s.Failed() {
			m.log.Error("structure failed", "structure", name, "err", "taken out of service (qmgr check --fail found it damaged)")
			failed = append(failed, name)
		}
	}
	for _, name := range failed {
		delete(m.apps, name)
	}
	for name, at := range m.retryRecover {
		if time.Now().After(at) {
			delete(m.retryRecover, name)
			failed = append(failed, name)
		}
	}
	m.mu.Unlock()
	for _, name := range failed {
		m.g.Failed(name)
		var c defs.CFStruct
		if err := m.repo.View(func(tx *defs.Tx) error { var err error; c, err = tx.Struct(name); return err }); err == nil && c.NoRecAuto {
			m.log.Error("structure failed; RECAUTO(NO): it stays failed until RECOVER CFSTRUCT", "structure", name)
			m.mu.Lock()
			m.leftFailed[name] = true
			m.mu.Unlock()
			continue
		}
		m.goRecoverStructure(name)
	}
}

// testHookRecover runs first in RecoverStructure (tests make it fail).
var testHookRecover = func(string) error { return nil }

// goRecoverStructure recovers structure name in the background; a failed
// recovery is tried again a second later (checkStructures).
func (m *Member) goRecoverStructure(name string) {
	m.goRecover("structure:"+name, func() {
		m.cmdMu.Lock()
		defer m.cmdMu.Unlock()
		if m.stopping.Load() {
			return
		}
		if err := m.RecoverStructure(name); err != nil && !errors.Is(err, ErrStructureFine) {
			m.log.Error("recover structure; trying again in a second", "structure", name, "err", err)
			m.mu.Lock()
			m.retryRecover[name] = time.Now().Add(time.Second)
			m.mu.Unlock()
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

// RecoverStructure rebuilds structure name when it failed: the failed
// structure is taken out of service, the operations that logged their
// records before it failed are given time to end, its file is removed, and
// a new one is filled from the newest backup and the logs. A structure in
// service is left alone (ErrStructureFine). Callers hold cmdMu.
func (m *Member) RecoverStructure(name string) error {
	if err := testHookRecover(name); err != nil {
		return err
	}
	var c defs.CFStruct
	if err := m.repo.View(func(tx *defs.Tx) error { var err error; c, err = tx.Struct(name); return err }); err != nil {
		return err
	}
	unlock, err := lockRecover(m.g.Config().DataDir, name)
	if err != nil {
		return err
	}
	defer unlock()
	if s, err := m.g.Structure(name, false); err == nil && s.InService() && s.Mapping().Check() == nil {
		return ErrStructureFine
	}
	// Out of service everywhere (if a file is still mapped), then let the
	// operations that logged before it failed finish (or fail).
	m.mu.Lock()
	delete(m.apps, name)
	m.mu.Unlock()
	m.g.Failed(name)
	if err := m.waitLoggedOps(); err != nil {
		return err
	}
	if err := shm.Remove(m.g.Config().CFDir, name); err != nil && !errors.Is(err, os.ErrNotExist) && !errors.Is(err, shm.ErrNotFound) {
		return fmt.Errorf("remove the failed structure's file: %w", err)
	}
	t0 := time.Now()
	m.mu.Lock()
	delete(m.leftFailed, name)
	m.mu.Unlock()
	if _, err := m.structure(c, true); err != nil { // creates it, recovers it, puts it in service
		return err
	}
	m.log.Info("structure recovered after a failure", "structure", name, "took", time.Since(t0).Round(time.Millisecond))
	return nil
}

// waitLoggedOps waits until every operation that had logged its record
// but not yet made it visible ends (see BackupStructure).
func (m *Member) waitLoggedOps() error {
	_, waits, closeAll, err := m.logOpsInFlight(0)
	defer closeAll()
	if err != nil {
		return err
	}
	if err := m.waitOps(waits); err != nil {
		return fmt.Errorf("qm: %w", err)
	}
	return nil
}

// lockRecover serialises recoveries of structure name in the group.
func lockRecover(data, name string) (func(), error) {
	return lockIn(data, name, ".recover.lock", "recovery", 0)
}
