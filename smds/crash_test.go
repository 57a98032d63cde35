package smds

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	mmap "github.com/edsrzf/mmap-go"

	"github.com/qmgr/qmgr/crashpoint"
	"github.com/qmgr/qmgr/internal/testproc"
	"github.com/qmgr/qmgr/shm"
)

// The multi-process tests run the test binary as children (package
// testproc) that put and get offloaded messages the way the queue manager
// will: a Put, then the reference published in the CF, then Published; a
// get claims the CF entry, reads the body, Frees the run, then removes the
// entry. The CF is stood in for by a table of slots in a file every
// process maps (cfTable): it gives the crash tests what the integration
// gives Repair, a Resolver and the CF's own repair of entries a dead
// process was filling or removing.

func TestMain(m *testing.M) {
	testproc.Register("worker", func([]string) int { return childMain(worker) })
	testproc.Register("putter", func([]string) int { return childMain(putter) })
	testproc.Register("getter", func([]string) int { return childMain(getter) })
	testproc.Register("repairer", func([]string) int { return childMain(repairer) })
	testproc.Main(m)
}

// Test-side crash points: between the CF publish and Published, and
// between the CF claim of an entry and its Free.
var (
	cpTestPublished = crashpoint.New("smds.test.published")
	cpTestRemoving  = crashpoint.New("smds.test.removing")
)

const tableSlots = 256

// cfTable: tableSlots slots of 64 bytes; word 0 is the state, bytes 8..40
// the encoded reference.
type cfTable struct {
	m   mmap.MMap
	mem shm.Mem
	f   *os.File
}

const (
	slEmpty     = 0
	slFilling   = 1 // << 32 | tag: being published
	slPublished = 2
	slRemoving  = 3 // << 32 | tag: got, its run being freed
)

func openTable(dir string) (*cfTable, error) {
	f, err := os.OpenFile(filepath.Join(dir, "cftable"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	if err := f.Truncate(tableSlots * 64); err != nil {
		return nil, err
	}
	m, err := mmap.MapRegion(f, tableSlots*64, mmap.RDWR, 0, 0)
	if err != nil {
		return nil, err
	}
	return &cfTable{m: m, mem: shm.MemOf(m), f: f}, nil
}

func (c *cfTable) close() { c.m.Unmap(); c.f.Close() }

func (c *cfTable) state(i int) uint64 { return atomic.LoadUint64(c.mem.U64(uint64(i) * 64)) }
func (c *cfTable) cas(i int, old, new uint64) bool {
	return atomic.CompareAndSwapUint64(c.mem.U64(uint64(i)*64), old, new)
}
func (c *cfTable) set(i int, v uint64) { atomic.StoreUint64(c.mem.U64(uint64(i)*64), v) }
func (c *cfTable) ref(i int) Ref {
	r, _ := DecodeRef(c.mem.Bytes(uint64(i)*64+8, RefSize))
	return r
}

// publish puts r in an empty slot: claim, fill, publish.
func (c *cfTable) publish(r Ref, tag Tag) error {
	for i := 0; i < tableSlots; i++ {
		if c.state(i) == slEmpty && c.cas(i, slEmpty, slFilling<<32|uint64(tag)) {
			r.Encode(c.mem.Bytes(uint64(i)*64+8, RefSize))
			c.set(i, slPublished<<32)
			return nil
		}
	}
	return fmt.Errorf("cf table full")
}

// published lists the references of published slots.
func (c *cfTable) published() []Ref {
	var out []Ref
	for i := 0; i < tableSlots; i++ {
		if c.state(i) == slPublished<<32 {
			out = append(out, c.ref(i))
		}
	}
	return out
}

// resolver says whether a published slot holds r.
func (c *cfTable) resolver() Resolver {
	return func(r Ref) bool {
		for _, x := range c.published() {
			if x.Head == r.Head && x.Gen == r.Gen && x.Seq == r.Seq {
				return true
			}
		}
		return false
	}
}

// get claims a published slot, reads and checks its body, frees its run
// and empties the slot; false when there is none.
func (c *cfTable) get(d *DataSet, o *Owner, rng *rand.Rand) (bool, error) {
	start := rng.IntN(tableSlots)
	for k := 0; k < tableSlots; k++ {
		i := (start + k) % tableSlots
		if c.state(i) != slPublished<<32 || !c.cas(i, slPublished<<32, slRemoving<<32|uint64(o.Tag())) {
			continue
		}
		cpTestRemoving.Hit()
		r := c.ref(i)
		b, err := d.Read(r, nil)
		if err != nil {
			return false, fmt.Errorf("read %v: %w", r, err)
		}
		if !verifyBody(b) {
			return false, fmt.Errorf("read %v: wrong body", r)
		}
		if err := o.Free(r); err != nil {
			return false, fmt.Errorf("free %v: %w", r, err)
		}
		c.set(i, slEmpty)
		return true, nil
	}
	return false, nil
}

// repairTable is the CF's own repair of what dead processes left: a slot
// being filled is dropped (its put never happened), a slot being removed
// is finished (its run freed, ErrStale when that was done). Only dead
// processes' slots may be in those states when it runs.
func (c *cfTable) repairTable(o *Owner) error {
	for i := 0; i < tableSlots; i++ {
		switch c.state(i) >> 32 {
		case slFilling:
			c.set(i, slEmpty)
		case slRemoving:
			if err := o.Free(c.ref(i)); err != nil && !errors.Is(err, ErrStale) {
				return fmt.Errorf("finishing the removal of %v: %w", c.ref(i), err)
			}
			c.set(i, slEmpty)
		}
	}
	return nil
}

func crashOpts(dir string) Options {
	o := testOpts(dir)
	o.MaxExtents = 16
	return o
}

func childMain(f func(d *DataSet, o *Owner, c *cfTable) error) int {
	dir := os.Getenv("SMDS_DIR")
	d, err := Open(crashOpts(dir))
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 3
	}
	c, err := openTable(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 3
	}
	var o *Owner
	if os.Getenv("SMDS_NO_OWNER") == "" {
		if o, err = d.Register(); err != nil {
			fmt.Fprintln(os.Stderr, "child:", err)
			return 3
		}
	}
	if err := f(d, o, c); err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 3
	}
	if crashpoint.Armed() && os.Getenv(crashpoint.EnvVar) == "count" {
		for n, k := range crashpoint.Counts() {
			fmt.Printf("count %s %d\n", n, k)
		}
	}
	if o != nil {
		o.Close()
	}
	return 0
}

