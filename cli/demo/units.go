package demo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/qmgr/qmgr/group"
	"github.com/qmgr/qmgr/internal/groupproc"
	"github.com/qmgr/qmgr/mq"
	"github.com/qmgr/qmgr/qm"
	"github.com/qmgr/qmgr/unit/example/ledger"
	"github.com/qmgr/qmgr/unit/logrec"
)

// UnitWorkerName is the command a replica of the recovery units' demo
// runs (UnitWorker): the members start the demo's binary with it
// (STARTCMD, STARTARG).
const UnitWorkerName = "unit-demo-worker"

// unitStateDirEnv names the directory where a demo replica writes its
// ledger's state when it stops without error (state-<position>-<pid>).
const unitStateDirEnv = "QMGR_DEMO_LEDGER_STATE_DIR"

// UnitsConfig sizes the recovery units' demo (--part units).
type UnitsConfig struct {
	Dir       string // where the group lives; default a new temporary directory, removed at the end
	Transfers int    // transfers put; default 3000
	Rate      int    // transfers a second; default 1000
	// KillMember SIGKILLs the member hosting the primary replica instead
	// of the replica alone: the replica dies with it (Pdeathsig), and the
	// other member recovers the dead one and supervises the unit alone.
	// Default false.
	KillMember bool
}

// WithDefaults is c with the defaults documented on its fields applied.
func (c UnitsConfig) WithDefaults() UnitsConfig {
	if c.Transfers == 0 {
		c.Transfers = 3000
	}
	if c.Rate == 0 {
		c.Rate = 1000
	}
	return c
}

// Validate checks the configuration as RunUnits uses it; it changes
// nothing.
func (c UnitsConfig) Validate() error {
	c = c.WithDefaults()
	switch {
	case c.Transfers < 300 || c.Transfers > 1_000_000:
		return errors.New("demo: 300 to 1000000 transfers")
	case c.Rate < 100 || c.Rate > 100_000:
		return errors.New("demo: transfer rate not in 100..100000 a second")
	}
	return nil
}

// unitsInput is the ledger unit's input queue in the demo.
const unitsInput = "LEDGER.IN"

// svPos is one position of DISPLAY SVSTATUS(LEDGER).
type svPos struct {
	Position  int    `json:"POSITION"`
	Role      string `json:"ROLE"`
	Sender    string `json:"SENDER"`
	QMName    string `json:"QMNAME"`
	Pid       int    `json:"PID"`
	Logged    uint64 `json:"LOGGED"`
	Processed uint64 `json:"PROCESSED"`
	Sent      uint64 `json:"SENT"`
	Status    string `json:"STATUS"`
	Restarts  int    `json:"RESTARTS"`
	Epoch     uint64 `json:"EPOCH"`
}

// svStatus reads DISPLAY SVSTATUS(LEDGER) through member via, by
// position.
func svStatus(cfg group.Config, via string) (map[int]svPos, error) {
	resp, err := qm.Command(cfg, via, "DISPLAY SVSTATUS(LEDGER)")
	if err != nil {
		return nil, err
	}
	if !resp.OK {
		return nil, fmt.Errorf("DISPLAY SVSTATUS(LEDGER): %s", resp.Error)
	}
	m := map[int]svPos{}
	for _, raw := range resp.Objects {
		var p svPos
		if err := json.Unmarshal(raw, &p); err != nil {
			return nil, fmt.Errorf("DISPLAY SVSTATUS(LEDGER): %w", err)
		}
		m[p.Position] = p
	}
	return m, nil
}

// primaryOf is the position of sv whose role is PRIMARY (-1: none).
func primaryOf(sv map[int]svPos) int {
	for k, p := range sv {
		if p.Role == "PRIMARY" {
			return k
		}
	}
	return -1
}

// unitConfirm is one confirmation as the demo got it.
type unitConfirm struct {
	id logrec.OutputID
	cf ledger.Confirmation
	at time.Time
}

