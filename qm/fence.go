package qm

import (
	"errors"
	"syscall"
	"time"

	"github.com/qmgr/qmgr/lockfree"
	"github.com/qmgr/qmgr/procid"
	"github.com/qmgr/qmgr/smds"
)

// Stalled applications. An operation on shared memory takes microseconds,
// and a recovery that must fence a live connection waits for the one in
// flight to end. An application stopped in the middle of one (SIGSTOP, a
// debugger) would hold that recovery, and with it a dead member's
// takeover, a structure's recovery or a backup, for as long as it stays
// stopped. The member waits as long as it waits for a hung member's
// heartbeat (HeartbeatTimeout); if the application is then stopped, it
// fences it the same way: it kills it, and the recovery goes on as for any
// dead application. One that runs but does not finish (in D state, paging
// from a slow disk) is waited for as long as it lives.

// fence is s.Fence(t), bounded as above.
func (m *Member) fence(s *lockfree.Structure, t lockfree.OwnerTag) error {
	return m.unstall(s, func() error { return s.Fence(t) })
}

// repair is s.RepairDecided(t, out, lone, force), bounded as above (a
// repair that takes over from a recoverer that died also waits for a live
// owner). lone is the key of the connection's decided operation outside
// syncpoint, 0 when none. The report says what the repair did to messages.
func (m *Member) repair(s *lockfree.Structure, t lockfree.OwnerTag, out lockfree.Outcome, lone uint64, force bool) (lockfree.RepairReport, error) {
	var rep lockfree.RepairReport
	err := m.unstall(s, func() error { var err error; rep, err = s.RepairDecided(t, out, lone, force); return err })
	return rep, err
}

// revoke is s.RevokeDecided(t, out, lone) with the bounded fence.
func (m *Member) revoke(s *lockfree.Structure, t lockfree.OwnerTag, out lockfree.Outcome, lone uint64) (lockfree.RepairReport, error) {
	if err := m.fence(s, t); err != nil {
		return lockfree.RepairReport{Owner: t}, err
	}
	return m.repair(s, t, out, lone, true)
}

// unstall runs f, a fence or a repair of s, with the heartbeat timeout as
// the stall limit: each time f reports a stalled owner, its process is
// killed if it is stopped, and f runs again (a fence or repair claim this
// process holds already is taken up where it was).
func (m *Member) unstall(s *lockfree.Structure, f func() error) error {
	s.SetStallLimit(m.cfg.HeartbeatTimeout)
	for {
		err := f()
		var st *lockfree.StalledError
		if !errors.As(err, &st) {
			return err
		}
		if !procid.Stopped(st.Process) {
			continue
		}
		if kerr := m.killStalled(st.Process, st.Waited); kerr != nil {
			return errors.Join(err, kerr)
		}
	}
}

// unstallDataSet answers a structure recovery's rebuild of a data set's
// space map (mq.RebuildDataSets) that waited HeartbeatTimeout for a live
// process between claiming blocks in the old map and writing them: the
// same policy as unstall. A stopped process is killed (a dead one writes
// no more) and the rebuild tries again; one that runs is waited for
// again, as long as it lives: killing it could kill a process about to
// go on, and its write is bounded by its disk.
func (m *Member) unstallDataSet(st *smds.StalledError) error {
	if !procid.Stopped(st.Process) {
		return nil
	}
	return m.killStalled(st.Process, st.Waited, "space_map", st.Path)
}

// killStalled kills process id, which stalled in the middle of an
// operation for waited; attrs say where.
func (m *Member) killStalled(id procid.ID, waited time.Duration, attrs ...any) error {
	m.log.Warn("an application stalled in the middle of an operation on shared memory: killing it", append([]any{"event", "application_killed", "pid", id.Pid,
		"stalled", waited.Round(time.Millisecond), "limit", m.cfg.HeartbeatTimeout}, attrs...)...)
	if err := procid.Signal(id, syscall.SIGKILL); err != nil && !errors.Is(err, procid.ErrGone) {
		return err
	}
	return nil
}