func envInt(k string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(k)); err == nil {
		return v
	}
	return def
}

// worker puts and gets at random: bodies of 0 to 200 KiB, some synced.
func worker(d *DataSet, o *Owner, c *cfTable) error {
	rng := rand.New(rand.NewPCG(uint64(envInt("SMDS_SEED", 1)), 7))
	for op := 0; op < envInt("SMDS_OPS", 300); op++ {
		putOnly := os.Getenv("SMDS_PUTONLY") != ""
		if putOnly || rng.IntN(2) == 0 && len(c.published()) < 12 {
			n := rng.IntN(200 << 10)
			r, err := o.Put(body(rng.Uint64(), n), rng.IntN(8) == 0)
			if putOnly && errors.Is(err, ErrFull) {
				return nil
			}
			if err != nil {
				return fmt.Errorf("put %d bytes: %w", n, err)
			}
			if err := c.publish(r, o.Tag()); err != nil {
				return err
			}
			cpTestPublished.Hit()
			if err := o.Published(); err != nil {
				return err
			}
			continue
		}
		if _, err := c.get(d, o, rng); err != nil {
			return err
		}
	}
	return nil
}

// putter puts SMDS_PUTS messages, then dies without closing anything.
func putter(d *DataSet, o *Owner, c *cfTable) error {
	rng := rand.New(rand.NewPCG(5, 5))
	for i := 0; i < envInt("SMDS_PUTS", 40); i++ {
		r, err := o.Put(body(rng.Uint64(), 1000+rng.IntN(60<<10)), false)
		if err != nil {
			return err
		}
		if err := c.publish(r, o.Tag()); err != nil {
			return err
		}
		o.Published()
	}
	syscall.Kill(os.Getpid(), syscall.SIGKILL)
	select {}
}

// getter gets SMDS_GETS messages.
func getter(d *DataSet, o *Owner, c *cfTable) error {
	rng := rand.New(rand.NewPCG(6, 6))
	for i := 0; i < envInt("SMDS_GETS", 20); i++ {
		ok, err := c.get(d, o, rng)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("nothing to get after %d gets", i)
		}
	}
	return nil
}

// repairer repairs dead owners (and may be killed doing it).
func repairer(d *DataSet, _ *Owner, c *cfTable) error {
	_, err := d.RepairDead(c.resolver())
	return err
}

