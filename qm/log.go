package qm

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/qmgr/qmgr/defs"
	"github.com/qmgr/qmgr/group"
	"github.com/qmgr/qmgr/lockfree"
	"github.com/qmgr/qmgr/mq"
	"github.com/qmgr/qmgr/recovery/backup"
	"github.com/qmgr/qmgr/recovery/logbuf"
	"github.com/qmgr/qmgr/recovery/plog"
	"github.com/qmgr/qmgr/recovery/replay"
	"github.com/qmgr/qmgr/recovery/rlog"
	"github.com/qmgr/qmgr/smds"
	"github.com/qmgr/qmgr/vfs"
)

// LogDir is where member name keeps its recovery log.
func LogDir(cfg group.Config, name string) string {
	return filepath.Join(cfg.DataDir, "log", name)
}

// memberLRSN draws LRSNs through the member's own admin owner, which
// other goroutines of the member use too (under ownMu).
type memberLRSN struct{ m *Member }

func (s memberLRSN) Next(n uint64) (first uint64, err error) {
	err = s.m.withOwn(func(o *lockfree.Owner) error {
		first, err = s.m.g.LRSN(o).Next(n)
		return err
	})
	return first, err
}

func (s memberLRSN) AtLeast(v uint64) error {
	return s.m.withOwn(func(o *lockfree.Owner) error { return s.m.g.LRSN(o).AtLeast(v) })
}

// startLog opens the member's recovery log and its log buffer, and starts
// the consumer that moves its connections' records into the log. What a
// previous run left published in the buffer is logged first.
func (m *Member) startLog() error {
	archive := ""
	if m.cfg.LogArchiveDir != "" {
		archive = filepath.Join(m.cfg.LogArchiveDir, m.cfg.Name)
	}
	l, err := rlog.Open(rlog.Config{FS: m.cfg.LogFS, Dir: LogDir(m.g.Config(), m.cfg.Name), Name: m.cfg.Name, LRSN: memberLRSN{m},
		SegmentSize: m.cfg.LogSegmentSize, ArchiveDir: archive})
	if err != nil {
		return fmt.Errorf("recovery log: %w", err)
	}
	// A damaged buffer file, or one of another layout or geometry, is
	// replaced (and the member's log says what was dropped).
	c, err := logbuf.Start(logbuf.Config{CFDir: m.g.Config().CFDir, Member: m.cfg.Name, Rings: m.cfg.LogRings, RingSize: m.cfg.LogRingSize}, l,
		func(format string, args ...any) { m.log.Error(fmt.Sprintf(format, args...)) })
	if err != nil {
		l.Close()
		return fmt.Errorf("log buffer: %w", err)
	}
	m.rlog, m.lcons = l, c
	m.logForStats.Store(l)
	return nil
}

// stopLog logs what connections published and closes the log (the
// consumer unmaps the buffer).
func (m *Member) stopLog() {
	if m.lcons != nil {
		m.lcons.Close()
		m.lcons = nil
	}
	if m.rlog != nil {
		if err := m.rlog.Close(); err != nil {
			m.log.Error("recovery log", "err", err)
		}
		m.rlog = nil
	}
}

// freeLogRing frees the log ring of a recovered connection of this
// member, once what it published is logged.
func (m *Member) freeLogRing(t lockfree.OwnerTag, label uint64) {
	if peer, _, ok := group.LabelPeer(label); !ok || peer != m.slot || m.lcons == nil {
		return
	}
	if err := m.lcons.Free(uint64(t)); err != nil {
		m.log.Warn("free log ring", "slot", t.Slot(), "err", err)
	}
}

// recoverInto fills structure name, which this member just created out of
// service, with its queues and its persistent messages (from the newest
// backup and the logs), then puts it in service. Callers hold cmdMu.
func (m *Member) recoverInto(name string) (replayStats, error) {
	m.mu.Lock()
	o := m.apps[name]
	m.mu.Unlock()
	if o == nil {
		return replayStats{}, fmt.Errorf("qm: no owner in structure %s", name)
	}
	if err := m.reconcileQueues(name); err != nil {
		return replayStats{}, err
	}
	st, err := m.replayInto(name)
	if err != nil {
		return st, err
	}
	// The data sets' space maps of the recovered structure, from the
	// references its entries hold now (replayed records refer to synced
	// runs): before anyone allocates or frees.
	kept, rejected, unusable, err := mq.RebuildDataSets(m.g, name, o.Structure(),
		mq.Unstall{Limit: m.cfg.HeartbeatTimeout, Stalled: m.unstallDataSet})
	if err != nil {
		return st, err
	}
	for _, u := range unusable {
		m.log.Error("shared message data set unusable: moved aside and replaced by an empty one; the bodies it held are lost (their messages are moved off their queues by their first gets)",
			"structure", name, "data_set", u.Num, "path", u.Path, "moved_to", u.MovedTo, "bodies_lost", u.Lost, "err", u.Err)
	}
	for _, rj := range rejected {
		m.log.Error("recovered message whose body in its shared message data set is damaged or lost: its first get moves it to its queue's BOQNAME or the dead-letter queue (with neither, its gets fail)", "structure", name, "err", rj)
	}
	if kept > 0 || len(rejected) > 0 {
		m.log.Info("shared message data sets rebuilt", "structure", name, "bodies_kept", kept, "bodies_lost", len(rejected))
	}
	st.bodiesKept, st.bodiesLost = kept, len(rejected)
	o.Structure().PutInService()
	o.SetRecoverer(false)
	return st, nil
}

