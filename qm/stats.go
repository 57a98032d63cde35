package qm

import (
	"maps"
	"sync"
	"sync/atomic"
	"time"

	"github.com/qmgr/qmgr/group"
	"github.com/qmgr/qmgr/internal/histogram"
	"github.com/qmgr/qmgr/recovery/rlog"
)

// memberStats counts the member's own work, all of it off the data path
// (recoveries, backups, structure failures): plain atomics and histograms
// the member's goroutines record into, read by Stats (package metrics
// exports them).
type memberStats struct {
	peerRecoveries      atomic.Int64     // members this member recovered (it won the claim)
	peerRecoverySeconds *histogram.H     // how long each took
	connRecoveries      atomic.Int64     // connections this member recovered or revoked (recoverConn did something)
	backups             atomic.Int64     // backups this member took
	backupSeconds       *histogram.H     // how long each took
	lastBackup          atomic.Int64     // when the last one ended, Unix ns (0: none)
	mu                  sync.Mutex       // guards the maps
	structFailures      map[string]int64 // structures this member found failed (checkStructures, RECOVER CFSTRUCT)
	structRecoveries    map[string]int64 // structures this member rebuilt after a failure (recoverLocked)
}

// Histogram bounds of Stats: peer recoveries from 1ms to about 65s,
// backups from 10ms to about 11min.
var (
	PeerRecoveryBuckets = []float64{0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.512, 1.024, 2.048, 4.096, 8.192, 16.384, 32.768, 65.536}
	BackupBuckets       = []float64{0.01, 0.03, 0.1, 0.3, 1, 3, 10, 30, 100, 300, 1000}
)

func newMemberStats() *memberStats {
	return &memberStats{peerRecoverySeconds: histogram.New(PeerRecoveryBuckets), backupSeconds: histogram.New(BackupBuckets),
		structFailures: map[string]int64{}, structRecoveries: map[string]int64{}}
}

func (st *memberStats) structureFailed(name string) {
	st.mu.Lock()
	st.structFailures[name]++
	st.mu.Unlock()
}

func (st *memberStats) structureRecovered(name string) {
	st.mu.Lock()
	st.structRecoveries[name]++
	st.mu.Unlock()
}

func (st *memberStats) backupTaken(took time.Duration) {
	st.backups.Add(1)
	st.backupSeconds.Observe(took.Seconds())
	st.lastBackup.Store(time.Now().UnixNano())
}

// Stats is what a member counted since it started (its own work, as this
// process saw it; what the group shares, such as queue depths, is read
// from the structures).
type Stats struct {
	// PeerRecoveries: dead members this member recovered;
	// PeerRecoverySeconds how long each took (from winning the claim to
	// marking the member recovered).
	PeerRecoveries      int64
	PeerRecoverySeconds histogram.Snapshot
	// ConnRecoveries: connections (of its own, or of members it
	// recovered) whose work this member finished or undid.
	ConnRecoveries int64
	// Backups: backups this member took (BACKUP CFSTRUCT, automatic);
	// BackupSeconds how long each took; LastBackup when the last ended
	// (zero: none).
	Backups       int64
	BackupSeconds histogram.Snapshot
	LastBackup    time.Time
	// StructureFailures and StructureRecoveries, by structure: the
	// failures this member found (its checks every second), and the
	// times it rebuilt the structure from the backups and logs after a
	// failure (automatic, or RECOVER CFSTRUCT; not the fill of a
	// structure created at start).
	StructureFailures, StructureRecoveries map[string]int64
	// Log is the member's recovery log's counters, and LogSyncSeconds and
	// LogRecordsPerSync its sync histograms (rlog.Log.Histograms); zero
	// before the log is open.
	Log                               rlog.Stats
	LogSyncSeconds, LogRecordsPerSync histogram.Snapshot
	// LongUOWsBackedOut: units of work the member backed out for being
	// open longer than UOWMaxAge; CommandsRefused: command socket
	// connections refused.
	LongUOWsBackedOut, CommandsRefused int64
}

// Stats returns what the member counted so far. It may be called at any
// time, from any goroutine.
func (m *Member) Stats() Stats {
	st := m.stats
	s := Stats{
		PeerRecoveries: st.peerRecoveries.Load(), PeerRecoverySeconds: st.peerRecoverySeconds.Snapshot(),
		ConnRecoveries: st.connRecoveries.Load(),
		Backups:        st.backups.Load(), BackupSeconds: st.backupSeconds.Snapshot(),
		LongUOWsBackedOut: m.longBackedOut.Load(), CommandsRefused: m.cmdRefused.Load(),
	}
	if ns := st.lastBackup.Load(); ns != 0 {
		s.LastBackup = time.Unix(0, ns)
	}
	st.mu.Lock()
	s.StructureFailures = maps.Clone(st.structFailures)
	s.StructureRecoveries = maps.Clone(st.structRecoveries)
	st.mu.Unlock()
	if l := m.logForStats.Load(); l != nil {
		s.Log = l.Stats()
		s.LogSyncSeconds, s.LogRecordsPerSync = l.Histograms()
	}
	return s
}

// ConnCounts are the connections registered under a member, by the
// process that holds them.
type ConnCounts struct {
	// Apps: applications' (in-process ones included); Chinit: its channel
	// initiator's; AMQP: its AMQP listener's.
	Apps, Chinit, AMQP int
}

// Connections counts the connections registered under the member now (the
// admin structure's owners labelled with its slot and incarnation, the
// member's own owner left out), by holder: a child process by its pid,
// anything else an application.
func (m *Member) Connections() ConnCounts {
	var c ConnCounts
	ch := m.Children()
	own := m.ownTag()
	for _, info := range m.g.Admin().Owners() {
		peer, inc, ok := group.LabelPeer(info.Label)
		if !info.Registered || !ok || peer != m.slot || !group.SameIncarnation(inc, m.inc) || info.Tag == own {
			continue
		}
		switch pid := info.Process.Pid; {
		case ch.Chinit.Pid != 0 && pid == ch.Chinit.Pid:
			c.Chinit++
		case ch.AMQP.Pid != 0 && pid == ch.AMQP.Pid:
			c.AMQP++
		default:
			c.Apps++
		}
	}
	return c
}