func spawn(t *testing.T, dir, role string, env ...string) *testproc.Proc {
	t.Helper()
	cmd := testproc.Command(t, role)
	cmd.Env = append(append(cmd.Env, "SMDS_DIR="+dir), env...)
	return cmd
}

func killedBySIGKILL(err error) bool {
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return false
	}
	ws, ok := ee.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL
}

// recoverAndCheck does what a survivor does after a process died: the
// CF's repair of the dead process's entries, then the data set's repair
// of its owners with the CF as resolver; then it proves the data set
// clean against the CF's references and every body readable.
func recoverAndCheck(t *testing.T, d *DataSet, c *cfTable, what string) []Ref {
	t.Helper()
	o := mustRegister(t, d)
	defer o.Close()
	if err := c.repairTable(o); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if _, err := d.RepairDead(c.resolver()); err != nil {
		t.Fatalf("%s: repair: %v", what, err)
	}
	refs := c.published()
	rep := d.Check(refs, CheckOptions{})
	if !rep.OK() {
		t.Fatalf("%s: %v", what, rep)
	}
	for _, r := range refs {
		b, err := d.ReadUncached(r, nil)
		if err != nil || !verifyBody(b) {
			t.Fatalf("%s: read %v: %v", what, r, err)
		}
	}
	return refs
}

// TestCrashPoints SIGKILLs a worker at every crash point of allocation,
// write, publish, free and growth in turn (at its first hit and in the
// middle of the run), then repairs as a survivor would: nothing leaked,
// nothing doubly used, no reference to a run not wholly written, every
// published body intact. A repairer killed in the middle of a repair is
// repaired in turn.
func TestCrashPoints(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process")
	}
	dir := t.TempDir()
	d := mustCreate(t, crashOpts(dir))
	c, err := openTable(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	out, err := spawn(t, dir, "worker", crashpoint.EnvVar+"=count", "SMDS_SEED=1").Output()
	if err != nil {
		t.Fatalf("calibration run: %v", err)
	}
	counts := map[string]int{}
	for _, line := range strings.Split(string(out), "\n") {
		var name string
		var n int
		if _, err := fmt.Sscanf(line, "count %s %d", &name, &n); err == nil {
			counts[name] = n
		}
	}
	recoverAndCheck(t, d, c, "after calibration")
	var points []string
	for _, p := range crashpoint.All() {
		if strings.HasPrefix(p, "smds.") && p != "smds.repair.claimed" && p != "smds.grow.allocated" {
			points = append(points, p)
		}
	}
	sort.Strings(points)
	kills := 0
	for i, p := range points {
		if counts[p] == 0 {
			t.Errorf("crash point %s not reached by the workload (counts %v)", p, counts)
			continue
		}
		for _, hit := range []int{1, max(1, counts[p]/2)} {
			what := fmt.Sprintf("%s:%d", p, hit)
			err := spawn(t, dir, "worker", crashpoint.EnvVar+"="+what, "SMDS_SEED="+strconv.Itoa(10+i*2+hit)).Run()
			if !killedBySIGKILL(err) {
				t.Logf("%s: worker not killed (%v): the point was not reached in this run", what, err)
			} else {
				kills++
			}
			recoverAndCheck(t, d, c, "after a kill at "+what)
		}
	}
	// A repairer killed after it took a dead worker's slot.
	if err := spawn(t, dir, "worker", crashpoint.EnvVar+"=smds.free.marked:3", "SMDS_SEED=99").Run(); !killedBySIGKILL(err) {
		t.Fatalf("worker not killed at smds.free.marked: %v", err)
	}
	if err := spawn(t, dir, "repairer", "SMDS_NO_OWNER=1", crashpoint.EnvVar+"=smds.repair.claimed:1").Run(); !killedBySIGKILL(err) {
		t.Fatalf("repairer not killed at smds.repair.claimed: %v", err)
	}
	if st, _ := d.Owners(); len(st) != 1 || st[0].State != "repairing" || st[0].Alive {
		t.Fatalf("owners after the repairer died: %+v", st)
	}
	recoverAndCheck(t, d, c, "after the repairer died")
	t.Logf("%d kills at %d points; %v", kills, len(points), d.Check(c.published(), CheckOptions{Quiescent: true}))
	checkClean(t, d, c.published())
}

