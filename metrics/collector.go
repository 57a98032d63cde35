package metrics

import (
	"errors"
	"io/fs"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/qmgr/qmgr/amqp/stats"
	"github.com/qmgr/qmgr/channel"
	"github.com/qmgr/qmgr/channel/chanstats"
	"github.com/qmgr/qmgr/defs"
	"github.com/qmgr/qmgr/group"
	"github.com/qmgr/qmgr/internal/histogram"
	"github.com/qmgr/qmgr/lockfree"
	"github.com/qmgr/qmgr/mq"
)

// collector computes every metric at scrape time from what exists
// already: the structures' shared memory, the peer and channel status
// tables, the repository, and the member's own counters (Source.Stats).
// It keeps no state of its own.
type collector struct {
	src Source
}

func newCollector(src Source) *collector { return &collector{src: src} }

// Describe sends every descriptor the collector uses.
func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range allDescs {
		ch <- d
	}
}

// Collect reads everything once, in named parts; a part that cannot be
// read is left out and counted in qmgr_scrape_errors.
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	err := c.src.Observe(func(*group.Group, *defs.Repo) error {
		c.collect(ch)
		return nil
	})
	if err != nil { // the member has stopped: nothing of it to read
		emitter{ch: ch}.gauge(scrapeErrors, 1, "member")
	}
}

// collect is Collect while the member holds what it reads.
func (c *collector) collect(ch chan<- prometheus.Metric) {
	e := emitter{ch: ch}
	now := time.Now()
	failed := map[string]bool{}
	note := func(part string, err error) {
		if err != nil {
			failed[part] = true
		}
	}
	note("repository", c.collectStructures(e, now, note))
	note("peers", c.collectPeers(e, now))
	c.collectConnections(e)
	note("channels", c.collectChannels(e))
	c.collectMember(e)
	note("chinit", c.collectChinit(e, now))
	note("amqp", c.collectAMQP(e, now))
	note("units", c.collectUnits(e, now))
	for _, part := range []string{"repository", "structures", "queues", "peers", "channels", "chinit", "amqp", "units"} {
		e.gauge(scrapeErrors, b2f(failed[part]), part)
	}
}

// emitter sends const metrics.
type emitter struct{ ch chan<- prometheus.Metric }

func (e emitter) gauge(d *prometheus.Desc, v float64, labels ...string) {
	e.ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, validLabels(labels)...)
}

func (e emitter) counter(d *prometheus.Desc, v float64, labels ...string) {
	e.ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, validLabels(labels)...)
}

func (e emitter) histogram(d *prometheus.Desc, h histogram.Snapshot, labels ...string) {
	e.ch <- prometheus.MustNewConstHistogram(d, h.Count, h.Sum, h.Buckets, validLabels(labels)...)
}

// validLabels is labels with every run of bytes that is not UTF-8
// replaced by U+FFFD. Label values are names read from shared memory that
// other processes write (peer records, channel status records, queue
// records); the Must constructors panic on a value that is not UTF-8, and
// the registry collects in goroutines of its own, where a panic ends the
// member.
func validLabels(labels []string) []string {
	for i, l := range labels {
		if !utf8.ValidString(l) {
			labels = slices.Clone(labels)
			labels[i] = strings.ToValidUTF8(l, "\uFFFD")
		}
	}
	return labels
}

