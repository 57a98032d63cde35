package qm

import (
	"errors"
	"fmt"
	"github.com/qmgr/qmgr/internal/ownedfs"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/qmgr/qmgr/shm"
)

// The command socket's defences. The threat model
// trusts the processes of the group's owner and of the members of its
// Unix group; every other local user may connect to any socket it can
// reach. The group's owner and Unix group are the owner and group of the
// data directory, which holds the socket.
//
// Who is served (Trust.Allows), judged on every accepted connection from
// the kernel's record of the peer's credentials when it connected
// (SO_PEERCRED: uid and gid; SO_PEERGROUPS: its supplementary groups, so
// neither a pid reused since nor a process that changed its credentials
// afterwards is misjudged):
//
//   - root (uid 0), which can reach everything anyway;
//   - the member's own effective user, and the data directory's owner;
//   - a process whose group or one of whose supplementary groups is the
//     data directory's group.
//
// That is exactly who could read and write a file of mode 0660 owned by
// the data directory's owner and group: what the socket's mode already
// says, checked once more in case the modes are loose (an operator's
// chmod, a socket whose group is the member's primary group rather than
// the data directory's). Everyone else is refused: the connection is
// closed before a byte is read, the refusal logged with the peer's uid,
// gid and pid, and counted (DISPLAY QMGR CMDREFUSED).
//
// The client (Command) checks the server the same way before it sends a
// command: a socket served by a process outside the group (one that took
// the path while no member listened) gets no command.
//
// Nobody but its owner (and root) can reach the socket before it is 0660
// (listenPrivate): it is bound in a fresh directory of mode 0700 in the
// data directory, made 0660 there, and renamed to its path, which
// replaces an earlier incarnation's socket atomically. umask, the other way, is process-wide and would change the
// modes of whatever the member's other goroutines create meanwhile.

// Trust says which peers may use a command socket.
type Trust struct {
	Self  uint32 // the member's effective uid
	Owner uint32 // the data directory's owner
	Group uint32 // the data directory's group
}

// Allows reports whether a peer with uid, gid and supplementary groups is
// trusted.
func (t Trust) Allows(uid, gid uint32, groups []uint32) bool {
	if uid == 0 || uid == t.Self || uid == t.Owner || gid == t.Group {
		return true
	}
	for _, g := range groups {
		if g == t.Group {
			return true
		}
	}
	return false
}

// TrustFor is the trust of a member whose data directory is dir. The
// directory must pass the group's file rules first (ownedfs: no symbolic
// link, of this user or group, nothing for others): otherwise whoever
// created it (a stranger, after /tmp was emptied) would be "the group's
// owner", and a client would send its commands, secrets included, to
// that stranger's socket.
func TrustFor(dir string) (Trust, error) {
	f, err := ownedfs.OpenDir(dir)
	if err != nil {
		return Trust{}, fmt.Errorf("qm: the data directory: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return Trust{}, fmt.Errorf("qm: the data directory: %w", err)
	}
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !ok {
		return Trust{}, fmt.Errorf("qm: the data directory %s: no owner", dir)
	}
	return Trust{Self: uint32(os.Geteuid()), Owner: sys.Uid, Group: sys.Gid}, nil
}

// ErrUntrustedPeer: the other end of a command connection is not a
// process of the group's owner or of a member of its Unix group.
var ErrUntrustedPeer = errors.New("qm: command socket peer not trusted")

// Peer is the kernel's record of the process at the other end of a unix
// socket, taken when it connected (or, for a listener, listened).
type Peer struct {
	Pid    int32
	Uid    uint32
	Gid    uint32
	Groups []uint32 // supplementary groups
}

func (p Peer) String() string {
	return fmt.Sprintf("pid=%d uid=%d gid=%d groups=%v", p.Pid, p.Uid, p.Gid, p.Groups)
}

// PeerOf reads the credentials of c's peer.
func PeerOf(c net.Conn) (Peer, error) {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return Peer{}, fmt.Errorf("qm: %T is not a unix socket", c)
	}
	rc, err := uc.SyscallConn()
	if err != nil {
		return Peer{}, err
	}
	var p Peer
	var serr error
	err = rc.Control(func(fd uintptr) {
		var cred *unix.Ucred
		if cred, serr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED); serr != nil {
			return
		}
		p.Pid, p.Uid, p.Gid = cred.Pid, cred.Uid, cred.Gid
		p.Groups, serr = peerGroups(int(fd))
	})
	if err == nil {
		err = serr
	}
	if err != nil {
		return Peer{}, fmt.Errorf("qm: credentials of the command socket's peer: %w", err)
	}
	return p, nil
}

// peerGroups reads SO_PEERGROUPS (Linux 4.13; qmgr needs 5.3 for
// pidfd_open): the peer's supplementary groups, an array of gid_t.
func peerGroups(fd int) ([]uint32, error) {
	buf := make([]uint32, 32)
	for {
		n := uint32(len(buf) * 4)
		_, _, e := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), unix.SOL_SOCKET, unix.SO_PEERGROUPS,
			uintptr(unsafe.Pointer(&buf[0])), uintptr(unsafe.Pointer(&n)), 0)
		switch {
		case e == unix.ERANGE && int(n/4) > len(buf):
			buf = make([]uint32, n/4) // n is the size needed
		case e != 0:
			return nil, fmt.Errorf("SO_PEERGROUPS: %w", e)
		default:
			return buf[:n/4], nil
		}
	}
}

// listenPrivate listens on the unix socket path, which nobody but its
// owner can reach before its mode is shm.FileMode (0660): see the comment
// at the top of this file.
func listenPrivate(path string) (net.Listener, error) {
	dir, err := os.MkdirTemp(filepath.Dir(path), ".cmd-") // mode 0700
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	tmp := filepath.Join(dir, "s")
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: tmp, Net: "unix"})
	if err != nil {
		return nil, err
	}
	// Its path changes: the member removes it when it stops (stop).
	l.SetUnlinkOnClose(false)
	if err := os.Chmod(tmp, shm.FileMode); err != nil {
		l.Close()
		return nil, err
	}
	if testAfterBind != nil {
		testAfterBind(tmp)
	}
	if err := os.Rename(tmp, path); err != nil {
		l.Close()
		return nil, err
	}
	return l, nil
}

// testAfterBind, when set (tests), is called with the path the command
// socket is bound at, before it is renamed to its own.
var testAfterBind func(bound string)
