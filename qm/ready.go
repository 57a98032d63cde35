package qm

import (
	"fmt"
	"time"

	"github.com/qmgr/qmgr/defs"
	"github.com/qmgr/qmgr/group"
)

// Observe runs f with the member's group and definitions while the
// member holds them; once it has released them (at the end of a stop) it
// returns ErrStopped without calling f. Readers outside the member's own
// goroutines (the HTTP server, package httpd) go through it, so none
// reads a structure the stop has unmapped. f must only read, and return
// soon: the stop waits for it.
func (m *Member) Observe(f func(g *group.Group, repo *defs.Repo) error) error {
	m.closeMu.RLock()
	defer m.closeMu.RUnlock()
	if m.closed {
		return fmt.Errorf("%w: %s has stopped", ErrStopped, m.cfg.Name)
	}
	return f(m.g, m.repo)
}

// markClosed makes Observe refuse from now on, once the readers in it
// have finished.
func (m *Member) markClosed() {
	m.closeMu.Lock()
	m.closed = true
	m.closeMu.Unlock()
}

// Ready reports nil when the member serves: it is not stopping, its peer
// record says it is active (and is this process's), and every defined
// application structure is attached and in service. Otherwise the error
// says what is missing (a member's /readyz, package httpd).
func (m *Member) Ready() error {
	if m.stopping.Load() {
		return fmt.Errorf("%w: %s is stopping", ErrStopped, m.cfg.Name)
	}
	return m.Observe(m.ready)
}

// ready is Ready on the member's group and definitions.
func (m *Member) ready(g *group.Group, repo *defs.Repo) error {
	p, found, err := g.FindPeer(m.cfg.Name)
	if err != nil {
		return fmt.Errorf("qm: reading the peer table: %w", err)
	}
	if !found || p.Process != m.self || p.State != group.PeerActive {
		return fmt.Errorf("qm: %s is not active (peer record: %s)", m.cfg.Name, p.State)
	}
	// A member whose recovery log refuses records cannot take persistent
	// messages (their puts fail with 2102 until it writes again).
	if l := m.logForStats.Load(); l != nil {
		if st := l.State(); st.Failed {
			return fmt.Errorf("qm: %s's recovery log is failed since %s: %s", m.cfg.Name, st.Since.Format(time.RFC3339), st.Reason)
		}
	}
	var structs []defs.CFStruct
	if err := repo.View(func(tx *defs.Tx) error { var err error; structs, err = tx.Structs("*"); return err }); err != nil {
		return fmt.Errorf("qm: reading the structure definitions: %w", err)
	}
	for _, c := range structs {
		s, err := g.Structure(c.Name, false)
		if err != nil {
			return fmt.Errorf("qm: structure %s is not attached: %w", c.Name, err)
		}
		if st := g.StructureStatus(s); st.Status != "ACTIVE" {
			return fmt.Errorf("qm: structure %s is %s: %s", c.Name, st.Status, st.Reason)
		}
	}
	return nil
}
