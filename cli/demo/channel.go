package demo

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/qmgr/qmgr/channel"
	"github.com/qmgr/qmgr/group"
	"github.com/qmgr/qmgr/internal/groupproc"
	"github.com/qmgr/qmgr/mq"
	mqscpkg "github.com/qmgr/qmgr/mqsc"
	"github.com/qmgr/qmgr/qm"
)

// runChannelDemo: a group of three sends through shared channel DEMO.CHL
// to a group of one (RQM) on a port of this host; the member running the
// channel is SIGKILLed mid transfer; a survivor takes the channel over and
// every message arrives exactly once, in order.
func runChannelDemo(dir string, total, rate int, out io.Writer) error {
	if dir == "" {
		d, err := os.MkdirTemp("", "qmgr-chdemo-")
		if err != nil {
			return err
		}
		dir = d
		defer os.RemoveAll(dir)
	}
	send := group.Config{Name: "CHDEMO", DataDir: filepath.Join(dir, "send", "data"), CFDir: filepath.Join(dir, "send", "cf"), AppSize: 256 << 20}
	recv := group.Config{Name: "RQM", DataDir: filepath.Join(dir, "recv", "data"), CFDir: filepath.Join(dir, "recv", "cf"), AppSize: 256 << 20}
	for _, c := range []*group.Config{&send, &recv} {
		*c = c.WithDefaults()
		if err := c.Validate(); err != nil {
			return err
		}
	}
	run, err := newDemoRun(dir)
	if err != nil {
		return err
	}
	defer run.killAll()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	// Each group's members, their logs in dir named <group>.<member>.log.
	procs := map[string]*groupproc.Group{}
	for _, c := range []group.Config{send, recv} {
		g, err := groupproc.New(c, dir)
		if err != nil {
			return err
		}
		g.LogPrefix = c.Name + "."
		g.StartFlags = []string{"--heartbeat", "50ms"}
		g.ActiveTimeout = 10 * time.Second
		defer g.KillAll()
		procs[c.Name] = g
	}
	sendProcs, recvProcs := procs[send.Name], procs[recv.Name]
	mqsc := func(c group.Config, via string, cmds ...string) error {
		for _, cmd := range cmds {
			resp, err := qm.Command(c, via, cmd)
			if err != nil || !resp.OK {
				return fmt.Errorf("%s: %v %s", cmd, err, resp.Error)
			}
			fmt.Fprintf(out, "  %s\n", mqscpkg.Redact(cmd))
		}
		return nil
	}
	// Both ends of the channel prove they know its secret (AUTHKEY): a
	// fresh random one for each demonstration.
	var keyBytes [16]byte
	if _, err := rand.Read(keyBytes[:]); err != nil {
		return err
	}
	key := hex.EncodeToString(keyBytes[:])
	fmt.Fprintf(out, "\nqmgr demo, part 2: a shared channel from a group of three to a queue manager outside it (in %s)\n", dir)
	if _, err := recvProcs.Start("RQM", "--port", strconv.Itoa(port)); err != nil {
		return err
	}
	fmt.Fprintf(out, "  remote queue manager RQM (a group of one) listens on port %d\n", port)
	if err := mqsc(recv, "RQM", "DEFINE CHANNEL(DEMO.CHL) CHLTYPE(RCVR) AUTHKEY('"+key+"')", "DEFINE QLOCAL(DEMO.TARGET) MAXDEPTH(999999999)"); err != nil {
		return err
	}
	for _, n := range demoMembers {
		if _, err := sendProcs.Start(n); err != nil {
			return err
		}
	}
	fmt.Fprintf(out, "  group %s: members QM1, QM2, QM3 started, each with its channel initiator\n", send.Name)
	if err := mqsc(send, "QM1",
		"DEFINE QLOCAL(DEMO.XQ) USAGE(XMITQ) MAXDEPTH(999999999) TRIGGER TRIGDATA(DEMO.CHL)",
		fmt.Sprintf("DEFINE CHANNEL(DEMO.CHL) CHLTYPE(SDR) CONNAME('127.0.0.1(%d)') XMITQ(DEMO.XQ) SHORTTMR(1) AUTHKEY('%s')", port, key),
		"DEFINE QREMOTE(DEMO.RQ) RNAME(DEMO.TARGET) RQMNAME(RQM) XMITQ(DEMO.XQ)"); err != nil {
		return err
	}
	fmt.Fprintf(out, "  an application puts %d numbered messages to DEMO.RQ (%d/s, through whichever member is up);\n"+
		"  the first message triggers the channel on the least busy member\n", total, rate)
	var down atomic.Value // the member being killed
	down.Store("")
	prodErr := make(chan error, 1)
	go func() { prodErr <- demoProduce(send, total, rate, &down) }()

	sg, err := group.Open(send, false)
	if err != nil {
		return err
	}
	defer sg.Close()
	rg, err := group.Open(recv, false)
	if err != nil {
		return err
	}
	defer rg.Close()
	table := channel.NewTable(sg)
	depthOf := func(g *group.Group, q string) int64 {
		d, _ := g.Depth("APPL1", q) // 0 until the queue exists
		return d
	}
	owner := func() (string, channel.Status) {
		st, ok, err := table.Find("DEMO.CHL")
		if err != nil || !ok || !table.Locked(st) {
			return "-", st
		}
		p, err := sg.Peer(st.Owner)
		if err != nil {
			return "?", st
		}
		return p.Name, st
	}
	t0 := time.Now()
	tty := isTerminal(out)
	killed, moved := "", false
	var killTime time.Time
	lastN, lastT := int64(0), t0
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		arrived := depthOf(rg, "DEMO.TARGET")
		name, st := owner()
		if killed != "" && !moved && name != "-" && name != killed && st.State == channel.Running {
			moved = true
			if tty {
				fmt.Fprintln(out)
			}
			fmt.Fprintf(out, "  channel DEMO.CHL taken over by %s, %v after the kill; it resynchronised with RQM through the shared sync queue\n",
				name, time.Since(killTime).Round(time.Millisecond))
		}
		select {
		case <-tick.C:
		case err := <-prodErr:
			if err != nil {
				return fmt.Errorf("demo: producer: %w", err)
			}
			prodErr = nil
			continue
		default:
			time.Sleep(time.Millisecond)
			continue
		}
		now := time.Now()
		rateNow := float64(arrived-lastN) / now.Sub(lastT).Seconds()
		lastN, lastT = arrived, now
		line := fmt.Sprintf("  %5.1fs  DEMO.XQ %6d | DEMO.CHL %-8s on %-3s | at RQM %7d/%d | %7.0f msgs/s",
			now.Sub(t0).Seconds(), depthOf(sg, "DEMO.XQ"), st.State, name, arrived, total, rateNow)
		if tty {
			fmt.Fprintf(out, "\r%s\033[K", line)
		} else {
			fmt.Fprintln(out, line)
		}
		if killed == "" && arrived >= int64(total*4/10) && name != "-" {
			if tty {
				fmt.Fprintln(out)
			}
			killed = name
			down.Store(name)
			killTime = time.Now()
			victim := sendProcs.Member(name)
			victim.Process.Signal(syscall.SIGKILL)
			fmt.Fprintf(out, "  SIGKILL %s (pid %d), which runs channel DEMO.CHL, in the middle of a batch\n", name, victim.Process.Pid)
		}
		if arrived >= int64(total) && prodErr == nil && depthOf(sg, "DEMO.XQ") == 0 {
			break
		}
		if now.Sub(t0) > 2*time.Minute {
			return fmt.Errorf("demo: %d of %d messages arrived in two minutes (logs in %s)", arrived, total, dir)
		}
	}
	if tty {
		fmt.Fprintln(out)
	}
	time.Sleep(100 * time.Millisecond) // nothing more arrives
	n, err := demoCheckSeq(recv, total)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "  all %d messages arrived at RQM exactly once and in order (%.1fs)\n", n, time.Since(t0).Seconds())
	for _, n := range demoMembers {
		if n != killed {
			if err := sendProcs.StopMember(n, 20*time.Second); err != nil {
				return fmt.Errorf("demo: %w", err)
			}
		}
	}
	if err := recvProcs.StopMember("RQM", 20*time.Second); err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	for _, g := range []*group.Group{sg, rg} {
		if err := demoCheck(g, out); err != nil {
			return err
		}
	}
	fmt.Fprintf(out, "  members stopped; checker: every structure of both groups clean, nothing leaked\n")
	return nil
}

