package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"time"

	"github.com/qmgr/qmgr/group"
	"github.com/qmgr/qmgr/mq"
	"github.com/qmgr/qmgr/perf/benchgroup"
)

var emit = benchgroup.Emit

func main() {
	benchgroup.RunChild(os.Args, "smdsbench", func([]string) error { return nil })
	rounds := flag.Int("rounds", 3, "runs per figure; the best is reported")
	mib := flag.Int("mib", 256, "MiB of bodies per run of a put/get figure")
	prof := flag.String("cpuprofile", "", "write a CPU profile of the application side to this file")
	flag.Parse()
	if *prof != "" {
		f, err := os.Create(*prof)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "smdsbench:", err)
			os.Exit(1)
		}
		defer pprof.StopCPUProfile()
	}
	if err := run(*rounds, *mib); err != nil {
		fmt.Fprintln(os.Stderr, "smdsbench:", err)
		pprof.StopCPUProfile()
		os.Exit(1)
	}
}

func run(rounds, mib int) error {
	dir, err := os.MkdirTemp("", "qmgr-smdsbench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	cfg := group.Config{Name: "SBENCH", DataDir: filepath.Join(dir, "data"), CFDir: filepath.Join(dir, "cf"), AppSize: 64 << 20}
	b, err := benchgroup.New(cfg, dir)
	if err != nil {
		return err
	}
	defer b.Close()
	if err := b.Start("QM1"); err != nil {
		return err
	}
	for _, cmd := range []string{
		"DEFINE CFSTRUCT(OFF) SIZE(64) OFFLOAD(SMDS) OFFLDSZ(16K)",
		"DEFINE CFSTRUCT(BIG) SIZE(256) ELEMSIZE(65536)",
		"DEFINE QLOCAL(QO) CFSTRUCT(OFF) MAXMSGL(4194304)",
		"DEFINE QLOCAL(QC) CFSTRUCT(BIG) MAXMSGL(4194304)",
	} {
		if err := b.MQSC("QM1", cmd); err != nil {
			return fmt.Errorf("%s: %w", cmd, err)
		}
	}
	mq.SMDSCacheBytes = 512 << 20 // holds the cache figure's messages
	c, err := b.Connect("QM1")
	if err != nil {
		return err
	}
	defer c.Disconnect()
	qo, err := c.Open("QO", mq.OpenOptions{Input: true, Output: true, Browse: true})
	if err != nil {
		return err
	}
	qc, err := c.Open("QC", mq.OpenOptions{Input: true, Output: true})
	if err != nil {
		return err
	}
	for _, f := range []struct {
		name string
		size int
	}{{"64KiB", 64 << 10}, {"1MiB", 1 << 20}} {
		n := max(mib<<20/f.size, 32)
		var smds, cf, raw []float64
		for range rounds { // alternately, so that drift hits all alike
			v, err := putGet(qo, f.size, n)
			if err != nil {
				return fmt.Errorf("smds %s: %w", f.name, err)
			}
			smds = append(smds, v)
			if v, err = putGet(qc, f.size, n); err != nil {
				return fmt.Errorf("cf %s: %w", f.name, err)
			}
			cf = append(cf, v)
			if v, err = rawWriteRead(cfg.DataDir, f.size, n); err != nil {
				return err
			}
			raw = append(raw, v)
		}
		s, cv, r := slices.Max(smds), slices.Max(cf), slices.Max(raw)
		emit("smds.putget."+f.name, s, "msgs/s")
		emit("smds.putget."+f.name+".MBps", s*float64(f.size)/1e6, "MB/s")
		emit("cf.putget."+f.name, cv, "msgs/s")
		emit("cf.putget."+f.name+".MBps", cv*float64(f.size)/1e6, "MB/s")
		emit("raw.writeread."+f.name+".MBps", r*float64(f.size)/1e6, "MB/s")
		emit("smds.putget."+f.name+".vs.cf", s/cv, "ratio")
		emit("smds.putget."+f.name+".vs.raw", s/r, "ratio")
	}
	hit, miss, err := cacheFigures(qo, rounds)
	if err != nil {
		return err
	}
	emit("smds.cache.hit.get.1MiB", hit, "us")
	emit("smds.cache.miss.get.1MiB", miss, "us")
	emit("smds.cache.hit.vs.miss", miss/hit, "ratio")
	return nil
}

// putGet puts n messages of size bytes to q in batches of 16 and gets each
// batch back: messages per second.
func putGet(q *mq.Queue, size, n int) (float64, error) {
	body := make([]byte, size)
	for i := range body {
		body[i] = byte(i)
	}
	t0 := time.Now()
	for i := 0; i < n; i += 16 {
		for range 16 {
			if err := q.Put(&mq.Message{Body: body, Persistence: mq.NotPersistent}, mq.PutOptions{}); err != nil {
				return 0, err
			}
		}
		for range 16 {
			m, err := q.Get(mq.GetOptions{})
			if err != nil {
				return 0, err
			}
			if len(m.Body) != size {
				return 0, fmt.Errorf("got %d bytes, want %d", len(m.Body), size)
			}
		}
	}
	return float64((n+15)/16*16) / time.Since(t0).Seconds(), nil
}

// rawWriteRead writes and reads back n bodies of size bytes in batches of
// 16 in a file of dir: bodies per second.
func rawWriteRead(dir string, size, n int) (float64, error) {
	f, err := os.CreateTemp(dir, "raw")
	if err != nil {
		return 0, err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	body := make([]byte, size)
	buf := make([]byte, size)
	t0 := time.Now()
	for i := 0; i < n; i += 16 {
		for k := range 16 {
			if _, err := f.WriteAt(body, int64(k*size)); err != nil {
				return 0, err
			}
		}
		for k := range 16 {
			if _, err := f.ReadAt(buf, int64(k*size)); err != nil {
				return 0, err
			}
		}
	}
	return float64((n+15)/16*16) / time.Since(t0).Seconds(), nil
}

// cacheFigures puts 64 offloaded messages of 1 MiB and browses them: the
// first browse after each put round reads the data set (the cache is
// emptied by fresh messages: new runs), the second finds them in the
// cache. Microseconds per message of each, the best round.
func cacheFigures(q *mq.Queue, rounds int) (hit, miss float64, err error) {
	const n, size = 64, 1 << 20
	body := make([]byte, size)
	browse := func() (float64, error) {
		cur, err := q.Browse()
		if err != nil {
			return 0, err
		}
		t0 := time.Now()
		k := 0
		for {
			m, err := cur.Next(mq.GetOptions{})
			if errors.Is(err, mq.ErrNoMessage) {
				break
			}
			if err != nil {
				return 0, err
			}
			if len(m.Body) != size {
				return 0, fmt.Errorf("browsed %d bytes", len(m.Body))
			}
			k++
		}
		if k != n {
			return 0, fmt.Errorf("browsed %d messages, want %d", k, n)
		}
		return float64(time.Since(t0).Microseconds()) / n, nil
	}
	hit, miss = 1e18, 1e18
	for range rounds {
		for i := range n {
			body[0] = byte(i)
			if err := q.Put(&mq.Message{Body: body, Persistence: mq.NotPersistent}, mq.PutOptions{}); err != nil {
				return 0, 0, err
			}
		}
		m, err := browse()
		if err != nil {
			return 0, 0, err
		}
		time.Sleep(10 * time.Millisecond) // the cache applies its sets asynchronously
		h, err := browse()
		if err != nil {
			return 0, 0, err
		}
		miss, hit = min(miss, m), min(hit, h)
		for range n {
			if _, err := q.Get(mq.GetOptions{}); err != nil {
				return 0, 0, err
			}
		}
	}
	return hit, miss, nil
}
