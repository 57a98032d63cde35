package main

import (
	"bufio"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/qmgr/qmgr/channel"
	"github.com/qmgr/qmgr/group"
	"github.com/qmgr/qmgr/lockfree"
	"github.com/qmgr/qmgr/mq"
	"github.com/qmgr/qmgr/perf/benchgroup"
)

func main() {
	benchgroup.RunChild(os.Args, "chanbench", nil) // a member, or its channel initiator
	var o options
	flag.IntVar(&o.n64, "n64", 200_000, "64-byte messages per run")
	flag.IntVar(&o.n4k, "n4k", 20_000, "4 KiB messages per run")
	flag.IntVar(&o.n1m, "n1m", 300, "1 MiB messages per run (they must fit in -large-size)")
	flag.IntVar(&o.rounds, "rounds", 3, "runs per throughput figure; the best is reported")
	flag.IntVar(&o.kills, "kills", 20, "member kills for the failover figures")
	flag.IntVar(&o.batch, "batchsz", 50, "BATCHSZ of the channel (both ends)")
	flag.Uint64Var(&o.largeMiB, "large-size", 1024, "MiB of each side's CFSTRUCT LARGE, which holds the 1 MiB messages of a run")
	flag.Uint64Var(&o.appMiB, "app-size", 256, "MiB of each side's application structure (failover takes longer with larger ones: repair scans the structure)")
	flag.BoolVar(&o.keep, "keep", false, "keep the member logs (their directory is printed)")
	flag.IntVar(&o.elemSize, "app-element-size", 256, "bytes per data element of both sides' application structures")
	flag.BoolVar(&o.offload, "offload", true, "also measure the 1 MiB messages through a transmission queue (and target) in a structure with OFFLOAD(SMDS) OFFLDSZ(64K), against -large-element-size's in the same rounds")
	flag.IntVar(&o.largeElem, "large-element-size", 1024, "ELEMSIZE of the structure (CFSTRUCT LARGE, on both sides) the 1 MiB messages go through; 0: through the application structure like the others")
	flag.Parse()
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "chanbench:", err)
		os.Exit(1)
	}
}

type options struct {
	n64, n4k, n1m, rounds, kills, batch int
	keep, offload                       bool
	appMiB, largeMiB                    uint64
	elemSize, largeElem                 int
}

// route is the way messages go: a remote queue definition through QM1,
// its transmission queue and sender channel, and the target queue at
// RQM, in structure on both sides.
type route struct {
	rq, xq, channel, target, structure string
	offload                            bool // the structure has OFFLOAD(SMDS) OFFLDSZ(64K)
}

// benchKey is the secret (AUTHKEY) of the benchmark's channels.
const benchKey = "chanbench-channel-secret-0123456789"

var (
	small = route{"RQ", "XQ", "TO.R", "TARGET", "APPL1", false}
	// large: 1 MiB messages, in a structure of large elements (CFSTRUCT
	// ELEMSIZE), as a deployment that moves large messages would have.
	large = route{"RQL", "XQL", "TO.RL", "TARGETL", "LARGE", false}
	// offl: 1 MiB messages whose bodies go to shared message data sets
	// on both sides (the sender sends them from its data set's mapping,
	// the receiver writes them to its own).
	offl = route{"RQO", "XQO", "TO.RO", "TARGETO", "OFF", true}
)

// define defines r on both sides (its structure first, with elements of
// elemSize bytes, unless it is the application structure).
func (b *bench) define(r route, batch, elemSize int, sizeMiB uint64) error {
	var sdef []string
	switch {
	case r.offload:
		sdef = []string{fmt.Sprintf("DEFINE CFSTRUCT(%s) SIZE(%d) OFFLOAD(SMDS) OFFLDSZ(64K)", r.structure, sizeMiB)}
	case r.structure != "APPL1":
		sdef = []string{fmt.Sprintf("DEFINE CFSTRUCT(%s) SIZE(%d) ELEMSIZE(%d)", r.structure, sizeMiB, elemSize)}
	}
	for _, c := range append(sdef,
		fmt.Sprintf("DEFINE CHANNEL(%s) CHLTYPE(RCVR) MAXMSGL(2097152) BATCHSZ(%d) AUTHKEY('%s')", r.channel, batch, benchKey),
		fmt.Sprintf("DEFINE QLOCAL(%s) MAXDEPTH(999999999) MAXMSGL(2097152) CFSTRUCT(%s)", r.target, r.structure),
	) {
		if err := b.recv.MQSC("RQM", c); err != nil {
			return err
		}
	}
	for _, c := range append(sdef,
		fmt.Sprintf("DEFINE QLOCAL(%s) USAGE(XMITQ) MAXDEPTH(999999999) MAXMSGL(3145728) CFSTRUCT(%s)", r.xq, r.structure),
		fmt.Sprintf("DEFINE CHANNEL(%s) CHLTYPE(SDR) CONNAME('127.0.0.1(%d)') XMITQ(%s) BATCHSZ(%d) SHORTTMR(1) MAXMSGL(2097152) AUTHKEY('%s')", r.channel, b.port, r.xq, batch, benchKey),
		fmt.Sprintf("DEFINE QREMOTE(%s) RNAME(%s) RQMNAME(RQM) XMITQ(%s)", r.rq, r.target, r.xq),
	) {
		if err := b.send.MQSC("QM1", c); err != nil {
			return err
		}
	}
	return nil
}

