package channel

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/qmgr/qmgr/shm"
)

// TestFlushFaultIsAnError: a body queued by MsgV is a slice of a shared
// mapping (a CF entry or a data set), and a writer that copies it in user
// space (crypto/tls encrypting it, where plain TCP's writev would return
// EFAULT) faults when the file under the mapping was truncated. Flush must
// fail with shm.ErrFault, not kill the channel initiator with SIGBUS.
func TestFlushFaultIsAnError(t *testing.T) {
	path := filepath.Join(t.TempDir(), "body")
	const size = 64 << 10
	if err := os.WriteFile(path, bytes.Repeat([]byte{7}, size), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m, err := unix.Mmap(int(f.Fd()), 0, size, unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(m)
	if err := os.Truncate(path, 0); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer // copies, as tls.Conn does
	w := NewWriter(&out)
	w.MsgV([][]byte{m}, size)
	if err := w.Flush(); !errors.Is(err, shm.ErrFault) {
		t.Fatalf("Flush of a body whose file was truncated: %v, want shm.ErrFault", err)
	}
	// The writer is usable again (the channel closes its connection, but
	// nothing of the failed flush stays queued).
	if w.Buffered() != 0 {
		t.Fatalf("%d bytes still queued after a failed flush", w.Buffered())
	}
}