// TestCrashWhileGrowing SIGKILLs a worker that only puts each time it
// has extended the file for a new extent and not yet counted it: the next
// grower extends it again (a no-op) and counts it once; nothing is lost.
func TestCrashWhileGrowing(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process")
	}
	dir := t.TempDir()
	d := mustCreate(t, crashOpts(dir))
	c, err := openTable(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	for i, hit := range []int{1, 2, 1, 3, 1} {
		what := fmt.Sprintf("smds.grow.allocated:%d", hit)
		if err := spawn(t, dir, "worker", "SMDS_PUTONLY=1", crashpoint.EnvVar+"="+what, "SMDS_SEED="+strconv.Itoa(i)).Run(); !killedBySIGKILL(err) {
			t.Fatalf("%s: worker not killed: %v", what, err)
		}
		recoverAndCheck(t, d, c, "after a kill at "+what)
		st, _ := d.Stats()
		if want := dsHeaderSize + int64(st.Extents+1)*d.g.extentBytes(); st.FileBytes != want {
			t.Fatalf("%s: file of %d bytes for %d extents and one allocated before the kill, want %d", what, st.FileBytes, st.Extents, want)
		}
	}
	if err := spawn(t, dir, "worker", "SMDS_PUTONLY=1", "SMDS_OPS=1000").Run(); err != nil {
		t.Fatalf("filling worker: %v", err)
	}
	refs := recoverAndCheck(t, d, c, "after filling")
	st, _ := d.Stats()
	if st.Extents != d.g.MaxExtents || len(refs) == 0 {
		t.Fatalf("after filling: %+v with %d messages", st, len(refs))
	}
	checkClean(t, d, refs)
}

// TestFreeWhileOwnerDead: the owning member puts messages and dies;
// another process gets half of them, freeing their runs through the
// space map while the owner is dead; the owner comes back, repairs its
// dead self and finds exactly the other half used; its map rebuilt from
// the CF's references is the same; new puts reuse the freed space.
func TestFreeWhileOwnerDead(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process")
	}
	dir := t.TempDir()
	opts := crashOpts(dir)
	d := mustCreate(t, opts)
	d.Close()
	c, err := openTable(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	if err := spawn(t, dir, "putter", "SMDS_PUTS=40").Run(); !killedBySIGKILL(err) {
		t.Fatalf("putter: %v", err)
	}
	if err := spawn(t, dir, "getter", "SMDS_GETS=20").Run(); err != nil {
		t.Fatalf("getter (the owner dead): %v", err)
	}
	refs := c.published()
	if len(refs) != 20 {
		t.Fatalf("%d messages left, want 20", len(refs))
	}
	// The owner reopens.
	d, err = Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if n, err := d.RepairDead(c.resolver()); err != nil || n != 1 {
		t.Fatalf("repair of the dead owner: %d, %v", n, err)
	}
	rep := checkClean(t, d, refs)
	used := 0
	for _, r := range refs {
		used += d.g.blocksFor(int(r.Len))
	}
	if rep.Used != used || rep.Runs != 20 {
		t.Fatalf("after the owner's restart: %v, want %d used blocks in 20 runs", rep, used)
	}
	before := usedWords(d)
	// Its map rebuilt from the CF holds the same runs.
	d.Close()
	if err := os.Remove(d.MapPath()); err != nil {
		t.Fatal(err)
	}
	d, res, err := Rebuild(opts, refs)
	if err != nil || res.Kept != 20 {
		t.Fatalf("rebuild: %+v, %v", res, err)
	}
	defer d.Close()
	checkClean(t, d, refs)
	if after := usedWords(d); !equalMaps(before, after) {
		t.Fatalf("rebuilt map differs: before %v, after %v", before, after)
	}
	// New puts take the freed space and leave the old bodies alone.
	o := mustRegister(t, d)
	defer o.Close()
	all := append([]Ref(nil), refs...)
	for i := 0; i < 20; i++ {
		all = append(all, put(t, o, body(uint64(1000+i), 1000+i*3000)))
	}
	checkClean(t, d, all)
	for _, r := range all {
		if b, err := d.ReadUncached(r, nil); err != nil || !verifyBody(b) {
			t.Fatalf("read %v: %v", r, err)
		}
	}
}

// usedWords maps every used run's head to its state word.
func usedWords(d *DataSet) map[uint32]uint64 {
	out := map[uint32]uint64{}
	for b := uint32(0); b < uint32(d.extents()*d.g.ExtentBlocks); b++ {
		if w := d.word(b); wKind(w) == bkHead {
			out[b] = w
		}
	}
	return out
}

func equalMaps(a, b map[uint32]uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}