// stateSet emits 1 for the label value state and 0 for the others of
// states (a Prometheus state set), the state's label last.
func (e emitter) stateSet(d *prometheus.Desc, states []string, state string, labels ...string) {
	for _, s := range states {
		e.gauge(d, b2f(s == state), append(labels, s)...)
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// structStates are the values of qmgr_structure_state.
var structStates = []string{"ACTIVE", "RECOVERING", "FAILED", "MISSING"}

// collectStructures emits every defined structure's figures and its
// queues'. It fails only when the repository cannot be read; a structure
// that cannot be attached shows as MISSING.
func (c *collector) collectStructures(e emitter, now time.Time, note func(string, error)) error {
	var structs []defs.CFStruct
	if err := c.src.Repo().View(func(tx *defs.Tx) error { var err error; structs, err = tx.Structs("*"); return err }); err != nil {
		return err
	}
	st := c.src.Stats()
	g := c.src.Group()
	for _, cs := range structs {
		name := cs.Name
		e.counter(structFailures, float64(st.StructureFailures[name]), name)
		e.counter(structRecoveries, float64(st.StructureRecoveries[name]), name)
		note("repository", c.collectBackups(e, name))
		if cs.Offloads() {
			e.counter(smdsFreeErrors, float64(mq.OffloadFreeErrors(c.src.Group().Config(), name).Count), name)
		}
		s, err := g.Structure(name, false)
		if err != nil {
			e.stateSet(structState, structStates, "MISSING", name)
			continue
		}
		status := g.StructureStatus(s).Status
		e.stateSet(structState, structStates, status, name)
		if status != "ACTIVE" {
			continue // its queues are being rebuilt, or gone
		}
		note("structures", collectStructure(e, s, name))
		note("queues", collectQueues(e, s, name, now))
	}
	return nil
}

// collectStructure emits a structure's pools, connections and units of
// work.
func collectStructure(e emitter, s *lockfree.Structure, name string) error {
	p := s.Params()
	u := s.Usage()
	e.gauge(structEntries, float64(u.EntriesUsed), name, "used")
	e.gauge(structEntries, float64(p.Entries-u.EntriesUsed), name, "free")
	e.gauge(structElements, float64(u.ElementsUsed), name, "used")
	e.gauge(structElements, float64(p.Elements-u.ElementsUsed), name, "free")
	e.gauge(structElemSize, float64(p.ElementSize), name)
	e.gauge(structConns, float64(u.Owners), name)
	e.gauge(structQueues, float64(u.Queues), name)
	e.counter(structLogged, float64(s.Logged()), name)
	committed, backedOut, err := s.UOWCounts()
	if err != nil {
		return err
	}
	e.counter(structCommits, float64(committed), name)
	e.counter(structBackouts, float64(backedOut), name)
	return nil
}

// collectQueues emits every queue of structure s.
func collectQueues(e emitter, s *lockfree.Structure, name string, now time.Time) error {
	var firstErr error
	for _, q := range s.Queues() {
		l := []string{name, q.Name}
		e.gauge(queueDepth, float64(q.Depth), l...)
		e.gauge(queueUncommitted, float64(q.Uncom), l...)
		e.gauge(queueMaxDepth, float64(q.Attrs.MaxDepth), l...)
		e.gauge(queueOpen, float64(q.OpenIn), name, q.Name, "input")
		e.gauge(queueOpen, float64(q.OpenOut), name, q.Name, "output")
		age := 0.0
		pt, ok, err := s.OldestPutTime(q.ID)
		if err != nil && firstErr == nil {
			firstErr = err
		}
		if ok {
			age = max(now.Sub(time.Unix(0, pt)).Seconds(), 0)
		}
		e.gauge(queueOldestAge, age, l...)
		n := q.Counts
		e.counter(queuePuts, float64(n.Puts), l...)
		e.counter(queuePutBytes, float64(n.PutBytes), l...)
		e.counter(queueGets, float64(n.Gets), l...)
		e.counter(queueGetBytes, float64(n.GetBytes), l...)
		e.counter(queueBackouts, float64(n.Backouts), l...)
		e.counter(queueBackoutB, float64(n.BackoutBytes), l...)
		e.counter(queueExpired, float64(n.Expired), l...)
		e.counter(queueExpiredB, float64(n.ExpiredBytes), l...)
	}
	return firstErr
}

// collectBackups emits a structure's recorded backups and its recovery
// estimate (defs.Tx.RecoveryEstimate, as DISPLAY CFSTATUS does).
func (c *collector) collectBackups(e emitter, name string) error {
	var logged uint64
	if s, err := c.src.Group().Structure(name, false); err == nil {
		logged = s.Logged()
	}
	var est defs.Estimate
	var recs []defs.Backup
	err := c.src.Repo().View(func(tx *defs.Tx) error {
		var err error
		if recs, err = tx.Backups(name); err != nil {
			return err
		}
		est, err = tx.RecoveryEstimate(name, logged)
		return err
	})
	if err != nil {
		return err
	}
	e.gauge(structBackupCount, float64(len(recs)), name)
	e.gauge(structEstimate, est.Time.Seconds(), name)
	if est.Newest != nil {
		e.gauge(structLastBackup, float64(est.Newest.Taken.UnixNano())/1e9, name)
	}
	return nil
}

// peerStates are the values of qmgr_peer_state.
var peerStates = []string{"starting", "active", "stopping", "failed", "recovering", "recovered", "stopped"}

// collectPeers emits every member's state and, for the running ones, the
// age of its heartbeat.
func (c *collector) collectPeers(e emitter, now time.Time) error {
	peers, err := c.src.Group().Peers()
	if err != nil {
		return err
	}
	for _, p := range peers {
		if p.State == group.PeerEmpty {
			continue
		}
		e.stateSet(peerState, peerStates, p.State.String(), p.Name)
		if p.State.Running() {
			e.gauge(peerHeartbeatAge, max(now.Sub(time.Unix(0, p.Heartbeat)).Seconds(), 0), p.Name)
		}
	}
	return nil
}

// collectConnections emits the connections registered under this member,
// by holder (qm.Member.Connections).
func (c *collector) collectConnections(e emitter) {
	n := c.src.Connections()
	e.gauge(memberConns, float64(n.Apps), "app")
	e.gauge(memberConns, float64(n.Chinit), "chinit")
	e.gauge(memberConns, float64(n.AMQP), "amqp")
}

// chanStates are the values of qmgr_channel_state.
var chanStates = []string{"INACTIVE", "STARTING", "RUNNING", "RETRYING", "STOPPING", "STOPPED"}

// collectChannels emits every channel of the shared status table.
func (c *collector) collectChannels(e emitter) error {
	g := c.src.Group()
	all, err := channel.NewTable(g).All()
	if err != nil {
		return err
	}
	peers, _ := g.Peers()
	names := map[int]string{}
	for _, p := range peers {
		names[p.Slot] = p.Name
	}
	for _, st := range all {
		e.stateSet(chanState, chanStates, st.State.String(), st.Name, st.Type)
		if st.Owner >= 0 && names[st.Owner] != "" {
			e.gauge(chanOwner, 1, st.Name, names[st.Owner])
		}
		e.gauge(chanMsgs, float64(st.Msgs), st.Name)
		e.gauge(chanBatch, float64(st.LastBatch), st.Name)
		e.gauge(chanInDoubt, b2f(st.InDoubt != 0), st.Name)
		e.gauge(chanRetries, float64(st.Retries), st.Name)
	}
	return nil
}

// collectMember emits what the member counted itself: recoveries, its
// log, its backups, its child processes.
func (c *collector) collectMember(e emitter) {
	cm := mq.SMDSCacheMetrics()
	e.counter(smdsCacheHits, float64(cm.Hits))
	e.counter(smdsCacheMisses, float64(cm.Misses))
	e.counter(smdsCacheEvicts, float64(cm.Evictions))
	e.gauge(smdsCacheBytes, float64(cm.Bytes))
	e.gauge(smdsCacheMax, float64(cm.MaxBytes))
	st := c.src.Stats()
	e.counter(memberPeerRecoveries, float64(st.PeerRecoveries))
	e.histogram(memberPeerRecoveryD, st.PeerRecoverySeconds)
	e.counter(memberConnRecoveries, float64(st.ConnRecoveries))
	e.counter(memberLongUOWs, float64(st.LongUOWsBackedOut))
	e.counter(memberCmdRefused, float64(st.CommandsRefused))
	e.counter(logRecords, float64(st.Log.Records))
	e.counter(logWrites, float64(st.Log.Writes))
	e.counter(logSyncs, float64(st.Log.Syncs))
	e.counter(logBytes, float64(st.Log.Bytes))
	e.counter(logFailures, float64(st.Log.Failures))
	e.histogram(logSyncDuration, st.LogSyncSeconds)
	e.histogram(logPerSync, st.LogRecordsPerSync)
	e.counter(backups, float64(st.Backups))
	e.histogram(backupDuration, st.BackupSeconds)
	if !st.LastBackup.IsZero() {
		e.gauge(backupLastEnded, float64(st.LastBackup.UnixNano())/1e9)
	}
	ch := c.src.Children()
	for _, k := range []struct {
		name  string
		state string
		n     int
	}{{"chinit", ch.Chinit.State, ch.Chinit.Starts}, {"amqp", ch.AMQP.State, ch.AMQP.Starts}} {
		if k.state == "NONE" || k.state == "" {
			continue
		}
		e.gauge(memberChildUp, b2f(k.state == "RUNNING"), k.name)
		e.counter(memberChildStarts, float64(k.n), k.name)
	}
}

// collectChinit exports the per channel figures the member's channel
// initiator last wrote, when it runs one and they are its and recent
// (package channel/chanstats). A file that cannot be read or decoded is a
// scrape error.
func (c *collector) collectChinit(e emitter, now time.Time) error {
	ch := c.src.Children()
	if ch.Chinit.State != "RUNNING" || ch.Chinit.Pid <= 0 {
		return nil
	}
	f, err := chanstats.Read(chanstats.Path(c.src.Group().Config().DataDir, c.src.Name()))
	if errors.Is(err, fs.ErrNotExist) {
		return nil // not written yet
	}
	if err != nil {
		return err
	}
	if !f.Current(ch.Chinit.Pid, now) {
		return nil // a dead initiator's, or stale
	}
	for _, k := range f.Channels {
		e.counter(chanSentBytes, float64(k.SentBytes), k.Name)
		e.counter(chanRecvBytes, float64(k.ReceivedBytes), k.Name)
		e.counter(chanBatches, float64(k.Batches), k.Name)
		e.counter(chanMessages, float64(k.Messages), k.Name)
		e.counter(chanTakeovers, float64(k.Takeovers), k.Name)
	}
	e.gauge(chanFiguresAge, max(now.Sub(f.Written).Seconds(), 0))
	return nil
}

// collectAMQP exports the figures the member's AMQP listener last wrote,
// when it runs one and they are its and recent (package amqp/stats). A
// file that cannot be read or decoded is a scrape error.
func (c *collector) collectAMQP(e emitter, now time.Time) error {
	ch := c.src.Children()
	if ch.AMQP.State != "RUNNING" || ch.AMQP.Pid <= 0 {
		return nil
	}
	f, err := stats.Read(stats.Path(c.src.Group().Config().DataDir, c.src.Name()))
	if errors.Is(err, fs.ErrNotExist) {
		return nil // not written yet
	}
	if err != nil {
		return err
	}
	if !f.Current(ch.AMQP.Pid, now) {
		return nil // a dead listener's, or stale
	}
	e.gauge(amqpConns, float64(f.Connections))
	e.gauge(amqpChannels, float64(f.Channels))
	e.gauge(amqpConsumers, float64(f.Consumers))
	e.gauge(amqpGroupConns, float64(f.GroupConnections))
	e.counter(amqpPublished, float64(f.Published))
	e.counter(amqpDelivered, float64(f.Delivered))
	e.counter(amqpRefused, float64(f.Refused))
	e.gauge(amqpBlocked, b2f(f.Blocked))
	e.gauge(amqpAge, max(now.Sub(f.Written).Seconds(), 0))
	return nil
}
