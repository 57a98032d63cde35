package procid

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// ErrGone means the process does not exist (any more).
var ErrGone = errors.New("procid: process gone")

// ID is a process identity.
type ID struct {
	Pid   int
	Start uint64 // start time in clock ticks after boot
}

func (id ID) String() string { return fmt.Sprintf("%d@%d", id.Pid, id.Start) }

// Self returns the identity of the calling process. Its start time is read
// through /proc/self: in a pid namespace of its own whose /proc is still
// its parent's, /proc/<getpid()> is another process.
func Self() ID {
	b, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		panic("procid: cannot read own /proc entry: " + err.Error())
	}
	_, start, err := parseStat(b)
	if err != nil {
		panic("procid: cannot read own /proc entry: " + err.Error())
	}
	return ID{Pid: os.Getpid(), Start: start}
}

// SelfNS is the pid namespace of the calling process: the inode number of
// /proc/self/ns/pid (0 when the kernel does not say). Pids and pidfds mean
// something only between processes of one pid namespace.
func SelfNS() uint64 {
	selfNSOnce.Do(func() {
		var st syscall.Stat_t
		if err := syscall.Stat("/proc/self/ns/pid", &st); err == nil {
			selfNS = st.Ino
		}
	})
	return selfNS
}

var (
	selfNSOnce sync.Once
	selfNS     uint64
)

// Of reads the identity of pid. A zombie counts as gone.
func Of(pid int) (ID, error) {
	state, start, err := stat(pid)
	if err != nil {
		return ID{}, err
	}
	if state == 'Z' || state == 'X' {
		return ID{}, ErrGone
	}
	return ID{Pid: pid, Start: start}, nil
}

// Alive reports whether the process id names is still running: the pid
// exists, is not a zombie, and started at the recorded time.
func Alive(id ID) bool {
	if id.Pid <= 0 {
		return false
	}
	if err := syscall.Kill(id.Pid, 0); errors.Is(err, syscall.ESRCH) {
		return false
	}
	cur, err := Of(id.Pid)
	if err != nil {
		// EPERM-like failures on /proc still mean the pid exists; a missing
		// entry means it is gone.
		return !errors.Is(err, ErrGone)
	}
	return cur.Start == id.Start
}

func stat(pid int) (state byte, start uint64, err error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ESRCH) {
			return 0, 0, ErrGone
		}
		return 0, 0, fmt.Errorf("procid: %w", err)
	}
	return parseStat(b)
}

// parseStat extracts the state (field 3) and start time (field 22). The
// command name (field 2) may hold spaces and parentheses, so fields are
// counted from the last ')'.
func parseStat(b []byte) (byte, uint64, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 >= len(b) {
		return 0, 0, fmt.Errorf("procid: malformed stat %q", b)
	}
	f := bytes.Fields(b[i+2:]) // f[0] is field 3
	if len(f) < 20 || len(f[0]) != 1 {
		return 0, 0, fmt.Errorf("procid: malformed stat %q", b)
	}
	start, err := strconv.ParseUint(string(f[19]), 10, 64)
	if err != nil {
		return 0, 0, fmt.Errorf("procid: start time: %w", err)
	}
	return f[0][0], start, nil
}

// Stopped reports whether process id is stopped: by a signal (SIGSTOP, job
// control) or by a tracer (a debugger).
func Stopped(id ID) bool {
	state, start, err := stat(id.Pid)
	return err == nil && start == id.Start && (state == 'T' || state == 't')
}

// Signal sends sig to the process id names, and to no other: it opens a
// pidfd for the pid (pidfd_open(2)), which from then on refers to that one
// process whatever happens to the pid, checks that the process it refers
// to started at id's start time, and sends the signal through the pidfd
// (pidfd_send_signal(2)). A pid the kernel gave to another process since
// id was recorded is refused (ErrGone), as is a process that ended (a
// zombie included). Killing or signalling by pid after a separate liveness
// check would hit whichever process has the pid by then.
func Signal(id ID, sig syscall.Signal) error {
	if id.Pid <= 0 {
		return ErrGone
	}
	fd, err := unix.PidfdOpen(id.Pid, 0)
	if errors.Is(err, unix.ESRCH) {
		return ErrGone
	}
	if err != nil {
		return fmt.Errorf("procid: pidfd_open %d: %w", id.Pid, err)
	}
	defer unix.Close(fd)
	// Read after the open: if the pid named another process when the
	// pidfd was opened, that one is what /proc shows now (or it is gone
	// too), and its start time differs.
	cur, err := Of(id.Pid)
	if err != nil {
		return err
	}
	if cur.Start != id.Start {
		return fmt.Errorf("%w: pid %d is now another process (started at %d, not %d)", ErrGone, id.Pid, cur.Start, id.Start)
	}
	if err := unix.PidfdSendSignal(fd, sig, nil, 0); err != nil {
		if errors.Is(err, unix.ESRCH) {
			return ErrGone
		}
		return fmt.Errorf("procid: signal %v to %v: %w", sig, id, err)
	}
	return nil
}