// RunUnits runs the recovery units' demo: a group of two, a ledger
// service of two replicas the members start (this binary as
// UnitWorkerName), transfers put at a pace while the primary replica is
// SIGKILLed; what the members do about it (promotion, a replacement
// joining), then the checks: every transfer confirmed exactly once and
// in order, the replicas' balances equal to a reference computed from the
// transfers and the choices the confirmations carry, and the checker.
func RunUnits(c UnitsConfig, out io.Writer) error {
	c = c.WithDefaults()
	if err := c.Validate(); err != nil {
		return err
	}
	dir := c.Dir
	if dir == "" {
		d, err := os.MkdirTemp("", "qmgr-udemo-")
		if err != nil {
			return err
		}
		dir = d
		defer os.RemoveAll(dir)
	}
	states := filepath.Join(dir, "states")
	if err := os.MkdirAll(states, 0o755); err != nil {
		return err
	}
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	if strings.ContainsAny(exe, " \t'") {
		return fmt.Errorf("demo: the binary's path %q has a blank or a quote: it cannot be a STARTCMD", exe)
	}
	cfg := group.Config{Name: "UDEMO", DataDir: filepath.Join(dir, "data"), CFDir: filepath.Join(dir, "cf"), AppSize: 64 << 20}.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return err
	}
	members, err := groupproc.New(cfg, dir)
	if err != nil {
		return err
	}
	members.StartFlags = []string{"--heartbeat", "50ms", "--port", "0", "--no-chinit"}
	members.ActiveTimeout = 10 * time.Second
	defer members.KillAll() // the replicas die with their members (Pdeathsig)
	fmt.Fprintf(out, "\nqmgr demo, part 5: a recovery unit, a ledger of two replicas through a SIGKILL (in %s)\n", dir)
	for _, n := range []string{"QM1", "QM2"} {
		if _, err := members.Spawn(n, func(cmd *exec.Cmd) { cmd.Env = append(os.Environ(), unitStateDirEnv+"="+states) }); err != nil {
			return err
		}
		if err := members.WaitActive(n); err != nil {
			return err
		}
	}
	for _, line := range []string{
		"DEFINE QLOCAL(" + unitsInput + ") MAXDEPTH(1000000)",
		"DEFINE QLOCAL(" + ledger.Confirm + ") MAXDEPTH(1000000)",
		fmt.Sprintf("DEFINE SERVICE(LEDGER) STARTCMD('%s') STARTARG('%s') INPUT(%s) REPLICAS(2)", exe, UnitWorkerName, unitsInput),
	} {
		if _, err := members.MQSC("QM1", line); err != nil {
			return err
		}
	}
	fmt.Fprintf(out, "  members QM1 and QM2; DEFINE SERVICE(LEDGER) ... INPUT(%s) REPLICAS(2): the members start its replicas\n", unitsInput)

	var sv map[int]svPos
	ready := func() bool {
		sv, err = svStatus(cfg, "QM1")
		if err != nil {
			return false
		}
		p := primaryOf(sv)
		return p >= 0 && len(sv) == 2 && sv[0].Status == "RUNNING" && sv[1].Status == "RUNNING" && sv[0].Pid != 0 && sv[1].Pid != 0
	}
	if waitUntil(20*time.Second, ready) != nil {
		return fmt.Errorf("demo: the replicas did not start (last SVSTATUS %+v, %v; logs in %s)", sv, err, dir)
	}
	primary := primaryOf(sv)
	other := 1 - primary
	epoch0 := sv[primary].Epoch
	// The members the applications go through: with KillMember, both
	// through the member that survives (a member's death breaks the
	// connections made through it).
	via, prodVia, consVia := "QM1", "QM1", "QM2"
	victimMember := sv[primary].QMName
	if c.KillMember {
		if sv[other].QMName == victimMember {
			return fmt.Errorf("demo: both replicas on %s: the member kill would kill both (SVSTATUS %+v)", victimMember, sv)
		}
		via = sv[other].QMName
		prodVia, consVia = via, via
	}
	describe := func(p svPos) string {
		r := strings.ToLower(p.Role)
		if p.Sender == "YES" && p.Role == "PRIMARY" {
			r += " and sender"
		}
		return fmt.Sprintf("position %d (pid %d, on %s): %s", p.Position, p.Pid, p.QMName, r)
	}
	fmt.Fprintf(out, "  replicas running at epoch %d: %s; %s\n", epoch0, describe(sv[primary]), describe(sv[other]))

	opts := mq.ConnectOptions{Group: cfg.Name, QMgr: prodVia, DataDir: cfg.DataDir, CFDir: cfg.CFDir}
	// The confirmations, as they come.
	var (
		mu       sync.Mutex
		got      []unitConfirm
		collErr  error
		stopColl = make(chan struct{})
		collDone = make(chan struct{})
	)
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(got) }
	conn, err := mq.Connect(mq.ConnectOptions{Group: cfg.Name, QMgr: consVia, DataDir: cfg.DataDir, CFDir: cfg.CFDir})
	if err != nil {
		return err
	}
	defer conn.Disconnect()
	confirm, err := conn.Open(ledger.Confirm, mq.OpenOptions{Input: true})
	if err != nil {
		return err
	}
	go func() {
		defer close(collDone)
		for {
			select {
			case <-stopColl:
				return
			default:
			}
			m, err := confirm.Get(mq.GetOptions{Wait: 100 * time.Millisecond})
			if errors.Is(err, mq.ErrNoMessage) {
				continue
			}
			var cf ledger.Confirmation
			var id logrec.OutputID
			if err == nil {
				id, err = logrec.ParseOutputID(m.MsgID)
			}
			if err == nil {
				cf, err = ledger.ParseConfirmation(m.Body)
			}
			mu.Lock()
			if err != nil {
				collErr = fmt.Errorf("confirmation %d: %w", len(got), err)
				mu.Unlock()
				return
			}
			got = append(got, unitConfirm{id: id, cf: cf, at: time.Now()})
			mu.Unlock()
		}
	}()
	defer func() {
		select {
		case <-stopColl:
		default:
			close(stopColl)
		}
		<-collDone
	}()

	// The producer: the transfers, 20 a unit of work, at c.Rate.
	accounts := []string{"alice", "bob", "carol", "dave", "erin"}
	transfers := make([]ledger.Transfer, c.Transfers)
	for i := range transfers {
		transfers[i] = ledger.Transfer{ID: int64(i), From: accounts[i%5], To: accounts[(i/5+1+i)%5], Amount: int64(1 + i*7%400)}
	}
	prodDone := make(chan error, 1)
	go func() {
		prodDone <- func() error {
			prod, err := mq.Connect(opts)
			if err != nil {
				return err
			}
			defer prod.Disconnect()
			in, err := prod.Open(unitsInput, mq.OpenOptions{Output: true})
			if err != nil {
				return err
			}
			pace := newPacer(c.Rate)
			for i, tr := range transfers {
				pace.wait(i)
				body := fmt.Appendf(nil, "%d %s %s %d", tr.ID, tr.From, tr.To, tr.Amount)
				if err := in.Put(&mq.Message{Body: body}, mq.PutOptions{Syncpoint: true}); err != nil {
					return fmt.Errorf("put transfer %d: %w", i, err)
				}
				if i%20 == 19 || i == len(transfers)-1 {
					if err := prod.Commit(); err != nil {
						return fmt.Errorf("commit transfer %d: %w", i, err)
					}
				}
			}
			return nil
		}()
	}()
	t0 := time.Now()
	fmt.Fprintf(out, "  a producer puts %d transfers (\"id from to amount\" among 5 accounts) at %d/s, 20 a unit of work;\n"+
		"  the ledger applies each, stamped with Ctx.Now and Ctx.Rand (logged choices), and confirms it to %s\n", c.Transfers, c.Rate, ledger.Confirm)

	// The kill: the primary, a third of the way.
	if waitUntil(time.Minute, func() bool { return count() >= c.Transfers/3 }) != nil {
		return fmt.Errorf("demo: %d of %d transfers confirmed in a minute (logs in %s)", count(), c.Transfers, dir)
	}
	if sv, err = svStatus(cfg, via); err != nil {
		return err
	}
	if p := primaryOf(sv); p != primary {
		return fmt.Errorf("demo: the primary moved from position %d to %d before the kill", primary, p)
	}
	victim := sv[primary]
	tKill := time.Now()
	if c.KillMember {
		members.Kill(victimMember)
		fmt.Fprintf(out, "  %.1fs: SIGKILL member %s, which hosts the primary, position %d (pid %d, dead with its member), having logged %d and applied %d transfers\n",
			tKill.Sub(t0).Seconds(), victimMember, primary, victim.Pid, victim.Logged, victim.Processed)
	} else {
		if err := syscall.Kill(victim.Pid, syscall.SIGKILL); err != nil {
			return fmt.Errorf("demo: SIGKILL the primary (pid %d): %w", victim.Pid, err)
		}
		fmt.Fprintf(out, "  %.1fs: SIGKILL the primary, position %d (pid %d on %s), having logged %d and applied %d transfers\n",
			tKill.Sub(t0).Seconds(), primary, victim.Pid, victim.QMName, victim.Logged, victim.Processed)
	}

	// What the members do about it, from SVSTATUS.
	var promoted, replaced, joined bool
	var replacement svPos
	since := func() string { return fmt.Sprintf("+%dms", time.Since(tKill).Milliseconds()) }
	if err := waitUntil(30*time.Second, func() bool {
		s, err := svStatus(cfg, via)
		if err != nil {
			return false
		}
		sv = s
		if p := sv[other]; !promoted && p.Role == "PRIMARY" && p.Epoch > epoch0 {
			promoted = true
			fmt.Fprintf(out, "    %s: position %d (pid %d) promoted to primary at epoch %d; it applies the rest of the log and takes input\n",
				since(), other, p.Pid, p.Epoch)
		}
		if p := sv[primary]; !replaced && p.Pid != 0 && p.Pid != victim.Pid {
			replaced = true
			replacement = p
			state := ""
			if p.Role == "STARTING" || p.Role == "JOINING" {
				state = ", " + strings.ToLower(p.Role)
			}
			fmt.Fprintf(out, "    %s: %s starts a replacement in position %d (pid %d, restarts %d%s)\n",
				since(), p.QMName, primary, p.Pid, p.Restarts, state)
		}
		if p := sv[primary]; replaced && !joined && p.Pid == replacement.Pid && (p.Role == "SECONDARY" || p.Role == "SENDER") && p.Status == "RUNNING" {
			joined = true
			how := "a secondary"
			if p.Sender == "YES" {
				how = "the sender (taken over from the primary by hand-over)"
			}
			fmt.Fprintf(out, "    %s: the replacement joined (restored from a survivor's snapshot or the log), now %s\n", since(), how)
		}
		return promoted && joined
	}); err != nil {
		return fmt.Errorf("demo: after the kill: promoted %v, replaced %v, joined %v (last SVSTATUS %+v; logs in %s)", promoted, replaced, joined, sv, dir)
	}
	if err := <-prodDone; err != nil {
		return fmt.Errorf("demo: producer: %w", err)
	}
	if waitUntil(time.Minute, func() bool { return count() >= c.Transfers }) != nil {
		return fmt.Errorf("demo: %d of %d transfers confirmed (logs in %s)", count(), c.Transfers, dir)
	}
	time.Sleep(300 * time.Millisecond) // nothing more may come
	close(stopColl)
	<-collDone
	if collErr != nil {
		return fmt.Errorf("demo: %w", collErr)
	}
	fmt.Fprintf(out, "  all %d transfers confirmed after %.1fs", len(got), time.Since(t0).Seconds())
	for _, g := range got {
		if g.cf.Epoch > epoch0 && g.at.After(tKill) {
			fmt.Fprintf(out, "; the first confirmation of the new epoch %dms after the kill", g.at.Sub(tKill).Milliseconds())
			break
		}
	}
	fmt.Fprintf(out, "\n")

	// The checks.
	failed := 0
	check := func(ok bool, pass, fail string) {
		if ok {
			fmt.Fprintf(out, "  ok    %s\n", pass)
			return
		}
		failed++
		fmt.Fprintf(out, "  FAIL  %s\n", fail)
	}
	confirmed := map[uint64]int{}
	for _, g := range got {
		confirmed[g.cf.ID]++
	}
	var missing, twice []uint64
	for i := range transfers {
		switch confirmed[uint64(i)] {
		case 0:
			missing = append(missing, uint64(i))
		case 1:
		default:
			twice = append(twice, uint64(i))
		}
	}
	check(len(got) == c.Transfers && len(missing) == 0 && len(twice) == 0,
		fmt.Sprintf("every transfer confirmed exactly once (%d confirmations of %d transfers)", len(got), c.Transfers),
		fmt.Sprintf("%d confirmations of %d transfers: %d missing %v, %d more than once %v", len(got), c.Transfers, len(missing), head(missing), len(twice), head(twice)))
	source := xxhash.Sum64String("LEDGER")
	inOrder := -1
	for i, g := range got {
		if g.id.Source != source || g.id.Gen != 1 || g.id.Seq != uint64(i+1) {
			inOrder = i
			break
		}
	}
	check(inOrder < 0, fmt.Sprintf("in order: the confirmations' sequence numbers (MsgID) run 1..%d as they arrived, one generation", len(got)),
		fmt.Sprintf("confirmation %d out of order: output id %+v", inOrder, got[max(inOrder, 0)].id))

	// The reference: the transfers applied in LSN order with the choices
	// the confirmations carry.
	byLSN := make([]ledger.Confirmation, len(got))
	for i, g := range got {
		byLSN[i] = g.cf
	}
	sort.Slice(byLSN, func(i, j int) bool { return byLSN[i].LSN < byLSN[j].LSN })
	ref := ledger.New()
	refProblem := ""
	for i, cf := range byLSN {
		if cf.LSN != uint64(i+1) {
			refProblem = fmt.Sprintf("LSNs not 1..%d: %d at %d", len(byLSN), cf.LSN, i)
			break
		}
		if cf.ID >= uint64(len(transfers)) {
			refProblem = fmt.Sprintf("confirmation of transfer %d, never put", cf.ID)
			break
		}
		if ok := ref.Apply(transfers[cf.ID], cf.Now, cf.RID); ok != cf.OK {
			refProblem = fmt.Sprintf("transfer %d confirmed ok=%v, the reference says %v", cf.ID, cf.OK, ok)
			break
		}
	}
	check(refProblem == "", "the reference ledger, the transfers applied in LSN order with the time and random id each confirmation carries, agrees with every accepted/rejected flag",
		"the reference: "+refProblem)

	// The replicas' states: both, once they have processed everything,
	// stopped by SIGTERM (they write their state and exit).
	if err := waitUntil(20*time.Second, func() bool {
		s, err := svStatus(cfg, via)
		if err != nil {
			return false
		}
		sv = s
		return len(sv) == 2 && sv[0].Processed == uint64(c.Transfers) && sv[1].Processed == uint64(c.Transfers) &&
			sv[0].Status == "RUNNING" && sv[1].Status == "RUNNING"
	}); err != nil {
		return fmt.Errorf("demo: the replicas did not both process every transfer (last SVSTATUS %+v; logs in %s)", sv, dir)
	}
	final := []svPos{sv[0], sv[1]}
	for _, p := range final {
		syscall.Kill(p.Pid, syscall.SIGTERM) // a member's child; it may have gone already, which the wait below reports
	}
	refDigest := ref.Digest()
	for _, p := range final {
		file := filepath.Join(states, fmt.Sprintf("state-%d-%d", p.Position, p.Pid))
		var state []byte
		if waitUntil(10*time.Second, func() bool { state, err = os.ReadFile(file); return err == nil }) != nil {
			check(false, "", fmt.Sprintf("position %d (pid %d) wrote no state after SIGTERM (logs in %s)", p.Position, p.Pid, dir))
			continue
		}
		var l ledger.Ledger
		if err := json.Unmarshal(state, &l); err != nil {
			check(false, "", fmt.Sprintf("position %d (pid %d): its state: %v", p.Position, p.Pid, err))
			continue
		}
		var bal []string
		for _, a := range accounts {
			bal = append(bal, fmt.Sprintf("%s %d", a, l.Balance(a)))
		}
		role := strings.ToLower(p.Role)
		if p.Pid == replacement.Pid {
			role += ", the replacement"
		}
		check(string(state) == refDigest,
			fmt.Sprintf("position %d (%s) equals the reference: %s; %d applied", p.Position, role, strings.Join(bal, ", "), l.Applied),
			fmt.Sprintf("position %d (%s) differs from the reference:\n        replica   %s        reference %s", p.Position, role, state, refDigest))
	}

	// Stop the members in order, then the checker.
	conn.Disconnect()
	for _, n := range []string{"QM1", "QM2"} {
		if c.KillMember && n == victimMember {
			continue // killed, and recovered by the other
		}
		if err := members.StopMember(n, 20*time.Second); err != nil {
			return fmt.Errorf("demo: %w", err)
		}
	}
	g, err := group.Open(cfg, false)
	if err != nil {
		return err
	}
	defer g.Close()
	if err := demoCheck(g, out); err != nil {
		return err
	}
	fmt.Fprintf(out, "  ok    replicas and members stopped; checker: every structure clean, nothing leaked\n")
	if failed > 0 {
		return fmt.Errorf("demo: %d checks of the recovery unit failed (logs in %s)", failed, dir)
	}
	return nil
}

// head is the first few of ids, for a message.
func head(ids []uint64) []uint64 {
	if len(ids) > 10 {
		return ids[:10]
	}
	return ids
}

// UnitWorker is a replica of the recovery units' demo's ledger, as its
// member starts it (configured from the environment the member gives it,
// ledger.RunFromEnv), until SIGTERM; it then writes its state under the
// directory the demo names (unitStateDirEnv), for the demo to compare
// with its reference.
func UnitWorker(args []string) error {
	fs := newFlags(UnitWorkerName, os.Stderr)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if d := os.Getenv(unitStateDirEnv); d != "" && os.Getenv("LEDGER_STATE_FILE") == "" {
		os.Setenv("LEDGER_STATE_FILE", filepath.Join(d, fmt.Sprintf("state-%s-%d", os.Getenv("QMGR_UNIT_POS"), os.Getpid())))
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	return ledger.RunFromEnv(ctx)
}