type bench struct {
	send, recv *benchgroup.Group
	port       int
	cpu        []float64 // per transfer since the last cpuFigure: µs of processor time per message
}

// cpuFigure emits name: the least processor time per message, over the
// transfers since the last call, of both groups' members and channel
// initiators together (the machine's noise moves rates far more than it).
func (b *bench) cpuFigure(name string) {
	if len(b.cpu) > 0 {
		benchgroup.Emit(name, slices.Min(b.cpu), "us/msg")
	}
	b.cpu = b.cpu[:0]
}

func run(o options) error {
	dir, err := os.MkdirTemp("", "qmgr-chanbench-")
	if err != nil {
		return err
	}
	if o.keep {
		fmt.Fprintln(os.Stderr, "chanbench: logs in", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	// The structures go to /dev/shm (tmpfs), as by default.
	shmDir := func(n string) string {
		return filepath.Join("/dev/shm", fmt.Sprintf("qmgr-chanbench-%d-%s", os.Getpid(), n))
	}
	send, err := benchgroup.New(group.Config{Name: "SENDG", DataDir: filepath.Join(dir, "send"), CFDir: shmDir("send"), AppSize: o.appMiB << 20, AppElementSize: o.elemSize}, dir)
	if err != nil {
		return err
	}
	defer send.Close()
	recv, err := benchgroup.New(group.Config{Name: "RQM", DataDir: filepath.Join(dir, "recv"), CFDir: shmDir("recv"), AppSize: o.appMiB << 20, AppElementSize: o.elemSize}, dir)
	if err != nil {
		return err
	}
	defer recv.Close()
	b := &bench{send: send, recv: recv}
	if b.port, err = freePort(); err != nil {
		return err
	}
	if err := recv.Start("RQM", "--port", strconv.Itoa(b.port)); err != nil {
		return err
	}
	for _, m := range []string{"QM1", "QM2", "QM3"} {
		if err := send.Start(m); err != nil {
			return err
		}
	}
	if err := b.define(small, o.batch, 0, 0); err != nil {
		return err
	}
	// paired measures a baseline and a channel figure in alternating
	// rounds, and emits the best of each and the median of the rounds'
	// ratios (a ratio of two bests lets one lucky baseline round, up to
	// twice the others on this noisy machine, move it).
	paired := func(base, ch, unit, ratio string, fb, fc func() (float64, error)) error {
		var bs, cs, rs []float64
		for r := 0; r < o.rounds; r++ {
			vb, err := fb()
			if err != nil {
				return fmt.Errorf("%s: %w", base, err)
			}
			vc, err := fc()
			if err != nil {
				return fmt.Errorf("%s: %w", ch, err)
			}
			bs, cs, rs = append(bs, vb), append(cs, vc), append(rs, vc/vb)
		}
		slices.Sort(rs)
		benchgroup.Emit(base, slices.Max(bs), unit)
		benchgroup.Emit(ch, slices.Max(cs), unit)
		benchgroup.Emit(ratio, rs[len(rs)/2], "ratio")
		return nil
	}
	for _, f := range []struct {
		size, n int
		name    string
	}{{64, o.n64, "64B"}, {4 << 10, o.n4k, "4KiB"}} {
		if err := paired("baseline.tcp."+f.name, "channel.send."+f.name, "msgs/s", "channel.send."+f.name+".vs.baseline.tcp."+f.name,
			func() (float64, error) { return tcpFrames(f.size, f.n) },
			func() (float64, error) { return b.transfer(small, f.size, f.n) }); err != nil {
			return err
		}
		b.cpuFigure("channel.send." + f.name + ".cpu")
	}
	if o.kills > 0 {
		times, err := b.failovers(o.kills)
		if err != nil {
			return fmt.Errorf("failover: %w", err)
		}
		slices.Sort(times)
		benchgroup.Emit("failover.channel.p50.ms", times[len(times)/2], "ms")
		benchgroup.Emit("failover.channel.p99.ms", times[(len(times)*99+99)/100-1], "ms")
		benchgroup.Emit("failover.channel.max.ms", times[len(times)-1], "ms")
	}
	// The failovers run first, with one application structure (see the
	// package doc).
	big := small
	if o.largeElem > 0 {
		big = large
		if err := b.define(large, o.batch, o.largeElem, o.largeMiB); err != nil {
			return err
		}
	}
	if err := paired("baseline.tcp.bytes", "channel.send.1MiB.bytes", "MB/s", "channel.send.1MiB.ratio",
		func() (float64, error) { return tcpBytes(1<<20, o.n1m*4) },
		func() (float64, error) {
			r, err := b.transfer(big, 1<<20, o.n1m)
			return r * (1 << 20) / 1e6, err
		}); err != nil {
		return err
	}
	b.cpuFigure("channel.send.1MiB.cpu")
	if o.offload {
		if err := b.define(offl, o.batch, 0, 64); err != nil {
			return err
		}
		// The same messages through the data sets and through the CF
		// (big, as above), in alternating rounds of the same run.
		var cs, offs, ocpu, rs []float64
		for r := 0; r < o.rounds; r++ {
			vc, err := b.transfer(big, 1<<20, o.n1m)
			if err != nil {
				return fmt.Errorf("channel.send.1MiB: %w", err)
			}
			vo, err := b.transfer(offl, 1<<20, o.n1m)
			if err != nil {
				return fmt.Errorf("channel.send.1MiB.offload: %w", err)
			}
			cs, offs, rs = append(cs, vc), append(offs, vo), append(rs, vo/vc)
			ocpu = append(ocpu, b.cpu[len(b.cpu)-1])
		}
		b.cpu = ocpu
		slices.Sort(rs)
		mb := func(v float64) float64 { return v * (1 << 20) / 1e6 }
		benchgroup.Emit("channel.send.1MiB", slices.Max(cs), "msgs/s")
		benchgroup.Emit("channel.send.1MiB.mb", mb(slices.Max(cs)), "MB/s")
		benchgroup.Emit("channel.send.1MiB.offload", slices.Max(offs), "msgs/s")
		benchgroup.Emit("channel.send.1MiB.offload.mb", mb(slices.Max(offs)), "MB/s")
		benchgroup.Emit("channel.send.1MiB.offload.ratio", rs[len(rs)/2], "ratio")
		b.cpuFigure("channel.send.1MiB.offload.cpu")
	}
	return nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// fill puts n messages of size bytes to r's remote queue through QM1.
func (b *bench) fill(r route, size, n int) error {
	c, err := b.send.Connect("QM1")
	if err != nil {
		return err
	}
	defer c.Disconnect()
	q, err := c.Open(r.rq, mq.OpenOptions{Output: true})
	if err != nil {
		return err
	}
	body := make([]byte, size)
	for i := 0; i < n; i++ {
		binary.BigEndian.PutUint64(body, uint64(i))
		if err := q.Put(&mq.Message{Body: body}, mq.PutOptions{Syncpoint: true}); err != nil {
			return err
		}
		if i%1000 == 999 || i == n-1 {
			if err := c.Commit(); err != nil {
				return err
			}
		}
	}
	return nil
}

// view holds a group open to read a queue's depth and a channel's status
// in tight loops.
type view struct {
	g       *group.Group
	s       *lockfree.Structure
	id      lockfree.QueueID
	t       *channel.Table
	channel string
}

// openView is a view of queue q of route r (its target or transmission
// queue) and of r's channel.
func openView(g *benchgroup.Group, r route, q string) (*view, error) {
	gr, err := group.Open(g.Cfg, false)
	if err != nil {
		return nil, err
	}
	s, err := gr.Structure(r.structure, false)
	if err != nil {
		gr.Close()
		return nil, err
	}
	id, err := s.LookupQueue(q)
	if err != nil {
		gr.Close()
		return nil, err
	}
	return &view{g: gr, s: s, id: id, t: channel.NewTable(gr), channel: r.channel}, nil
}

func (v *view) depth() int64 { return v.s.Depth(v.id) }
func (v *view) close()       { v.g.Close() }

// status is the channel's entry, and whether its lock is held.
func (v *view) status() (channel.Status, bool, error) {
	st, ok, err := v.t.Find(v.channel)
	return st, ok && v.t.Locked(st), err
}

func (v *view) peerName(slot int) (string, error) {
	p, err := v.g.Peer(slot)
	return p.Name, err
}

// drain empties r's target queue.
func (b *bench) drain(r route) error {
	c, err := b.recv.Connect("RQM")
	if err != nil {
		return err
	}
	defer c.Disconnect()
	q, err := c.Open(r.target, mq.OpenOptions{Input: true})
	if err != nil {
		return err
	}
	for {
		if _, err := q.Get(mq.GetOptions{}); errors.Is(err, mq.ErrNoMessage) {
			return nil
		} else if err != nil {
			return err
		}
	}
}

// waitFor polls cond every millisecond for at most d (a transfer's end
// is seen at most a millisecond late, under 0.5% of the shortest; polling
// more often took processor time from the channel being measured).
func waitFor(what string, d time.Duration, cond func() bool) error {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
	return nil
}

// transfer fills the transmission queue with n messages of size bytes
// while the channel is stopped, starts it, and returns the rate at which
// they arrive at the remote queue, from the first arrival to the last.
func (b *bench) transfer(r route, size, n int) (float64, error) {
	if err := b.drain(r); err != nil {
		return 0, err
	}
	if err := b.fill(r, size, n); err != nil {
		return 0, err
	}
	d, err := openView(b.recv, r, r.target)
	if err != nil {
		return 0, err
	}
	defer d.close()
	sv, err := openView(b.send, r, r.xq)
	if err != nil {
		return 0, err
	}
	defer sv.close()
	if err := b.send.MQSC("QM1", "START CHANNEL("+r.channel+")"); err != nil {
		return 0, err
	}
	var t0 time.Time
	var d0 int64
	if err := waitFor("the first message", 30*time.Second, func() bool { d0 = d.depth(); return d0 > 0 }); err != nil {
		return 0, err
	}
	t0 = time.Now()
	cpu0 := b.send.CPU() + b.recv.CPU()
	if err := waitFor("every message", 120*time.Second, func() bool { return d.depth() >= int64(n) }); err != nil {
		return 0, err
	}
	rate := float64(int64(n)-d0) / time.Since(t0).Seconds()
	b.cpu = append(b.cpu, float64((b.send.CPU()+b.recv.CPU()-cpu0).Microseconds())/float64(int64(n)-d0))
	if err := b.send.MQSC("QM1", "STOP CHANNEL("+r.channel+")"); err != nil {
		return 0, err
	}
	if err := waitFor("the channel stopped", 30*time.Second, func() bool {
		st, _, err := sv.status()
		return err == nil && st.State == channel.Stopped
	}); err != nil {
		return 0, err
	}
	return rate, nil
}

// tcpFrames is the baseline for small messages: frames of an 8-byte
// header and size bytes through buffered writes and reads over loopback
// TCP, in this process; messages per second.
func tcpFrames(size, n int) (float64, error) {
	return tcpRun(func(w *bufio.Writer) error {
		buf := make([]byte, 8+size)
		for i := 0; i < n; i++ {
			binary.LittleEndian.PutUint32(buf[4:], uint32(size))
			if _, err := w.Write(buf); err != nil {
				return err
			}
		}
		return w.Flush()
	}, func(r *bufio.Reader) error {
		hdr := make([]byte, 8)
		body := make([]byte, size)
		for i := 0; i < n; i++ {
			if _, err := io.ReadFull(r, hdr); err != nil {
				return err
			}
			if _, err := io.ReadFull(r, body[:binary.LittleEndian.Uint32(hdr[4:])]); err != nil {
				return err
			}
		}
		return nil
	}, float64(n))
}

// tcpBytes is the bandwidth baseline: n writes of size bytes over loopback
// TCP, read into a buffer of that size; MB per second.
func tcpBytes(size, n int) (float64, error) {
	return tcpRun(func(w *bufio.Writer) error {
		buf := make([]byte, size)
		for i := 0; i < n; i++ {
			if _, err := w.Write(buf); err != nil {
				return err
			}
		}
		return w.Flush()
	}, func(r *bufio.Reader) error {
		buf := make([]byte, size)
		for i := 0; i < n; i++ {
			if _, err := io.ReadFull(r, buf); err != nil {
				return err
			}
		}
		return nil
	}, float64(size)*float64(n)/1e6)
}

func tcpRun(write func(*bufio.Writer) error, read func(*bufio.Reader) error, units float64) (float64, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	var werr error
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		c, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			werr = err
			return
		}
		defer c.Close()
		c.(*net.TCPConn).SetNoDelay(true)
		werr = write(bufio.NewWriterSize(c, 64<<10))
	}()
	c, err := l.Accept()
	if err != nil {
		return 0, err
	}
	defer c.Close()
	t0 := time.Now()
	if err := read(bufio.NewReaderSize(c, 64<<10)); err != nil {
		return 0, err
	}
	el := time.Since(t0)
	wg.Wait()
	if werr != nil {
		return 0, werr
	}
	return units / el.Seconds(), nil
}

// failovers kills the member running the channel k times while a producer
// keeps messages coming, and returns, for each, the milliseconds from the
// SIGKILL to the first message moved by the instance that took the channel
// over (the first message at the remote queue committed by a new receiver
// instance, after the old one ended).
func (b *bench) failovers(k int) ([]float64, error) {
	if err := b.drain(small); err != nil {
		return nil, err
	}
	if err := b.send.MQSC("QM1", "START CHANNEL("+small.channel+")"); err != nil {
		return nil, err
	}
	var stop atomic.Bool
	var down atomic.Value // the member being killed
	down.Store("")
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		b.produce(&stop, &down)
	}()
	defer func() { stop.Store(true); wg.Wait() }()
	d, err := openView(b.recv, small, small.target)
	if err != nil {
		return nil, err
	}
	defer d.close()
	sv, err := openView(b.send, small, small.xq)
	if err != nil {
		return nil, err
	}
	defer sv.close()
	var times []float64
	for i := 0; i < k; i++ {
		// Messages flowing through an instance on some member.
		var owner channel.Status
		if err := waitFor("the channel running", 30*time.Second, func() bool {
			st, locked, err := sv.status()
			owner = st
			return err == nil && locked && st.State == channel.Running
		}); err != nil {
			return nil, err
		}
		before := d.depth()
		if err := waitFor("messages flowing", 30*time.Second, func() bool { return d.depth() > before+100 }); err != nil {
			return nil, err
		}
		rst, _, err := d.status()
		if err != nil {
			return nil, err
		}
		name, err := sv.peerName(owner.Owner)
		if err != nil {
			return nil, err
		}
		down.Store(name)
		t0 := time.Now()
		b.send.Kill(name)
		// The old receiver instance ends (its partner's socket closed with
		// the process); once its entry is released, no message it moved
		// can still arrive. The first arrival after that is the new one's.
		var base int64
		if err := waitFor("the old receiver instance to end", 30*time.Second, func() bool {
			st, _, err := d.status()
			if err != nil || st.Conn == rst.Conn {
				return false
			}
			base = d.depth()
			return true
		}); err != nil {
			return nil, err
		}
		if err := waitFor("the first message of the new instance", 30*time.Second, func() bool { return d.depth() > base }); err != nil {
			return nil, err
		}
		times = append(times, float64(time.Since(t0).Microseconds())/1000)
		if err := b.send.Start(name); err != nil {
			return nil, err
		}
		down.Store("")
	}
	return times, nil
}