// replayStats is what a replay into a structure did (its log line:
// createLocked).
type replayStats struct {
	backup   backup.Info   // the backup it started from (Path "": none)
	from     uint64        // the LRSN the logs were replayed from
	records  int           // log records read
	units    int           // units of work replayed
	dropped  int           // records dropped (aborted units of work)
	logs     int           // members' logs read
	restored int           // persistent messages put back
	took     time.Duration // the replay
	// Offloaded bodies whose runs the rebuild of the data sets' maps kept,
	// and those it could not (damaged or missing: their messages are
	// moved off their queues by their first gets, mq.Queue.Get).
	bodiesKept, bodiesLost int
}

// abortedUOWs is what a replay treats as aborted: the units of work
// recorded aborted in the repository, and those whose commit record may be
// logged but that can no longer decide (their connection died or was
// fenced) and so will be backed out, whether or not their recoverer has
// recorded the abort yet. Read after the operations in flight ended (the
// caller waited), so that a commit that was deciding has decided.
func (m *Member) abortedUOWs() (map[uint64]bool, error) {
	var aborted map[uint64]bool
	if err := m.repo.View(func(tx *defs.Tx) error { var err error; aborted, err = tx.AbortedUOWs(0); return err }); err != nil {
		return nil, err
	}
	for _, k := range m.g.Admin().UndecidedCommits() {
		aborted[k] = true
	}
	return aborted, nil
}

// replayInto replays every member's log into structure name, which holds
// no persistent message yet.
func (m *Member) replayInto(name string) (st replayStats, err error) {
	t0 := time.Now()
	defer func() { st.took = time.Since(t0) }()
	dirs, err := replay.DirsIn(m.cfg.LogFS, filepath.Join(m.g.Config().DataDir, "log"))
	if err != nil {
		return st, err
	}
	st.logs = len(dirs)
	opts := replay.Options{FS: m.cfg.LogFS, LogDirs: dirs, Structure: name}
	bk, seed, err := m.latestBackup(name)
	switch {
	case err == nil:
		opts.From, opts.Seed, opts.SeedLRSN = bk.ReplayFrom, seed, bk.Start
	case !errors.Is(err, backup.ErrNoBackup):
		return st, err
	}
	st.backup, st.from = bk, opts.From
	if opts.Aborted, err = m.abortedUOWs(); err != nil {
		return st, err
	}
	tr := time.Now()
	res, err := replay.Run(opts)
	if err != nil {
		return st, err
	}
	st.records, st.units, st.dropped = int(res.Records), int(res.Units), int(res.Dropped)
	if el := time.Since(tr); res.Bytes >= 1<<20 {
		// A rate measured on a real amount of log: the backup schedule
		// uses it from now on.
		r := defs.ReplayRate{BytesPerSec: float64(res.Bytes) / el.Seconds(), RecordsPerSec: float64(res.Records) / el.Seconds(), Measured: time.Now()}
		m.repo.Update(func(tx *defs.Tx) error {
			_, err := tx.Save(defs.TypeRecovery, defs.ReplayName, r, defs.Replace)
			return err
		})
	}
	if res.Records == 0 && len(seed) == 0 && len(opts.Aborted) == 0 {
		return st, nil
	}
	// Keys and LRSNs handed out from now on are above every logged one,
	// and above every aborted key (one whose records never became durable
	// must not name a new unit of work).
	top := res.MaxLRSN
	for k := range opts.Aborted {
		top = max(top, k)
	}
	if err := (memberLRSN{m}).AtLeast(top); err != nil {
		return st, err
	}
	o, s, err := m.ownerIn(name)
	if err != nil {
		return st, err
	}
	queues := map[string]lockfree.QueueID{}
	for i := range res.Messages {
		m.reportProgress(int64(i), int64(len(res.Messages)))
		r := &res.Messages[i].Record
		q, ok := queues[r.Queue]
		if !ok {
			if q, err = s.LookupQueue(r.Queue); err != nil {
				m.log.Warn("recovered message of a queue that is no longer defined: dropped", "structure", name, "queue", r.Queue, "key", r.Key)
				continue
			}
			queues[r.Queue] = q
		}
		lm := lockfree.Message{MsgID: r.MsgID, CorrelID: r.CorrelID, Format: r.Format, Priority: int(r.Priority),
			Persistent: true, Expiry: r.Expiry, PutTime: r.PutTime, BackoutCount: r.BackoutCount, ReplyToQ: r.ReplyToQ,
			ReplyToQMgr: r.ReplyToQMgr, Properties: r.Properties, Body: r.Body, Key: r.Key}
		if r.Flags&plog.FlagOffloaded != 0 {
			// Its body is in a data set: the entry refers to it again.
			ref, err := smds.DecodeRef(r.Body)
			if err != nil {
				return st, fmt.Errorf("put back message %d of queue %s: %w", r.Key, r.Queue, err)
			}
			lm.Offload, lm.OffloadLen, lm.Body = r.Body, int(ref.Len), nil
		}
		if err := o.Put(q, &lm, lockfree.PutOptions{}); err != nil {
			return st, fmt.Errorf("put back message %d of queue %s: %w", r.Key, r.Queue, err)
		}
		cpReplayPut.Hit()
		st.restored++
	}
	return st, nil
}

