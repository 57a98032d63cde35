package testproc

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// EnvRole is the environment variable naming the role a child runs.
const EnvRole = "QMGR_TESTPROC_ROLE"

// A RoleFunc runs a child: args are the arguments after the binary's
// name; its result is the exit status.
type RoleFunc func(args []string) int

var (
	roles    = map[string]RoleFunc{}
	commands = map[string]RoleFunc{}
)

// Register makes name a role: a child started with Command(t, name, ...)
// runs fn. Call it before Main.
func Register(name string, fn RoleFunc) {
	if _, dup := roles[name]; dup || name == "" {
		panic("testproc: role " + name + " registered twice or empty")
	}
	roles[name] = fn
}

// RegisterCommand makes the binary run fn when its first argument is one
// of names, in whatever environment (the test binary standing in for a
// program that re-executes itself with a command).
func RegisterCommand(fn RoleFunc, names ...string) {
	for _, n := range names {
		commands[n] = fn
	}
}

// Main runs the role this process was started in, when it is a child, and
// exits with its status; otherwise it runs the tests and exits.
func Main(m *testing.M) {
	if r := os.Getenv(EnvRole); r != "" {
		fn, ok := roles[r]
		if !ok {
			fmt.Fprintf(os.Stderr, "testproc: unknown role %q (registered: %s)\n", r, strings.Join(names(roles), " "))
			os.Exit(2)
		}
		os.Exit(fn(os.Args[1:]))
	}
	if len(os.Args) > 1 {
		if fn, ok := commands[os.Args[1]]; ok {
			os.Exit(fn(os.Args[1:]))
		}
	}
	os.Exit(m.Run())
}

func names(m map[string]RoleFunc) []string {
	var n []string
	for k := range m {
		n = append(n, k)
	}
	sort.Strings(n)
	return n
}

// Proc is a child process of a test.
type Proc struct {
	*exec.Cmd
	t    testing.TB
	role string
	out  *buffer

	mu      sync.Mutex
	waiting bool          // Wait was called
	done    chan struct{} // closed when Wait returned
}

// Command is the test binary to be run in role with args (see the package
// doc for what every child gets). Its fields may be changed before it
// starts: Env (Command sets it to this process's environment and the
// role), Stdin, ExtraFiles, SysProcAttr fields other than Pdeathsig, and
// Stdout or Stderr (to a file, say: they are then not captured).
func Command(t testing.TB, role string, args ...string) *Proc {
	t.Helper()
	if _, ok := roles[role]; !ok {
		t.Fatalf("testproc: role %q not registered (registered: %s)", role, strings.Join(names(roles), " "))
	}
	return newProc(t, role, os.Args[0], args, append(os.Environ(), EnvRole+"="+role))
}

// Exec is a child running program path (any binary, another build of this
// one) with args, with the same guarantees as Command: Pdeathsig, output
// captured, killed and reaped when the test ends.
func Exec(t testing.TB, path string, args ...string) *Proc {
	t.Helper()
	return newProc(t, path, path, args, os.Environ())
}

func newProc(t testing.TB, label, path string, args, env []string) *Proc {
	p := &Proc{Cmd: exec.Command(path, args...), t: t, role: label, out: &buffer{}, done: make(chan struct{})}
	p.Env = env
	p.Cmd.Stdout, p.Cmd.Stderr = p.out, p.out
	p.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	t.Cleanup(p.cleanup)
	return p
}

// Start starts a child in role with args (Command, then Start), failing
// the test if it cannot start.
func Start(t testing.TB, role string, args ...string) *Proc {
	t.Helper()
	p := Command(t, role, args...)
	if err := p.Start(); err != nil {
		t.Fatalf("testproc: start %s: %v", role, err)
	}
	return p
}

// Start starts the child, keeping Pdeathsig whatever SysProcAttr holds.
func (p *Proc) Start() error {
	if p.SysProcAttr == nil {
		p.SysProcAttr = &syscall.SysProcAttr{}
	}
	p.SysProcAttr.Pdeathsig = syscall.SIGKILL
	return p.Cmd.Start()
}

// Run starts the child and waits for it.
func (p *Proc) Run() error {
	if err := p.Start(); err != nil {
		return err
	}
	return p.Wait()
}

// Wait waits for the child to exit (once; the cleanup waits for a Wait in
// progress instead of calling it again).
func (p *Proc) Wait() error {
	p.mu.Lock()
	if p.waiting {
		p.mu.Unlock()
		<-p.done
		return fmt.Errorf("testproc: %s: Wait called twice", p.role)
	}
	p.waiting = true
	p.mu.Unlock()
	defer close(p.done)
	return p.Cmd.Wait()
}

// StdoutPipe is a pipe from the child's standard output (which is then
// not captured; standard error still is).
func (p *Proc) StdoutPipe() (io.ReadCloser, error) {
	p.Cmd.Stdout = nil
	return p.Cmd.StdoutPipe()
}

// Output runs the child and returns its standard output (standard error
// is captured).
func (p *Proc) Output() ([]byte, error) {
	var b bytes.Buffer
	p.Cmd.Stdout = &b
	err := p.Run()
	return b.Bytes(), err
}

// CombinedOutput runs the child and returns what it wrote on both streams.
func (p *Proc) CombinedOutput() ([]byte, error) {
	err := p.Run()
	return []byte(p.out.String()), err
}

// Log is what the child wrote to the captured streams so far.
func (p *Proc) Log() string { return p.out.String() }

// Kill SIGKILLs the child and reaps it.
func (p *Proc) Kill() {
	if p.Process == nil {
		return
	}
	p.Process.Signal(syscall.SIGKILL)
	p.reap()
}

// reap waits for the child, or for the Wait in progress.
func (p *Proc) reap() {
	p.mu.Lock()
	waiting := p.waiting
	p.mu.Unlock()
	if waiting {
		<-p.done
		return
	}
	p.Wait()
}

// cleanup kills and reaps a child still running, and writes its output
// to the log of a failed test.
func (p *Proc) cleanup() {
	if p.Process != nil {
		p.Kill()
	}
	if p.t.Failed() {
		if s := p.out.String(); s != "" {
			p.t.Logf("%s (pid %d) output:\n%s", p.role, pid(p.Process), tail(s, 20000))
		}
	}
}

func pid(p *os.Process) int {
	if p == nil {
		return 0
	}
	return p.Pid
}

// tail is the last n bytes of s.
func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

// buffer is a bytes.Buffer safe for the child's two streams at once.
type buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// CommandBinary is Command running bin, a copy of the test binary (see
// CopyBinary), instead of the test binary itself.
func CommandBinary(t testing.TB, bin, role string, args ...string) *Proc {
	t.Helper()
	p := Command(t, role, args...)
	p.Path, p.Args[0] = bin, bin
	return p
}

// CopyBinary copies the test binary into dir (mode 0755) and returns its
// path: a child running as another user (SysProcAttr.Credential) may not
// be able to execute the original.
func CopyBinary(t testing.TB, dir string) string {
	t.Helper()
	exe, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, filepath.Base(os.Args[0]))
	if err := os.WriteFile(bin, exe, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(bin, 0o755); err != nil { // whatever the umask
		t.Fatal(err)
	}
	return bin
}

// RoleEnv is the environment entry that makes the test binary run role
// (for a child started by other means than Command, such as a group
// harness's members).
func RoleEnv(role string) string { return EnvRole + "=" + role }
