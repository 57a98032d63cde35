package qm

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"

	"github.com/qmgr/qmgr/defs"
	"github.com/qmgr/qmgr/group"
	"github.com/qmgr/qmgr/internal/ownedfs"
	"github.com/qmgr/qmgr/lockfree"
	"github.com/qmgr/qmgr/procid"
	"github.com/qmgr/qmgr/recovery/backup"
	"github.com/qmgr/qmgr/recovery/logbuf"
	"github.com/qmgr/qmgr/recovery/plog"
	"github.com/qmgr/qmgr/vfs"
)

// ErrBackupRunning: another backup of the structure is being taken.
var ErrBackupRunning = errors.New("qm: a backup of the structure is being taken")

// backupWait bounds how long a backup waits for the operations in flight
// when it starts.
const backupWait = 30 * time.Second

// Backup takes a fuzzy backup of structure name (mqsc.Env: BACKUP
// CFSTRUCT) and describes it.
func (m *Member) Backup(name string) (string, error) {
	info, err := m.BackupStructure(name)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("Backup of CFSTRUCT(%s) taken: %d messages, %d bytes, start LRSN %d, replay from LRSN %d.",
		name, info.Messages, info.Size, info.Start, info.ReplayFrom), nil
}

// BackupStructure takes a fuzzy backup of the persistent messages of
// structure name while traffic runs (see package backup for why it is
// consistent with the logs): BACKUP CFSTRUCT.
func (m *Member) BackupStructure(name string) (backup.Info, error) {
	return m.backupStructure(name, "command")
}

// backupStructure is BackupStructure, logged as one line naming its
// trigger ("command" or "automatic"): event backup_taken with the figures
// of the backup (logArgs added), or backup_failed with the error (none
// when another backup of the structure is running).
func (m *Member) backupStructure(name, trigger string, logArgs ...any) (_ backup.Info, err error) {
	t0 := time.Now()
	defer func() {
		if err != nil && !errors.Is(err, ErrBackupRunning) {
			m.log.Warn("backup failed", "event", "backup_failed", "structure", name, "trigger", trigger,
				"took", time.Since(t0).Round(time.Millisecond), "err", err)
		}
	}()
	data := m.g.Config().DataDir
	unlock, err := lockBackup(data, name)
	if err != nil {
		return backup.Info{}, err
	}
	defer unlock()
	t0 = time.Now() // the backup itself, not the wait for another's lock
	o, s, err := m.ownerIn(name)
	if err != nil {
		return backup.Info{}, err
	}
	// 1. The start: every operation with a lower LRSN marked itself in
	// flight before it got its LRSN.
	last, err := m.g.Counter(group.CounterLRSN)
	if err != nil {
		return backup.Info{}, err
	}
	start := last + 1
	logged := s.Logged() // what is logged from here on sizes the next recovery
	// 2. What is in flight now, and where the oldest unit of work began.
	replayFrom, waits, closeAll, err := m.logOpsInFlight(start)
	defer closeAll()
	if err != nil {
		return backup.Info{}, err
	}
	// 3. Wait until every operation in flight has its effect in the CF.
	if err := m.waitOps(waits, true); err != nil {
		return backup.Info{}, fmt.Errorf("qm: backup of %s: %w", name, err)
	}
	// 4. Scan every queue, messages held by gets in flight included.
	bw, err := backup.Create(data, name, start, replayFrom)
	if err != nil {
		return backup.Info{}, err
	}
	var lm lockfree.Message
	queues := s.Queues()
	var total, scanned int64 // the progress: messages browsed of the depths when the scan began
	for _, q := range queues {
		total += q.Depth
	}
	for _, q := range queues {
		cur := o.NewBrowseCursor(q.ID)
		for {
			err := o.BrowseNext(cur, lockfree.GetOptions{IncludeHeld: true, IncludeUncommitted: true}, &lm)
			if errors.Is(err, lockfree.ErrNoMessage) {
				break
			}
			if err != nil {
				bw.Abort()
				return backup.Info{}, fmt.Errorf("qm: backup of %s: browse %s: %w", name, q.Name, err)
			}
			scanned++
			m.reportProgress(scanned, max(total, scanned))
			if !lm.Persistent || lm.Key == 0 {
				continue
			}
			if cur.Uncommitted() {
				// Its place, should its unit of work commit after the start
				// (replay takes it from the log).
				r := plog.Record{Type: plog.TypePut, Structure: name, Queue: q.Name, Key: lm.Key, Priority: uint8(lm.Priority)}
				if err := bw.Add(&r); err != nil {
					bw.Abort()
					return backup.Info{}, err
				}
				continue
			}
			r := plog.Record{Type: plog.TypePut, Flags: plog.FlagCommitted, Structure: name, Queue: q.Name, Key: lm.Key,
				MsgID: lm.MsgID, CorrelID: lm.CorrelID, Format: lm.Format, Priority: uint8(lm.Priority), PutTime: lm.PutTime,
				Expiry: lm.Expiry, BackoutCount: lm.BackoutCount, ReplyToQ: lm.ReplyToQ, ReplyToQMgr: lm.ReplyToQMgr,
				Properties: lm.Properties, Body: lm.Body}
			if lm.Offload != nil {
				// Its body stays in its data set (synced before its put
				// record was logged): the backup refers to it.
				r.Flags |= plog.FlagOffloaded
				r.Body = lm.Offload
			}
			if err := bw.Add(&r); err != nil {
				bw.Abort()
				return backup.Info{}, err
			}
		}
	}
	info, err := bw.Commit()
	if err != nil {
		return backup.Info{}, err
	}
	// Recorded in the shared repository, where recovery looks first.
	rec := defs.Backup{Structure: name, Start: info.Start, ReplayFrom: info.ReplayFrom, Path: info.Path, Size: info.Size,
		Messages: info.Messages, Taken: info.Taken, Logged: logged}
	if err := m.repo.Update(func(tx *defs.Tx) error {
		_, err := tx.Save(defs.TypeBackup, defs.BackupName(name, info.Start), rec, defs.Replace)
		return err
	}); err != nil {
		m.log.Warn("record the backup in the repository (recovery finds its file anyway)", "path", info.Path, "err", err)
	}
	m.stats.backupTaken(time.Since(t0))
	m.log.Info("backup taken", append([]any{"event", "backup_taken", "structure", name, "trigger", trigger, "messages", info.Messages,
		"places", info.Places, "bytes", info.Size, "start", info.Start, "replay_from", info.ReplayFrom, "path", info.Path,
		"took", time.Since(t0).Round(time.Millisecond)}, logArgs...)...)
	m.pruneBackups(name)
	m.releaseLogs()
	return info, nil
}

