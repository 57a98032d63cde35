package chaos

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// Op types: an operation is an invocation followed by one completion, or
// by none when the process died in the call.
const (
	Invoke = "invoke" // about to call the API
	OK     = "ok"     // the call returned without error
	Fail   = "fail"   // the call returned an error that guarantees no effect
	Info   = "info"   // the call returned an error that leaves the effect unknown
)

// Operations (Op.F).
const (
	FConnect    = "connect"
	FDisconnect = "disconnect"
	FPut        = "put"
	FGet        = "get"
	FCommit     = "commit"
	FBackout    = "backout"
	FBrowse     = "browse" // the final look at a transmission queue left undrained
	FDrain      = "drain"  // the drainer's verdict on a queue: OK when it emptied it
)

// Op is one record of a client's history, a JSON line in its file. An
// invocation and its completion share Proc and Index.
type Op struct {
	Proc  string `json:"p"`  // the client process (role, number, incarnation: "p1.3")
	Index int64  `json:"i"`  // operation number within the process
	Type  string `json:"ty"` // Invoke, OK, Fail or Info
	F     string `json:"f"`  // FPut, FGet, ...
	T     int64  `json:"t"`  // CLOCK_MONOTONIC, ns (one clock for every process of the host)
	QMgr  string `json:"qm,omitempty"`
	Queue string `json:"q,omitempty"`
	Sync  bool   `json:"sp,omitempty"` // under syncpoint
	Pers  bool   `json:"per,omitempty"`
	UOW   int64  `json:"u,omitempty"` // the process's unit of work (puts and gets under syncpoint, commit, backout)
	// Msg is the message a put put or a get got: "producer:seq".
	Msg      string   `json:"m,omitempty"`
	MsgID    string   `json:"id,omitempty"` // hex, as the API returned it
	Prio     int      `json:"pr,omitempty"`
	Backouts int      `json:"bo,omitempty"`
	Msgs     []string `json:"ms,omitempty"` // commit and backout: the unit of work's messages (put and got)
	RC       int      `json:"rc,omitempty"` // MQ reason code of an error
	Err      string   `json:"e,omitempty"`

	// Where the record was read from, for reports.
	File string `json:"-"`
	Line int    `json:"-"`
}

// String is the record as it appears in reports: file:line and the JSON.
func (o *Op) String() string {
	b, _ := json.Marshal(o)
	if o.File == "" {
		return string(b)
	}
	return fmt.Sprintf("%s:%d %s", o.File, o.Line, b)
}

// Now is the time every history and the fault log use: CLOCK_MONOTONIC,
// which all processes of a host share (Go's monotonic readings are per
// process) and which no clock adjustment moves.
func Now() int64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		panic("chaos: clock_gettime: " + err.Error()) // never fails on Linux
	}
	return ts.Nano()
}

// Recorder appends a process's records to its history file: one write(2)
// per record, so what was written survives SIGKILL of the process (it is in
// the kernel's page cache); with sync set, also one fsync per record (a
// host crash, which the harness does not cause, would need it).
type Recorder struct {
	mu   sync.Mutex
	f    *os.File
	sync bool
	proc string
	next int64
	err  error
}

// NewRecorder creates the history file path for process proc.
func NewRecorder(path, proc string, sync bool) (*Recorder, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("chaos: history: %w", err)
	}
	return &Recorder{f: f, sync: sync, proc: proc}, nil
}

// Invoke records the invocation of op (its Type, Proc, Index and T are
// set here) and returns its index for the completion.
func (r *Recorder) Invoke(op Op) int64 {
	r.mu.Lock()
	r.next++
	i := r.next
	r.mu.Unlock()
	op.Index, op.Type = i, Invoke
	r.write(op)
	return i
}

// Complete records the completion of invocation i: op.Type is OK, Fail
// or Info.
func (r *Recorder) Complete(i int64, op Op) {
	op.Index = i
	r.write(op)
}

func (r *Recorder) write(op Op) {
	op.Proc = r.proc
	if op.T == 0 {
		op.T = Now()
	}
	b, err := json.Marshal(&op)
	if err == nil {
		_, err = r.f.Write(append(b, '\n'))
	}
	if err == nil && r.sync {
		err = r.f.Sync()
	}
	if err != nil {
		r.mu.Lock()
		if r.err == nil {
			r.err = err
		}
		r.mu.Unlock()
	}
}

// Err is the first write error (a history that could not be written is
// a harness failure, not an anomaly).
func (r *Recorder) Err() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err
}

// Close closes the file.
func (r *Recorder) Close() error { return errors.Join(r.Err(), r.f.Close()) }

// ReadHistories reads every *.jsonl file in dir. A last line cut short
// (a process killed in the middle of its write) is dropped.
func ReadHistories(dir string) ([]Op, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.jsonl"))
	if err != nil {
		return nil, err
	}
	sort.Strings(files)
	var ops []Op
	for _, path := range files {
		got, err := readHistory(path)
		if err != nil {
			return nil, err
		}
		ops = append(ops, got...)
	}
	return ops, nil
}

func readHistory(path string) ([]Op, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var ops []Op
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	n := 0
	var pending error
	for sc.Scan() {
		n++
		if pending != nil {
			return nil, pending // a bad line that is not the last
		}
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		var op Op
		if err := json.Unmarshal([]byte(line), &op); err != nil {
			pending = fmt.Errorf("chaos: %s:%d: %w", path, n, err)
			continue
		}
		op.File, op.Line = filepath.Base(path), n
		ops = append(ops, op)
	}
	return ops, sc.Err()
}
