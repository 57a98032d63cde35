package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"time"

	"github.com/qmgr/qmgr/group"
	"github.com/qmgr/qmgr/mq"
	"github.com/qmgr/qmgr/perf/benchgroup"
	"github.com/qmgr/qmgr/recovery/plog"
	"github.com/qmgr/qmgr/recovery/replay"
	"github.com/qmgr/qmgr/recovery/rlog"
	"golang.org/x/sys/unix"
)

func main() {
	benchgroup.RunChild(os.Args, "persistbench", app)
	n := flag.Int("n", 200_000, "messages per run (all producers together)")
	rounds := flag.Int("rounds", 3, "runs per figure; the best is reported")
	gib := flag.Float64("replay-gib", 1, "GiB of log for the recovery time figure (0: skip it)")
	flag.Parse()
	if err := run(*n, *rounds); err != nil {
		fmt.Fprintln(os.Stderr, "persistbench:", err)
		os.Exit(1)
	}
	if err := replayGiB(*gib); err != nil {
		fmt.Fprintln(os.Stderr, "persistbench:", err)
		os.Exit(1)
	}
}

var emit = benchgroup.Emit

// fdatasyncRate is 4 KiB write + fdatasync per second in dir.
func fdatasyncRate(dir string) (float64, error) {
	f, err := os.Create(filepath.Join(dir, "baseline"))
	if err != nil {
		return 0, err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	buf := make([]byte, 4096)
	const n = 500
	t0 := time.Now()
	for i := range n {
		if _, err := f.WriteAt(buf, int64(i%16)*4096); err != nil {
			return 0, err
		}
		if err := unix.Fdatasync(int(f.Fd())); err != nil {
			return 0, err
		}
	}
	return n / time.Since(t0).Seconds(), nil
}

func run(n, rounds int) error {
	dir, err := os.MkdirTemp("", "qmgr-persistbench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	cfg := group.Config{Name: "PBENCH", DataDir: filepath.Join(dir, "data"), CFDir: filepath.Join(dir, "cf"), AppSize: 512 << 20}
	b, err := benchgroup.New(cfg, dir)
	if err != nil {
		return err
	}
	defer b.Close()
	if err := b.Start("QM1"); err != nil {
		return err
	}
	if err := b.MQSC("QM1", fmt.Sprintf("DEFINE QLOCAL(P.Q) MAXDEPTH(%d)", n+1000)); err != nil {
		return err
	}
	base, err := fdatasyncRate(b.Cfg.DataDir)
	if err != nil {
		return err
	}
	emit("baseline.fdatasync.per.s", base, "syncs/s")
	figures := []struct {
		name       string
		producers  int
		commit     int
		persistent bool
	}{
		{"persist.put.64B", 4, 100, true},
		{"persist.put.64B.p1", 1, 100, true},
		{"persist.put.64B.p16", 16, 100, true},
		{"persist.put.nosync.64B", 16, 0, true},
		{"nonpersist.put.64B", 4, 100, false},
	}
	for _, f := range figures {
		count := n
		if f.commit == 0 {
			count = n / 4 // a sync per group of puts: fewer messages suffice
		}
		var vals []float64
		for range rounds {
			if err := b.MQSC("QM1", "CLEAR QLOCAL(P.Q)"); err != nil {
				return err
			}
			v, err := produce(b, f.producers, count, f.commit, f.persistent)
			if err != nil {
				return fmt.Errorf("%s: %w", f.name, err)
			}
			vals = append(vals, v)
		}
		best := slices.Max(vals)
		emit(f.name, best, "msgs/s")
		emit(f.name+".vs.baseline.fdatasync", best/base, "ratio")
	}
	// Replay what the runs logged (several hundred thousand records).
	dirs, err := replay.DirsIn(nil, filepath.Join(b.Cfg.DataDir, "log"))
	if err != nil {
		return err
	}
	var best *replay.Result
	var bestT time.Duration
	for range rounds {
		t0 := time.Now()
		res, err := replay.Run(replay.Options{LogDirs: dirs, Structure: "APPL1"})
		if err != nil {
			return fmt.Errorf("replay: %w", err)
		}
		if el := time.Since(t0); best == nil || el < bestT {
			best, bestT = res, el
		}
	}
	emit("recovery.replay.records", float64(best.Records)/bestT.Seconds(), "records/s")
	emit("recovery.replay.MBps", float64(best.Bytes)/bestT.Seconds()/1e6, "MB/s")
	emit("recovery.replay.log.records", float64(best.Records), "records")
	return nil
}

// produce runs producers processes putting count messages together and
// returns messages per second.
func produce(b *benchgroup.Group, producers, count, commit int, persistent bool) (float64, error) {
	per := count / producers
	type proc struct {
		cmd *exec.Cmd
		in  io.WriteCloser
	}
	var ps []proc
	for range producers {
		cmd := exec.Command(b.Exe, b.Args("app", strconv.Itoa(per), strconv.Itoa(commit), strconv.FormatBool(persistent))...)
		cmd.Stderr = os.Stderr
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		out, _ := cmd.StdoutPipe()
		in, _ := cmd.StdinPipe()
		if err := cmd.Start(); err != nil {
			return 0, err
		}
		if line, err := bufio.NewReader(out).ReadString('\n'); err != nil || line != "ready\n" {
			return 0, fmt.Errorf("producer not ready: %q %v", line, err)
		}
		ps = append(ps, proc{cmd, in})
	}
	t0 := time.Now()
	for _, p := range ps {
		p.in.Close() // go
	}
	for _, p := range ps {
		if err := p.cmd.Wait(); err != nil {
			return 0, fmt.Errorf("producer: %w", err)
		}
	}
	return float64(per*producers) / time.Since(t0).Seconds(), nil
}

// app puts n 64-byte messages to P.Q through QM1, committing every commit
// (0: outside syncpoint), once its stdin closes. Args: n, commit,
// persistent, then the group flags.
func app(args []string) error {
	n, _ := strconv.Atoi(args[0])
	commit, _ := strconv.Atoi(args[1])
	persistent, _ := strconv.ParseBool(args[2])
	cfg, err := benchgroup.ParseArgs(args[3:])
	if err != nil {
		return err
	}
	c, err := mq.Connect(mq.ConnectOptions{Group: cfg.Name, QMgr: "QM1", DataDir: cfg.DataDir, CFDir: cfg.CFDir})
	if err != nil {
		return err
	}
	defer c.Disconnect()
	q, err := c.Open("P.Q", mq.OpenOptions{Output: true})
	if err != nil {
		return err
	}
	fmt.Println("ready")
	io.Copy(io.Discard, os.Stdin)
	p := mq.NotPersistent
	if persistent {
		p = mq.Persistent
	}
	body := make([]byte, 64)
	sync := commit > 0
	for i := 1; i <= n; i++ {
		if err := q.Put(&mq.Message{Body: body, Persistence: p}, mq.PutOptions{Syncpoint: sync}); err != nil {
			return fmt.Errorf("message %d: %w", i, err)
		}
		if sync && (i%commit == 0 || i == n) {
			if err := c.Commit(); err != nil {
				return err
			}
		}
	}
	return nil
}

// replayGiB writes gib GiB of log and times its replay.
func replayGiB(gib float64) error {
	if gib <= 0 {
		return nil
	}
	dir, err := os.MkdirTemp("", "qmgr-persistbench-log-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	var src rlog.Counter
	l, err := rlog.Open(rlog.Config{Dir: filepath.Join(dir, "QM1"), LRSN: &src})
	if err != nil {
		return err
	}
	body := make([]byte, 64)
	var buf []byte
	var last rlog.Ticket
	key, uow := uint64(1), uint64(1)<<40
	limit := uint64(gib * (1 << 30))
	for l.Stats().Bytes+uint64(64<<20) < limit || l.Stats().Bytes == 0 {
		for range 1000 {
			uow++
			for range 10 {
				r := plog.Record{Type: plog.TypePut, UOW: uow, Structure: "APPL1", Queue: "Q", Key: key, Body: body}
				buf = plog.Append(buf[:0], &r)
				if last, err = l.Append(uint8(r.Type), buf); err != nil {
					return err
				}
				key++
			}
			c := plog.Record{Type: plog.TypeCommit, UOW: uow}
			buf = plog.Append(buf[:0], &c)
			l.Append(uint8(c.Type), buf)
			uow++
			for k := key - 10; k < key-1; k++ { // nine of the ten got
				g := plog.Record{Type: plog.TypeGet, UOW: uow, Structure: "APPL1", Queue: "Q", Key: k}
				buf = plog.Append(buf[:0], &g)
				l.Append(uint8(g.Type), buf)
			}
			c.UOW = uow
			buf = plog.Append(buf[:0], &c)
			last, _ = l.Append(uint8(c.Type), buf)
		}
		if err := l.Wait(last); err != nil {
			return err
		}
	}
	size := l.Stats().Bytes
	if err := l.Close(); err != nil {
		return err
	}
	t0 := time.Now()
	res, err := replay.Run(replay.Options{LogDirs: []string{filepath.Join(dir, "QM1")}, Structure: "APPL1"})
	if err != nil {
		return err
	}
	el := time.Since(t0)
	emit("recovery.log.bytes", float64(size), "bytes")
	emit("recovery.1GiB.s", el.Seconds()*float64(1<<30)/float64(size), "s")
	emit("recovery.1GiB.records", float64(res.Records)/el.Seconds(), "records/s")
	return nil
}