// releaseLogs releases the segments of the member's log that no recovery
// can need. Recovery uses the newest whole backup of a structure and
// falls back to the one before it if the newest is damaged, so the log is
// kept from the second newest backup's replay point of every structure; a
// structure with fewer than two backups needs the whole log.
func (m *Member) releaseLogs() {
	names, err := m.g.Structures()
	if err != nil || len(names) == 0 || m.rlog == nil {
		return
	}
	var kept []string
	for _, n := range names {
		list, err := backup.List(m.g.Config().DataDir, n)
		if err != nil || len(list) < 2 {
			return
		}
		kept = append(kept, list[1].Path)
	}
	key := strings.Join(kept, "\x00")
	if key == m.released {
		return // released against these backups already
	}
	before := uint64(1<<64 - 1)
	for _, path := range kept {
		info, _, err := backup.Read(path) // whole: else recovery would need an older one
		if err != nil {
			return
		}
		before = min(before, info.ReplayFrom)
	}
	m.released = key
	if n, err := m.rlog.Release(before); err != nil {
		m.log.Warn("release log segments", "err", err)
	} else if n > 0 {
		m.log.Info("log segments released", "segments", n, "below_lrsn", before)
	}
}

// backupsKept is how many backups of a structure are kept: the newest,
// and the one recovery falls back to when the newest is damaged.
const backupsKept = 2

// pruneBackups deletes the backups of structure name older than the
// newest backupsKept.
func (m *Member) pruneBackups(name string) {
	list, err := backup.List(m.g.Config().DataDir, name)
	if err != nil {
		return
	}
	for _, b := range list[min(backupsKept, len(list)):] {
		if err := os.Remove(b.Path); err != nil {
			m.log.Warn("delete an old backup", "path", b.Path, "err", err)
		} else if err := vfs.SyncParent(vfs.OS(), b.Path); err != nil {
			m.log.Warn("sync the backup directory after deleting an old backup", "path", b.Path, "err", err)
		}
		m.repo.Update(func(tx *defs.Tx) error { return tx.Delete(defs.TypeBackup, defs.BackupName(name, b.Start)) })
	}
}

// latestBackup returns the newest whole backup of structure name: first
// among those the repository records, then among the files in the
// backup directory (a backup whose recording failed, or a repository
// restored from elsewhere).
func (m *Member) latestBackup(name string) (backup.Info, []plog.Record, error) {
	var recs []defs.Backup
	m.repo.View(func(tx *defs.Tx) error { var err error; recs, err = tx.Backups(name); return err })
	skip := func(path string, err error) {
		m.log.Warn("damaged backup skipped", "structure", name, "path", path, "err", err)
	}
	var best backup.Info
	var bestSeed []plog.Record
	for _, r := range recs {
		info, seed, err := backup.Read(r.Path)
		if err == nil {
			best, bestSeed = info, seed
			break
		}
		skip(r.Path, err)
	}
	// Only a file newer than what the repository gave is read.
	info, seed, err := backup.Latest(m.g.Config().DataDir, name, best.Start, skip)
	switch {
	case err == nil:
		return info, seed, nil
	case best.Path != "" && errors.Is(err, backup.ErrNoBackup):
		return best, bestSeed, nil
	}
	return backup.Info{}, nil, err
}

// LogClear logs the clearing of a queue (mqsc.Env), durably, before the
// queue is drained.
func (m *Member) LogClear(structure, queue string) error {
	if m.rlog == nil {
		return fmt.Errorf("qm: no recovery log")
	}
	r := plog.Record{Type: plog.TypeClear, Flags: plog.FlagCommitted, Structure: structure, Queue: queue}
	return m.rlog.Write(uint8(plog.TypeClear), plog.Append(nil, &r))
}
