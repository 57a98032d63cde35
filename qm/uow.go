package qm

import (
	"time"

	"github.com/qmgr/qmgr/group"
	"github.com/qmgr/qmgr/lockfree"
	"github.com/qmgr/qmgr/procid"
)

// Long-running units of work. A connection's unit of work that stays open
// holds its messages (its puts invisible, its gets unavailable to others)
// and, once it holds persistent work, pins the replay point of every
// backup, so no log segment after its first record can be released. As MQ
// does, the member logs a unit of work open longer than UOWWarnAge, once,
// and backs out one open longer than UOWMaxAge: the connection is revoked
// (its application gets 2009, connection broken, and reconnects).

// uowCheckInterval is how often the member looks for long-running units
// of work.
const uowCheckInterval = time.Second

// uowKey names one unit of work: the structure, the owner and when the
// unit of work began.
type uowKey struct {
	structure string
	tag       lockfree.OwnerTag
	since     time.Time
}

// LongUOWsBackedOut is how many long-running units of work this member
// backed out since it started.
func (m *Member) LongUOWsBackedOut() int64 { return m.longBackedOut.Load() }

// checkLongUOWs looks at the open units of work of this member's
// connections in every application structure (run loop).
func (m *Member) checkLongUOWs() {
	if m.cfg.UOWWarnAge < 0 && m.cfg.UOWMaxAge < 0 {
		return
	}
	names, err := m.g.Structures()
	if err != nil {
		return
	}
	now := time.Now()
	seen := map[uowKey]bool{}
	for _, n := range names {
		s, err := m.g.Structure(n, false)
		if err != nil {
			continue
		}
		for _, oi := range s.Owners() {
			if !oi.UOWActive || !oi.Registered || !m.isMine(oi.Label) {
				continue
			}
			k := uowKey{structure: n, tag: oi.Tag, since: oi.UOWSince}
			seen[k] = true
			m.judgeUOW(k, oi.Process, now.Sub(oi.UOWSince))
		}
	}
	for k := range m.longUOWs {
		if !seen[k] {
			delete(m.longUOWs, k)
		}
	}
}

// isMine reports whether an owner label names a connection of this
// member's current incarnation.
func (m *Member) isMine(label uint64) bool {
	peer, inc, ok := group.LabelPeer(label)
	return ok && peer == m.slot && group.SameIncarnation(inc, m.inc)
}

// judgeUOW warns about, or backs out, unit of work k of process id, open
// for age.
func (m *Member) judgeUOW(k uowKey, id procid.ID, age time.Duration) {
	if m.longUOWs == nil {
		m.longUOWs = map[uowKey]bool{}
	}
	if m.cfg.UOWWarnAge >= 0 && age > m.cfg.UOWWarnAge && !m.longUOWs[k] {
		m.longUOWs[k] = true
		m.log.Warn("long-running unit of work", "structure", k.structure, "slot", k.tag.Slot(), "pid", id.Pid,
			"open", age.Round(time.Second), "backed_out_after", m.cfg.UOWMaxAge)
	}
	if m.cfg.UOWMaxAge < 0 || age <= m.cfg.UOWMaxAge {
		return
	}
	info, ok := m.g.Admin().Owner(k.tag.Slot())
	if !ok || info.State != "active" || info.Process != id {
		return // the connection ended, or is being recovered
	}
	m.goRecover(connBusyKey(info.Tag), func() {
		m.log.Warn("backing out a long-running unit of work: the connection is broken", "structure", k.structure,
			"slot", k.tag.Slot(), "pid", id.Pid, "open", age.Round(time.Second), "limit", m.cfg.UOWMaxAge)
		if m.recoverConn(info.Tag, id, true) {
			m.longBackedOut.Add(1)
		}
	})
}