// demoProduce puts messages 0..total-1 to DEMO.RQ at about rate a second,
// in units of work of 100, through a member that is up; when its member
// dies it reconnects through another and goes on from its last commit.
func demoProduce(cfg group.Config, total, rate int, down *atomic.Value) error {
	next := 0
	body := make([]byte, 64)
	pace := newPacer(rate)
	for attempt := 0; next < total; attempt++ {
		via := demoMembers[attempt%len(demoMembers)]
		if via == down.Load().(string) {
			continue
		}
		c, err := mq.Connect(mq.ConnectOptions{Group: cfg.Name, QMgr: via, DataDir: cfg.DataDir, CFDir: cfg.CFDir})
		if err != nil {
			if attempt > 1000 {
				return err
			}
			time.Sleep(10 * time.Millisecond)
			continue
		}
		q, err := c.Open("DEMO.RQ", mq.OpenOptions{Output: true})
		for i := next; err == nil && i < total; i++ {
			binary.BigEndian.PutUint64(body, uint64(i))
			if err = q.Put(&mq.Message{Body: body}, mq.PutOptions{Syncpoint: true}); err != nil {
				break
			}
			if i%100 == 99 || i == total-1 {
				if err = c.Commit(); err != nil {
					break
				}
				next = i + 1
				pace.wait(next)
			}
		}
		c.Disconnect() // on an error: backed out, or already by the recovery
	}
	return nil
}

// demoCheckSeq gets every message of DEMO.TARGET: exactly 0..total-1.
func demoCheckSeq(cfg group.Config, total int) (int, error) {
	c, err := mq.Connect(mq.ConnectOptions{Group: cfg.Name, QMgr: "RQM", DataDir: cfg.DataDir, CFDir: cfg.CFDir})
	if err != nil {
		return 0, err
	}
	defer c.Disconnect()
	q, err := c.Open("DEMO.TARGET", mq.OpenOptions{Input: true})
	if err != nil {
		return 0, err
	}
	for i := 0; ; i++ {
		m, err := q.Get(mq.GetOptions{})
		if errors.Is(err, mq.ErrNoMessage) {
			if i != total {
				return i, fmt.Errorf("demo: %d messages arrived, want %d", i, total)
			}
			return i, nil
		}
		if err != nil {
			return i, err
		}
		if got := binary.BigEndian.Uint64(m.Body); got != uint64(i) {
			return i, fmt.Errorf("demo: message %d at RQM is number %d: lost, duplicated or out of order", i, got)
		}
	}
}