type inFlightOp struct {
	b *logbuf.Buffer
	f logbuf.InFlight
}

// logOpsInFlight looks at every member's log buffer: the operations in flight
// and the oldest unit of work (replay starts at its key, or at start).
func (m *Member) logOpsInFlight(start uint64) (uint64, []inFlightOp, func(), error) {
	var bufs []*logbuf.Buffer
	closeAll := func() {
		for _, b := range bufs {
			b.Close()
		}
	}
	ents, err := os.ReadDir(logbuf.Dir(m.g.Config().CFDir))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return 0, nil, closeAll, err
	}
	from := start
	var ops []inFlightOp
	for _, e := range ents {
		if !e.Type().IsRegular() {
			continue
		}
		b, err := logbuf.Attach(m.g.Config().CFDir, e.Name())
		if err != nil {
			continue // not a log buffer, or being created
		}
		bufs = append(bufs, b)
		// A buffer whose pages are gone fails the backup: the units of
		// work it names cannot be known (its member replaces it).
		fl, err := b.InFlight()
		if err != nil {
			return 0, nil, closeAll, err
		}
		for _, f := range fl {
			ops = append(ops, inFlightOp{b, f})
		}
		k, err := b.OldestUOW()
		if err != nil {
			return 0, nil, closeAll, err
		}
		if k != 0 && k < from {
			from = k
		}
	}
	return from, ops, closeAll, nil
}

// waitOps waits until each operation of waits has ended, or its
// connection is gone, for at most backupWait. An application found
// stopped (SIGSTOP, a debugger) in the middle of one after the heartbeat
// timeout is killed (see fence.go); one that waits for its log record to
// become durable is waited for.
//
// A connection that is gone (dead, or fenced by a recoverer) may have left
// a decided put or get outside syncpoint (mq's lone operations) for its
// recovery to carry out in the CF; its record's LRSN may be below a
// backup's start, and no unit of work of its ring lowers the replay point.
// A backup (untilRecovered) therefore waits until such a connection is
// recovered (its admin slot no longer holds it). A rebuild from the logs
// does not: it replays the record itself.
func (m *Member) waitOps(waits []inFlightOp, untilRecovered bool) error {
	t0 := time.Now()
	deadline := t0.Add(backupWait)
	admin := m.g.Admin()
	for _, w := range waits {
		tag := lockfree.OwnerTag(w.f.Owner)
		var looked time.Time
		for !w.b.Ended(w.f) {
			alive := admin.OwnerAlive(tag)
			if !alive && !(untilRecovered && connHeld(admin, tag)) {
				break
			}
			if !alive {
				testHookWaitsForRecovery(tag.Slot())
			}
			if waited := time.Since(t0); alive && waited > m.cfg.HeartbeatTimeout && time.Since(looked) > 100*time.Millisecond {
				looked = time.Now()
				m.killIfStopped(tag, waited)
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("an operation of connection slot %d did not end within %v", tag.Slot(), backupWait)
			}
			time.Sleep(200 * time.Microsecond)
		}
	}
	return nil
}

