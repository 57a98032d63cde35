package shm

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/qmgr/qmgr/internal/testproc"
)

const testVersion = 7

// TestMain lets the test binary act as a child process (see the tests that
// re-exec it).
func TestMain(m *testing.M) {
	testproc.Register("create", func([]string) int { childCreate(); return 0 })
	testproc.Register("squat", func([]string) int { squatChild(); return 0 })
	testproc.Register("attach", func([]string) int {
		_, err := Attach(os.Getenv("SHM_DIR"), os.Getenv("SHM_NAME"), testVersion)
		fmt.Println(errClass(err))
		return 0
	})
	testproc.Main(m)
}

func errClass(err error) string {
	for _, s := range []error{ErrNotFound, ErrPermission, ErrBadMagic, ErrVersion, ErrTruncated, ErrCorrupt, ErrNoSpace, ErrBadName, ErrFault} {
		if errors.Is(err, s) {
			return s.Error()
		}
	}
	if err != nil {
		return "other: " + err.Error()
	}
	return "ok"
}

// childCreate races to create a structure whose Init stamps the creator's pid
// into the first word, then reports whether it created it and what the
// structure says.
func childCreate() {
	dir, name := os.Getenv("SHM_DIR"), os.Getenv("SHM_NAME")
	// Line up with the siblings so the creates really overlap.
	start, _ := strconv.ParseInt(os.Getenv("SHM_START"), 10, 64)
	for time.Now().UnixNano() < start {
	}
	s, created, err := Create(CreateOptions{Dir: dir, Name: name, Kind: KindApplication, Size: 1 << 20, Version: testVersion,
		Init: func(m Mem) error {
			time.Sleep(5 * time.Millisecond) // widen the window a half-initialised file would be visible in
			*m.U64(0) = uint64(os.Getpid())
			*m.U64(8) = 0xfeedface
			return nil
		}})
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	m := s.Mem()
	fmt.Println(created, *m.U64(0), *m.U64(8) == 0xfeedface)
	os.Exit(0)
}

func TestCreateAttach(t *testing.T) {
	dir := t.TempDir()
	var initRuns int
	s, created, err := Create(CreateOptions{Dir: dir, Name: "APPL1", Kind: KindApplication, Size: 64 << 10, Version: testVersion,
		Init: func(m Mem) error { initRuns++; *m.U64(0) = 42; return nil }})
	if err != nil || !created || initRuns != 1 {
		t.Fatalf("create: %v created=%v init=%d", err, created, initRuns)
	}
	defer s.Close()
	h := s.Header()
	if h.Name != "APPL1" || h.Kind != KindApplication || h.Size != 64<<10 || h.Version != testVersion || time.Since(h.Created) > time.Minute {
		t.Fatalf("header %+v", h)
	}
	if s.Mem().Len() != 64<<10-HeaderSize {
		t.Fatalf("data len %d", s.Mem().Len())
	}
	st, _ := os.Stat(filepath.Join(dir, "APPL1"))
	if st.Mode().Perm() != FileMode {
		t.Fatalf("mode %v", st.Mode())
	}
	// A second create attaches the same structure and does not initialise.
	s2, created2, err := Create(CreateOptions{Dir: dir, Name: "APPL1", Kind: KindApplication, Size: 64 << 10, Version: testVersion,
		Init: func(m Mem) error { initRuns++; return nil }})
	if err != nil || created2 || initRuns != 1 {
		t.Fatalf("second create: %v %v %d", err, created2, initRuns)
	}
	defer s2.Close()
	*s.Mem().U64(8) = 99
	if *s2.Mem().U64(0) != 42 || *s2.Mem().U64(8) != 99 {
		t.Fatal("mappings do not share memory")
	}
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
	names, err := List(dir)
	if err != nil || len(names) != 1 || names[0] != "APPL1" {
		t.Fatalf("list %v %v", names, err)
	}
}

