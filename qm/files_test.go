package qm

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/qmgr/qmgr/mq"
)

// Files and shared memory: what a group creates is its owner's and its
// group's only, and a member refuses what another user planted.

const nobodyID = 65534

// TestEverythingCreatedIsOwnerAndGroupOnly starts a group of two, puts
// persistent messages (log segments), takes backups (backup files and
// lock files), releases log segments to the archive, and walks every
// file and directory it created under the CF, data and archive
// directories: directories 0770, files 0660 (sockets: nothing for
// others), all owned by the user. The umask is 077, as strict as a user
// may set it: the modes the README promises do not depend on it.
func TestEverythingCreatedIsOwnerAndGroupOnly(t *testing.T) {
	old := syscall.Umask(0o077)
	defer syscall.Umask(old)
	cfg := testConfig(t, "QM1")
	cfg.LogSegmentSize = 16 << 10 // many segments, so some are released
	cfg.LogArchiveDir = filepath.Join(t.TempDir(), "archive")
	logs := logTo(t, &cfg)
	defer func() {
		if t.Failed() {
			t.Log(logs())
		}
	}()
	m := startMember(t, cfg)
	cfg2 := cfg
	cfg2.Name = "QM2"
	startMember(t, cfg2)
	mustExec(t, m, "DEFINE QLOCAL(P) MAXDEPTH(100000)")
	c := connect(t, cfg, "QM1")
	defer c.Disconnect()
	h, err := c.Open("P", mq.OpenOptions{Input: true, Output: true})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 300 {
		if err := h.Put(&mq.Message{Body: []byte(fmt.Sprintf("m%03d", i)), Persistence: mq.Persistent}, mq.PutOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	for range 10 {
		if _, err := h.Get(mq.GetOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 3 { // three backups at three LRSNs: two are kept, and the log below the older released
		if err := h.Put(&mq.Message{Body: []byte(fmt.Sprintf("b%d", i)), Persistence: mq.Persistent}, mq.PutOptions{}); err != nil {
			t.Fatal(err)
		}
		mustExec(t, m, "BACKUP CFSTRUCT(APPL1)")
	}
	eventually(t, "released log segments archived", func() bool {
		archived, _ := os.ReadDir(filepath.Join(cfg.LogArchiveDir, "QM1"))
		return len(archived) > 0
	})
	seen := map[string]int{}
	for _, root := range []string{cfg.Group.CFDir, cfg.Group.DataDir, cfg.LogArchiveDir} {
		err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			var st syscall.Stat_t
			if err := syscall.Lstat(path, &st); err != nil {
				return err
			}
			perm := st.Mode & 0o7777
			switch st.Mode & syscall.S_IFMT {
			case syscall.S_IFDIR:
				seen["directory"]++
				if perm != 0o770 {
					t.Errorf("directory %s: mode %04o, want 0770", path, perm)
				}
			case syscall.S_IFREG:
				seen["file"]++
				if perm != 0o660 {
					t.Errorf("file %s: mode %04o, want 0660", path, perm)
				}
			case syscall.S_IFSOCK:
				seen["socket"]++
				if perm&0o007 != 0 {
					t.Errorf("socket %s: mode %04o, open to others", path, perm)
				}
			default:
				t.Errorf("%s: unexpected file type %o", path, st.Mode&syscall.S_IFMT)
			}
			if int(st.Uid) != os.Geteuid() || int(st.Gid) != os.Getegid() {
				t.Errorf("%s: owned by %d:%d, want %d:%d", path, st.Uid, st.Gid, os.Geteuid(), os.Getegid())
			}
			rel, _ := filepath.Rel(filepath.Dir(root), path)
			for _, k := range []string{"/log/", "/backup/", "archive/QM1/", "/logbuf/", "defs.db"} {
				if strings.Contains("/"+rel, k) {
					seen[k]++
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	// The walk saw every kind of file the group writes.
	for _, k := range []string{"directory", "file", "/log/", "/backup/", "archive/QM1/", "/logbuf/", "defs.db"} {
		if seen[k] == 0 {
			t.Errorf("the walk found nothing of %q: %v", k, seen)
		}
	}
	t.Logf("walked: %v", seen)
}

// plant creates path as a directory of nobody's that anyone may write.
func plant(t *testing.T, path string) {
	t.Helper()
	if err := os.MkdirAll(path, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(path, nobodyID, nobodyID); err != nil {
		t.Fatal(err)
	}
}

// wantNamed checks that err names path, nobody as its owner and mode 0777.
func wantNamed(t *testing.T, what string, err error, path string) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: accepted", what)
	}
	for _, s := range []string{path, fmt.Sprintf("uid %d", nobodyID), "0777"} {
		if !strings.Contains(err.Error(), s) {
			t.Fatalf("%s: the error does not name %q: %v", what, s, err)
		}
	}
	t.Logf("%s: %v", what, err)
}

// TestMemberRefusesSquattedDirectories: another user (nobody) created
// the CF directory, the data directory or the member's log directory
// or a structure's backup directory before the member's first start,
// writable by anyone: the member does not start, and says why.
func TestMemberRefusesSquattedDirectories(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("giving a directory to another user (nobody) needs root: run the tests as root to check the squatting cases")
	}
	for _, tc := range []struct {
		name string
		dir  func(Config) string
	}{
		{"cf", func(c Config) string { return c.Group.CFDir }},
		{"data", func(c Config) string { return c.Group.DataDir }},
		{"log", func(c Config) string { return LogDir(c.Group, c.Name) }},
		{"backup", func(c Config) string { return filepath.Join(c.Group.DataDir, "backup", "APPL1") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(t, "QM1")
			dir := tc.dir(cfg)
			if tc.name == "log" || tc.name == "backup" {
				// The data directory is the group's own.
				if err := os.Mkdir(cfg.Group.DataDir, 0o770); err != nil {
					t.Fatal(err)
				}
			}
			plant(t, dir)
			m, err := Start(cfg)
			if err == nil {
				go m.Run(t.Context())
				m.Stop()
			}
			wantNamed(t, "start", err, dir)
		})
	}
}

// TestReplacedStructureFileIsRecovered: a structure file renamed away and
// replaced by a copy (same bytes, another file) is a failed structure: the
// member's periodic check notices and recovers it from the log, as when
// the file is removed.
func TestReplacedStructureFileIsRecovered(t *testing.T) {
	cfg := testConfig(t, "QM1")
	logs := logTo(t, &cfg)
	defer func() {
		if t.Failed() {
			t.Log(logs())
		}
	}()
	m := startMember(t, cfg)
	mustExec(t, m, "DEFINE QLOCAL(P)")
	c := connect(t, cfg, "QM1")
	h, err := c.Open("P", mq.OpenOptions{Output: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Put(&mq.Message{Body: []byte("persistent"), Persistence: mq.Persistent}, mq.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	c.Disconnect()
	// A copy takes the file's name and the file goes to another in one
	// step (RENAME_EXCHANGE): no check can see the name missing.
	path := filepath.Join(cfg.Group.CFDir, "APPL1")
	if err := copyFile(path, path+".copy"); err != nil {
		t.Fatal(err)
	}
	if err := unix.Renameat2(unix.AT_FDCWD, path+".copy", unix.AT_FDCWD, path, unix.RENAME_EXCHANGE); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the replaced structure recovered", func() bool {
		return strings.Contains(logs(), "replaced") && strings.Contains(m.Exec("DISPLAY CFSTATUS(APPL1)").Text, "STATUS(ACTIVE)")
	})
	c = connect(t, cfg, "QM1")
	defer c.Disconnect()
	if h, err = c.Open("P", mq.OpenOptions{Input: true}); err != nil {
		t.Fatal(err)
	}
	if got := drainBodies(t, h); fmt.Sprint(got) != "[persistent]" {
		t.Fatalf("after the recovery: %v\n%s", got, logs())
	}
}

// copyFile copies from to a new file to (mode 0660).
func copyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o660)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