// produce puts 64-byte messages to the remote queue, about 20,000 a
// second in units of work of 20, through a member that is not being
// killed, reconnecting when its member dies.
func (b *bench) produce(stop *atomic.Bool, down *atomic.Value) {
	// A connection through each member, so that messages keep coming
	// while one is killed: the figure is the channel's failover, not a
	// producer's reconnection (a connection maps the structures first).
	members := []string{"QM1", "QM2", "QM3"}
	conns := map[string]*mq.Conn{}
	qs := map[string]*mq.Queue{}
	drop := func(via string) {
		if c := conns[via]; c != nil {
			c.Disconnect()
		}
		delete(conns, via)
		delete(qs, via)
	}
	defer func() {
		for _, m := range members {
			drop(m)
		}
	}()
	body := make([]byte, 64)
	for i := 0; !stop.Load(); i++ {
		via := members[i%len(members)]
		if via == down.Load().(string) {
			drop(via)
			continue
		}
		q := qs[via]
		if q == nil {
			c, err := b.send.Connect(via)
			if err != nil {
				time.Sleep(5 * time.Millisecond)
				continue
			}
			if q, err = c.Open(small.rq, mq.OpenOptions{Output: true}); err != nil {
				c.Disconnect()
				continue
			}
			conns[via], qs[via] = c, q
		}
		var err error
		for j := 0; j < 20 && err == nil; j++ {
			err = q.Put(&mq.Message{Body: body}, mq.PutOptions{Syncpoint: true})
		}
		if err == nil {
			err = conns[via].Commit()
		}
		if err != nil {
			drop(via) // its member died: connect again once it is back
		}
		time.Sleep(time.Millisecond / 3)
	}
}