func TestCreateValidation(t *testing.T) {
	dir := t.TempDir()
	for _, o := range []CreateOptions{
		{Dir: dir, Name: "", Kind: KindAdmin, Size: 1 << 20, Version: 1},
		{Dir: dir, Name: ".hidden", Kind: KindAdmin, Size: 1 << 20, Version: 1},
		{Dir: dir, Name: "a/b", Kind: KindAdmin, Size: 1 << 20, Version: 1},
		{Dir: dir, Name: "OK", Kind: 9, Size: 1 << 20, Version: 1},
		{Dir: dir, Name: "OK", Kind: KindAdmin, Size: 100, Version: 1},
		{Dir: dir, Name: "OK", Kind: KindAdmin, Size: 1 << 20, Version: 0},
	} {
		if _, _, err := Create(o); err == nil {
			t.Errorf("create %+v: no error", o)
		}
	}
}

func TestConcurrentCreateProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process")
	}
	for round := 0; round < 5; round++ {
		dir := t.TempDir()
		const n = 6
		start := time.Now().Add(150 * time.Millisecond).UnixNano()
		cmds := make([]*testproc.Proc, n)
		outs := make([][]byte, n)
		errs := make(chan error, n)
		for i := range cmds {
			cmds[i] = testproc.Command(t, "create")
			cmds[i].Env = append(cmds[i].Env, "SHM_DIR="+dir, "SHM_NAME=ADMIN", "SHM_START="+strconv.FormatInt(start, 10))
		}
		for i := range cmds {
			go func(i int) {
				var err error
				outs[i], err = cmds[i].CombinedOutput()
				errs <- err
			}(i)
		}
		for range cmds {
			if err := <-errs; err != nil {
				t.Fatalf("child: %v", err)
			}
		}
		creators := 0
		var stamp string
		for i := range outs {
			var created, ok bool
			var pid uint64
			if _, err := fmt.Sscan(string(outs[i]), &created, &pid, &ok); err != nil {
				t.Fatalf("child output %q: %v", outs[i], err)
			}
			if !ok {
				t.Fatalf("child %d attached a half-initialised structure: %q", i, outs[i])
			}
			if created {
				creators++
			}
			if stamp == "" {
				stamp = fmt.Sprint(pid)
			} else if stamp != fmt.Sprint(pid) {
				t.Fatalf("children saw different structures: %s vs %d", stamp, pid)
			}
		}
		if creators != 1 {
			t.Fatalf("round %d: %d creators", round, creators)
		}
		ents, _ := os.ReadDir(dir)
		if len(ents) != 1 {
			t.Fatalf("temporaries left behind: %v", ents)
		}
	}
}

func writeFile(t *testing.T, dir, name string, b []byte) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), b, FileMode); err != nil {
		t.Fatal(err)
	}
}

func TestAttachRefusals(t *testing.T) {
	dir := t.TempDir()
	good := encodeHeader(Header{Version: testVersion, Kind: KindApplication, Size: 2 * PageSize, Created: time.Now(), DataOff: HeaderSize, Name: "S"})
	full := append(append([]byte{}, good...), make([]byte, PageSize)...)

	check := func(name string, b []byte, want error, version uint32) {
		t.Helper()
		writeFile(t, dir, name, b)
		_, err := Attach(dir, name, version)
		if !errors.Is(err, want) {
			t.Errorf("%s: got %v, want %v", name, err, want)
			return
		}
		var se *Error
		if !errors.As(err, &se) || se.Path != filepath.Join(dir, name) || se.Hint == "" {
			t.Errorf("%s: error %#v lacks path or hint", name, err)
		}
	}
	// A well-formed file named differently from its header is corrupt.
	check("S2", full, ErrCorrupt, testVersion)

	bad := append([]byte{}, full...)
	copy(bad, "NOTACF!!")
	check("BADMAGIC", bad, ErrBadMagic, testVersion)

	writeFile(t, dir, "S", full)
	if s, err := Attach(dir, "S", testVersion); err != nil {
		t.Fatalf("good file: %v", err)
	} else {
		s.Close()
	}
	if _, err := Attach(dir, "S", testVersion+1); !errors.Is(err, ErrVersion) {
		t.Errorf("version: %v", err)
	}
	writeFile(t, dir, "S", good) // header says two pages, file has one
	if _, err := Attach(dir, "S", testVersion); !errors.Is(err, ErrTruncated) {
		t.Errorf("truncated: %v", err)
	}
	writeFile(t, dir, "S", good[:100])
	if _, err := Attach(dir, "S", testVersion); !errors.Is(err, ErrTruncated) {
		t.Errorf("short: %v", err)
	}
	writeFile(t, dir, "S", nil)
	if _, err := Attach(dir, "S", testVersion); !errors.Is(err, ErrTruncated) {
		t.Errorf("empty: %v", err)
	}
	flipped := append([]byte{}, full...)
	flipped[offSize] ^= 1
	writeFile(t, dir, "S", flipped)
	if _, err := Attach(dir, "S", testVersion); !errors.Is(err, ErrCorrupt) {
		t.Errorf("checksum: %v", err)
	}
	if _, err := Attach(dir, "MISSING", testVersion); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing: %v", err)
	}
	if _, err := Attach(dir, "../etc", testVersion); !errors.Is(err, ErrBadName) {
		t.Errorf("bad name: %v", err)
	}
}