// testHookWaitsForRecovery is called while a backup waits for a gone
// connection's recovery (tests only).
var testHookWaitsForRecovery = func(slot int) {}

// connHeld reports whether the admin slot of connection tag still holds
// it (active or being recovered): its recovery has not finished.
func connHeld(admin *lockfree.Structure, tag lockfree.OwnerTag) bool {
	info, ok := admin.Owner(tag.Slot())
	return ok && info.Tag == tag
}

// killIfStopped kills the process of connection tag if it is stopped.
func (m *Member) killIfStopped(tag lockfree.OwnerTag, waited time.Duration) {
	info, ok := m.g.Admin().Owner(tag.Slot())
	if !ok || info.Tag != tag || !procid.Stopped(info.Process) {
		return
	}
	if err := m.killStalled(info.Process, waited); err != nil {
		m.log.Error("kill a stalled application", "pid", info.Process.Pid, "err", err)
	}
}

// lockBackup takes the lock of the backups of structure name, or fails
// with ErrBackupRunning when another backup holds it.
func lockBackup(data, name string) (func(), error) {
	unlock, err := lockIn(data, name, ".lock", "backups", unix.LOCK_NB)
	if errors.Is(err, unix.EWOULDBLOCK) {
		return nil, fmt.Errorf("%w: %s", ErrBackupRunning, name)
	}
	return unlock, err
}

// lockIn takes file's exclusive flock in the backup directory of structure
// name (what: what it serialises, for errors; flags: LOCK_NB, or 0 to
// wait). The lock goes with the returned release, or when the process
// dies.
func lockIn(data, name, file, what string, flags int) (func(), error) {
	dir := backup.Dir(data, name)
	if err := vfs.MkdirDurable(vfs.OS(), dir); err != nil { // the backups' directory
		return nil, err
	}
	f, _, err := ownedfs.OpenOrCreate(filepath.Join(dir, file), os.O_RDWR)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|flags); err != nil {
		f.Close()
		return nil, fmt.Errorf("qm: lock %s of %s: %w", what, name, err)
	}
	return func() { f.Close() }, nil
}

// goAutoBackup starts the automatic backup check unless one is running.
func (m *Member) goAutoBackup() { goUnlessRunning(&m.backingUp, m.autoBackup) }

// autoBackup is the automatic backup of structures: the member holding
// the backup lease backs up every structure whose recovery would now take
// longer than the group's CFRECTIME (RecoveryEstimate). Busy structures
// are backed up often, idle ones rarely; when the holder dies another
// member takes the lease and the cycle goes on.
func (m *Member) autoBackup() {
	// Every member releases what the newest backups (whoever took them)
	// make unnecessary in its own log.
	m.cmdMu.Lock()
	if !m.stopping.Load() {
		m.releaseLogs()
	}
	m.cmdMu.Unlock()
	var q defs.QMgr
	if err := m.repo.View(func(tx *defs.Tx) error { var err error; q, err = tx.QMgr(); return err }); err != nil || q.CFRecTime == 0 {
		return
	}
	ttl := max(10*m.cfg.HeartbeatInterval, time.Second)
	var held bool
	m.withOwn(func(o *lockfree.Owner) error {
		var err error
		held, err = m.g.AcquireLease(o, group.LeaseBackup, m.slot, ttl)
		return err
	})
	if !held {
		return
	}
	names, err := m.g.Structures()
	if err != nil {
		return
	}
	minGap := max(time.Second, time.Duration(q.CFRecTime)*time.Millisecond/4)
	for _, name := range names {
		e, err := m.RecoveryEstimate(name)
		if err != nil || e.Newest != nil && time.Since(e.Newest.Taken) < minGap || e.Time < time.Duration(q.CFRecTime)*time.Millisecond {
			continue
		}
		estMs := e.Time.Milliseconds()
		m.cmdMu.Lock()
		if m.stopping.Load() {
			m.cmdMu.Unlock()
			return
		}
		m.backupStructure(name, "automatic", "estimated_recovery_ms", estMs, "target_ms", q.CFRecTime) // logged
		m.cmdMu.Unlock()
	}
}

// backupCheckInterval is how often the run loop starts the automatic
// backup check.
const backupCheckInterval = 200 * time.Millisecond

// RecoveryEstimate is how long recovering structure name would take now
// (defs.Tx.RecoveryEstimate): the bytes logged about it since its newest
// recorded backup began, at the replay rate the last recovery measured.
func (m *Member) RecoveryEstimate(name string) (defs.Estimate, error) {
	s, err := m.g.Structure(name, false)
	if err != nil {
		return defs.Estimate{}, err
	}
	var e defs.Estimate
	err = m.repo.View(func(tx *defs.Tx) error { var err error; e, err = tx.RecoveryEstimate(name, s.Logged()); return err })
	return e, err
}
