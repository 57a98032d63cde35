package crashpoint

import (
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// EnvVar arms the points; see the package documentation.
const EnvVar = "QMGR_CRASHPOINT"

// OnceVar names a file that makes the armed point act in one process only:
// the first to create the file (see the package documentation).
const OnceVar = "QMGR_CRASHPOINT_ONCE"

// Point is one instrumented step.
type Point struct {
	name string
	hits atomic.Int64
}

var (
	armed       bool // written once in init, read by Hit
	counting    bool // QMGR_CRASHPOINT=count
	targetName  string
	targetN     int64         = 1
	stopInstead bool          // QMGR_CRASHPOINT=name:n:stop: SIGSTOP instead of SIGKILL
	failCount   int64         // QMGR_CRASHPOINT=name:n:fail:k: hits n..n+k-1 fail instead
	sleepFor    time.Duration // QMGR_CRASHPOINT=name:n:sleep:d: the hitting goroutine sleeps d instead
	onceFile    string
	onceMu      sync.Mutex
	onceState   int8 // 0 not tried, 1 this process owns the point, -1 another did

	mu     sync.Mutex
	points = map[string]*Point{}
)

func init() {
	v := os.Getenv(EnvVar)
	if v == "" {
		return
	}
	armed = true
	if v == "count" {
		counting = true
		return
	}
	name, rest, ok := strings.Cut(v, ":")
	targetName = name
	if ok {
		n, action, _ := strings.Cut(rest, ":")
		if k, err := strconv.ParseInt(n, 10, 64); err == nil && k > 0 {
			targetN = k
		}
		action, k, _ := strings.Cut(action, ":")
		stopInstead = action == "stop"
		if action == "sleep" {
			sleepFor = time.Second
			if d, err := time.ParseDuration(k); err == nil && d > 0 {
				sleepFor = d
			}
		}
		if action == "fail" {
			failCount = 1
			if v, err := strconv.ParseInt(k, 10, 64); err == nil && v > 0 {
				failCount = v
			}
		}
	}
	onceFile = os.Getenv(OnceVar)
}

// claimOnce reports whether this process may act at the point: always
// without a once-file; with one, only the process that created it.
func claimOnce() bool {
	if onceFile == "" {
		return true
	}
	onceMu.Lock()
	defer onceMu.Unlock()
	if onceState == 0 {
		onceState = -1
		if f, err := os.OpenFile(onceFile, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644); err == nil {
			f.Close()
			onceState = 1
		}
	}
	return onceState == 1
}

// New declares a point. Names are unique; declaring one twice is a bug.
func New(name string) *Point {
	mu.Lock()
	defer mu.Unlock()
	if _, dup := points[name]; dup {
		panic("crashpoint: duplicate point " + name)
	}
	p := &Point{name: name}
	points[name] = p
	return p
}

// Name is the point's name.
func (p *Point) Name() string { return p.name }

// Hit is the instrumented step.
func (p *Point) Hit() {
	if armed {
		p.hit()
	}
}

// Fail is a fault-injection step: it reports whether this hit must fail
// (QMGR_CRASHPOINT=name:n:fail:k makes hits n to n+k-1 fail). Armed with
// another action, it acts as Hit and reports false.
func (p *Point) Fail() bool {
	if !armed {
		return false
	}
	if failCount == 0 {
		p.hit()
		return false
	}
	n := p.hits.Add(1)
	if counting || p.name != targetName || n < targetN || n >= targetN+failCount {
		return false
	}
	return claimOnce()
}

func (p *Point) hit() {
	n := p.hits.Add(1)
	if counting || p.name != targetName || n != targetN || failCount > 0 {
		return
	}
	if !claimOnce() {
		return
	}
	if sleepFor > 0 {
		// A slow step (a disk that takes seconds to sync): this goroutine
		// waits, the rest of the process goes on.
		time.Sleep(sleepFor)
		return
	}
	if stopInstead {
		// The process stops here, in the middle of its step, until someone
		// sends SIGCONT; then it goes on as if nothing happened. The signal
		// is sent to this thread: one sent to the process may be taken by
		// another thread, and this one would run on for a while before the
		// group stop reaches it.
		runtime.LockOSThread()
		syscall.Tgkill(os.Getpid(), syscall.Gettid(), syscall.SIGSTOP)
		runtime.UnlockOSThread()
		return
	}
	syscall.Kill(os.Getpid(), syscall.SIGKILL)
	select {} // never returns: the kill is delivered before this goroutine runs again
}

// All lists the declared points, sorted.
func All() []string {
	mu.Lock()
	defer mu.Unlock()
	out := make([]string, 0, len(points))
	for n := range points {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Counts reports how often each point was hit (only when armed).
func Counts() map[string]int64 {
	mu.Lock()
	defer mu.Unlock()
	out := make(map[string]int64, len(points))
	for n, p := range points {
		out[n] = p.hits.Load()
	}
	return out
}

// Armed reports whether points are live in this process.
func Armed() bool { return armed }