func TestAttachPermission(t *testing.T) {
	dir := t.TempDir()
	s, _, err := Create(CreateOptions{Dir: filepath.Join(dir, "cf"), Name: "ADMIN", Kind: KindAdmin, Size: 64 << 10, Version: testVersion})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if os.Geteuid() != 0 {
		if err := os.Chmod(filepath.Join(dir, "cf", "ADMIN"), 0); err != nil {
			t.Fatal(err)
		}
		if _, err := Attach(filepath.Join(dir, "cf"), "ADMIN", testVersion); !errors.Is(err, ErrPermission) {
			t.Fatalf("got %v", err)
		}
		return
	}
	// As root file modes do not apply: attach from a child running as nobody,
	// from a copy of the test binary that nobody may execute.
	bin := testproc.CopyBinary(t, dir)
	cmd := testproc.CommandBinary(t, bin, "attach")
	cmd.Env = append(cmd.Env, "SHM_DIR="+filepath.Join(dir, "cf"), "SHM_NAME=ADMIN")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v %s", err, out)
	}
	if got := string(out); got != ErrPermission.Error()+"\n" {
		t.Fatalf("child as nobody got %q", got)
	}
}

func TestFaultBecomesError(t *testing.T) {
	dir := t.TempDir()
	s, _, err := Create(CreateOptions{Dir: dir, Name: "APPL1", Kind: KindApplication, Size: 1 << 20, Version: testVersion})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := os.Truncate(filepath.Join(dir, "APPL1"), PageSize); err != nil {
		t.Fatal(err)
	}
	if err := s.Check(); !errors.Is(err, ErrTruncated) {
		t.Fatalf("check after truncate: %v", err)
	}
	m := s.Mem()
	err = Guard(func() error {
		atomic.StoreUint64(m.U64(m.Len()-8), 1)
		return nil
	})
	if !errors.Is(err, ErrFault) {
		t.Fatalf("touching a truncated page: %v", err)
	}
	if _, err := Attach(dir, "APPL1", testVersion); !errors.Is(err, ErrTruncated) {
		t.Fatalf("attach truncated: %v", err)
	}
	os.Remove(filepath.Join(dir, "APPL1"))
	if err := s.Check(); !errors.Is(err, ErrNotFound) && !errors.Is(err, ErrTruncated) {
		t.Fatalf("check after remove: %v", err)
	}
}

func TestStaleTempRemoved(t *testing.T) {
	dir := t.TempDir()
	// A pid that cannot be running: above pid_max.
	stale := filepath.Join(dir, ".APPL1.999999999.abcdef.tmp")
	writeFile(t, dir, ".APPL1.999999999.abcdef.tmp", []byte("x"))
	s, _, err := Create(CreateOptions{Dir: dir, Name: "APPL1", Kind: KindApplication, Size: 64 << 10, Version: testVersion})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Fatalf("stale temporary kept: %v", err)
	}
}

