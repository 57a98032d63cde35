package qm

import (
	"time"

	"github.com/qmgr/qmgr/group"
	"github.com/qmgr/qmgr/lockfree"
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

// uowKey names one unit of work: the structure, its owner and its
// sequence number there.
type uowKey struct {
	structure string
	tag       lockfree.OwnerTag
	seq       uint32
}

// LongUOWsBackedOut is how many long-running units of work this member
// backed out since it started.
func (m *Member) LongUOWsBackedOut() int64 { return m.longBackedOut.Load() }

// checkLongUOWs looks at the open units of work of this member's
// connections in every application structure (run loop). A unit of work's
// age is measured by this member's monotonic clock from when it first saw
// it open (up to uowCheckInterval late), so a clock step or a host
// suspended and resumed cannot make every unit of work look old.
func (m *Member) checkLongUOWs() {
	if m.cfg.UOWWarnAge < 0 && m.cfg.UOWMaxAge < 0 {
		return
	}
	names, err := m.g.Structures()
	if err != nil {
		return
	}
	now := time.Now()
	if m.longUOWs == nil {
		m.longUOWs = map[uowKey]time.Time{}
	}
	seen := map[uowKey]bool{}
	oldest := map[lockfree.OwnerTag]time.Duration{} // per connection: its oldest open unit of work
	for _, n := range names {
		s, err := m.g.Structure(n, false)
		if err != nil {
			continue
		}
		for _, u := range s.OpenUOWs() {
			if !m.isMine(u.Label) {
				continue
			}
			k := uowKey{structure: n, tag: u.Tag, seq: u.Seq}
			seen[k] = true
			first, ok := m.longUOWs[k]
			if !ok {
				first = now
				m.longUOWs[k] = now
			}
			oldest[u.Tag] = max(oldest[u.Tag], now.Sub(first))
		}
	}
	for k := range m.longUOWs {
		if !seen[k] {
			delete(m.longUOWs, k)
		}
	}
	for t := range m.longWarned {
		if oldest[t] <= m.cfg.UOWWarnAge {
			delete(m.longWarned, t)
		}
	}
	for t, age := range oldest {
		m.judgeUOW(t, age)
	}
}

// isMine reports whether an owner label names a connection of this
// member's current incarnation.
func (m *Member) isMine(label uint64) bool {
	peer, inc, ok := group.LabelPeer(label)
	return ok && peer == m.slot && group.SameIncarnation(inc, m.inc)
}

// judgeUOW warns about, or backs out, the unit of work of connection t,
// open for age.
func (m *Member) judgeUOW(t lockfree.OwnerTag, age time.Duration) {
	if m.longWarned == nil {
		m.longWarned = map[lockfree.OwnerTag]bool{}
	}
	if m.cfg.UOWWarnAge >= 0 && age > m.cfg.UOWWarnAge && !m.longWarned[t] {
		m.longWarned[t] = true
		m.log.Warn("long-running unit of work", "slot", t.Slot(), "open", age.Round(time.Second), "backed_out_after", m.cfg.UOWMaxAge)
	}
	if m.cfg.UOWMaxAge < 0 || age <= m.cfg.UOWMaxAge {
		return
	}
	info, ok := m.g.Admin().Owner(t.Slot())
	if !ok || info.State != "active" || !info.Registered || !m.isMine(info.Label) {
		return // the connection ended, or is being recovered
	}
	m.goRecover(connBusyKey(info.Tag), func() {
		m.log.Warn("backing out a long-running unit of work: the connection is broken", "slot", t.Slot(),
			"pid", info.Process.Pid, "open", age.Round(time.Second), "limit", m.cfg.UOWMaxAge)
		if _, ok := m.recoverConn(info.Tag, info.Process, true); ok {
			m.longBackedOut.Add(1)
		}
	})
}
