package qm

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"

	"github.com/qmgr/qmgr/group"
	"github.com/qmgr/qmgr/lockfree"
	"github.com/qmgr/qmgr/recovery/backup"
	"github.com/qmgr/qmgr/recovery/logbuf"
	"github.com/qmgr/qmgr/recovery/plog"
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
// consistent with the logs).
func (m *Member) BackupStructure(name string) (backup.Info, error) {
	data := m.g.Config().DataDir
	unlock, err := lockBackup(data, name)
	if err != nil {
		return backup.Info{}, err
	}
	defer unlock()
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
	// 2. What is in flight now, and where the oldest unit of work began.
	replayFrom, waits, closeAll, err := m.logOpsInFlight(start)
	defer closeAll()
	if err != nil {
		return backup.Info{}, err
	}
	// 3. Wait until every operation in flight has its effect in the CF.
	deadline := time.Now().Add(backupWait)
	for _, w := range waits {
		for !w.b.Ended(w.f) && m.g.Admin().OwnerAlive(lockfree.OwnerTag(w.f.Owner)) {
			if time.Now().After(deadline) {
				return backup.Info{}, fmt.Errorf("qm: backup of %s: an operation of connection slot %d did not end within %v",
					name, lockfree.OwnerTag(w.f.Owner).Slot(), backupWait)
			}
			time.Sleep(200 * time.Microsecond)
		}
	}
	// 4. Scan every queue, messages held by gets in flight included.
	bw, err := backup.Create(data, name, start, replayFrom)
	if err != nil {
		return backup.Info{}, err
	}
	var lm lockfree.Message
	for _, q := range s.Queues() {
		cur := o.NewBrowseCursor(q.ID)
		for {
			err := o.BrowseNext(cur, lockfree.GetOptions{IncludeHeld: true}, &lm)
			if errors.Is(err, lockfree.ErrNoMessage) {
				break
			}
			if err != nil {
				bw.Abort()
				return backup.Info{}, fmt.Errorf("qm: backup of %s: browse %s: %w", name, q.Name, err)
			}
			if !lm.Persistent || lm.Key == 0 {
				continue
			}
			r := plog.Record{Type: plog.TypePut, Flags: plog.FlagCommitted, Structure: name, Queue: q.Name, Key: lm.Key,
				MsgID: lm.MsgID, CorrelID: lm.CorrelID, Format: lm.Format, Priority: uint8(lm.Priority), PutTime: lm.PutTime,
				Expiry: lm.Expiry, BackoutCount: lm.BackoutCount, ReplyToQ: lm.ReplyToQ, ReplyToQMgr: lm.ReplyToQMgr,
				Properties: lm.Properties, Body: lm.Body}
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
	m.log.Info("backup taken", "structure", name, "messages", info.Messages, "bytes", info.Size, "start", info.Start,
		"replay_from", info.ReplayFrom, "path", info.Path)
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
		for _, f := range b.InFlight() {
			ops = append(ops, inFlightOp{b, f})
		}
		if k := b.OldestUOW(); k != 0 && k < from {
			from = k
		}
	}
	return from, ops, closeAll, nil
}

// lockBackup takes the lock of the backups of structure name (a flock,
// released when the process dies).
func lockBackup(data, name string) (func(), error) {
	dir := backup.Dir(data, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w: %s", ErrBackupRunning, name)
		}
		return nil, fmt.Errorf("qm: lock backups of %s: %w", name, err)
	}
	return func() { f.Close() }, nil
}