func TestMemBounds(t *testing.T) {
	b := make([]byte, 32) // heap allocations of this size are 8-byte aligned
	m := MemOf(b)
	*m.U64(24) = 5
	if binary.LittleEndian.Uint64(b[24:]) != 5 {
		t.Fatal("U64 does not alias")
	}
	for _, f := range []func(){
		func() { m.U64(32) }, func() { m.U64(4) }, func() { m.U32(30) }, func() { m.Bytes(30, 3) }, func() { m.Sub(8, 32) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Error("no panic on out-of-range access")
				}
			}()
			f()
		}()
	}
}

func FuzzDecodeHeader(f *testing.F) {
	good := encodeHeader(Header{Version: 3, Kind: KindAdmin, Size: 1 << 20, Created: time.Unix(1, 0), DataOff: HeaderSize, Name: "ADMIN"})
	f.Add(good)
	f.Add(good[:64])
	f.Add([]byte{})
	f.Add([]byte(Magic))
	torn := append([]byte{}, good...)
	binary.LittleEndian.PutUint64(torn[offSize:], 1<<62)
	f.Add(torn)
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := DecodeHeader(b, 0)
		if err == nil && (!ValidName(h.Name) || h.Size < 2*PageSize) {
			t.Fatalf("accepted bad header %+v", h)
		}
	})
}

// FuzzAttach writes random bytes over a valid header and attaches the file:
// attach must fail cleanly or succeed, never crash.
func FuzzAttach(f *testing.F) {
	f.Add(uint16(0), []byte{0xff})
	f.Add(uint16(8), []byte{9, 9, 9, 9})
	f.Add(uint16(16), []byte{0, 0, 0, 0, 0, 0, 0, 0x40})
	f.Add(uint16(40), []byte("OTHER\x00"))
	f.Add(uint16(120), []byte{1, 2, 3})
	f.Add(uint16(4000), []byte{})
	dir := f.TempDir()
	base := encodeHeader(Header{Version: testVersion, Kind: KindApplication, Size: 2 * PageSize, Created: time.Now(), DataOff: HeaderSize, Name: "F"})
	base = append(base, make([]byte, PageSize)...)
	f.Fuzz(func(t *testing.T, off uint16, patch []byte) {
		b := append([]byte{}, base...)
		if int(off) < len(b) {
			copy(b[off:], patch)
		}
		if len(patch) > 0 && patch[0]&1 == 1 { // sometimes cut the file too
			b = b[:int(off)%len(b)]
		}
		writeFile(t, dir, "F", b)
		s, err := Attach(dir, "F", testVersion)
		if err == nil {
			// Touch the whole mapping: a success must be fully mapped.
			m := s.Mem()
			for o := uint64(0); o < m.Len(); o += PageSize {
				_ = *m.U64(o)
			}
			s.Close()
		}
	})
}

// TestRecreate: a structure recreated in place of a damaged file is whole
// under its name at once; a process that had the old file mapped keeps
// its mapping, and no temporary file is left.
func TestRecreate(t *testing.T) {
	dir := t.TempDir()
	o := CreateOptions{Dir: dir, Name: "LB", Kind: KindLogBuffer, Size: 4 * PageSize, Version: testVersion,
		Init: func(m Mem) error { atomic.StoreUint64(m.U64(0), 1); return nil }}
	old, _, err := Create(o)
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	if err := os.Truncate(filepath.Join(dir, "LB"), 100); err != nil {
		t.Fatal(err)
	}
	if _, err := Attach(dir, "LB", testVersion); !errors.Is(err, ErrTruncated) {
		t.Fatalf("attach of the damaged file: %v", err)
	}
	o.Init = func(m Mem) error { atomic.StoreUint64(m.U64(0), 2); return nil }
	nm, err := Recreate(o)
	if err != nil {
		t.Fatal(err)
	}
	defer nm.Close()
	a, err := Attach(dir, "LB", testVersion)
	if err != nil {
		t.Fatalf("attach after Recreate: %v", err)
	}
	defer a.Close()
	if v := atomic.LoadUint64(a.Mem().U64(0)); v != 2 {
		t.Fatalf("the recreated structure holds %d", v)
	}
	if err := old.Check(); !errors.Is(err, ErrTruncated) {
		t.Fatalf("the old mapping's check: %v", err)
	}
	names, _ := os.ReadDir(dir)
	if len(names) != 1 {
		t.Fatalf("files left: %v", names)
	}
}
