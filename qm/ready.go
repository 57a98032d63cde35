package qm

import (
	"fmt"

	"github.com/qmgr/qmgr/defs"
	"github.com/qmgr/qmgr/group"
)

// Ready reports nil when the member serves: it is not stopping, its peer
// record says it is active (and is this process's), and every defined
// application structure is attached and in service. Otherwise the error
// says what is missing (a member's /readyz, package httpd).
func (m *Member) Ready() error {
	if m.stopping.Load() {
		return fmt.Errorf("%w: %s is stopping", ErrStopped, m.cfg.Name)
	}
	p, found, err := m.g.FindPeer(m.cfg.Name)
	if err != nil {
		return fmt.Errorf("qm: reading the peer table: %w", err)
	}
	if !found || p.Process != m.self || p.State != group.PeerActive {
		return fmt.Errorf("qm: %s is not active (peer record: %s)", m.cfg.Name, p.State)
	}
	var structs []defs.CFStruct
	if err := m.repo.View(func(tx *defs.Tx) error { var err error; structs, err = tx.Structs("*"); return err }); err != nil {
		return fmt.Errorf("qm: reading the structure definitions: %w", err)
	}
	for _, c := range structs {
		s, err := m.g.Structure(c.Name, false)
		if err != nil {
			return fmt.Errorf("qm: structure %s is not attached: %w", c.Name, err)
		}
		if st := m.g.StructureStatus(s); st.Status != "ACTIVE" {
			return fmt.Errorf("qm: structure %s is %s: %s", c.Name, st.Status, st.Reason)
		}
	}
	return nil
}
