package mq

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/qmgr/qmgr/crashpoint"
	"github.com/qmgr/qmgr/defs"
	"github.com/qmgr/qmgr/group"
	"github.com/qmgr/qmgr/internal/ownedfs"
	"github.com/qmgr/qmgr/lockfree"
	"github.com/qmgr/qmgr/smds"
	"golang.org/x/sys/unix"
)

// Shared message data sets (issue 19, docs/design/smds.md): a structure
// defined OFFLOAD(SMDS) keeps the bodies its offload rules pick in a data
// set of the putting connection's member (one per member and structure,
// <structure>.M<member's peer slot>.smds in the structure's DSDIR, by
// default <data directory>/smds), and its CF entry holds a reference to
// the body (lockfree.Message.Offload). Any process reads any member's data
// set, through the process's read cache, and whoever frees the entry (a
// get committed, a view released, a repair) frees the run through the
// structure's offload-free hook, set on every structure the process
// attaches (group.OffloadFree).
//
// A data set is named by its member's peer slot rather than its name so
// that any process can find it from the reference alone (the reference's
// data set number is the slot), whether or not the member is running or
// its peer record still exists.
//
// Each process keeps its data sets open (offloadSets) with a few
// registered owners each, taken by one put or free at a time: an owner
// is one process's, and a process killed while it used one is repaired by
// the next process that opens the data set or repairs its dead owners
// (repairDataSets).

// SMDSCacheBytes is the size of each process's read cache of data-set
// bodies (--smds-cache); set it before the first connection uses a data
// set. 0: no cache.
var SMDSCacheBytes int64 = 64 << 20

// smdsGeometry shapes the data sets this process creates (zero: smds's
// defaults, 128 MiB extents); tests make them small.
var smdsGeometry struct{ blockSize, extentBlocks, maxExtents int }

// dsKey names a data set of a structure of a group (by its CF directory).
type dsKey struct {
	cfDir, structure string
	num              uint16
	epoch            uint64 // the structure's creation time: a recovered structure's data sets have new maps
}

// dataSet is an open data set and this process's idle owners in it.
type dataSet struct {
	d    *smds.DataSet
	key  dsKey
	mu   sync.Mutex
	idle []*smds.Owner
}

// offloadSets are this process's open data sets.
var offloadSets struct {
	mu    sync.Mutex
	sets  map[dsKey]*dataSet
	dirs  map[[2]string]string // (CF directory, structure) -> data set directory
	cache *smds.Cache
	cerr  error
}

func init() {
	group.OffloadFree = freeOffloadedCounted
}

// dsMember is the member part of the file name of data set num.
func dsMember(num uint16) string { return fmt.Sprintf("M%d", num) }

// dataSetDir is where structure def's data sets are: its DSDIR, or smds
// under the group's data directory.
func dataSetDir(cfg group.Config, def defs.CFStruct) string {
	if def.DSDir != "" {
		return def.DSDir
	}
	return filepath.Join(cfg.DataDir, "smds")
}

// rememberDir records structure def's data set directory for this
// process's frees (which know only the structure's name).
func rememberDir(cfg group.Config, def defs.CFStruct) string {
	dir := dataSetDir(cfg, def)
	offloadSets.mu.Lock()
	if offloadSets.dirs == nil {
		offloadSets.dirs = map[[2]string]string{}
	}
	offloadSets.dirs[[2]string{cfg.CFDir, def.Name}] = dir
	offloadSets.mu.Unlock()
	return dir
}

// dirOf is structure name's data set directory, read from the shared
// definitions the first time this process needs it.
func dirOf(g *group.Group, name string) (string, error) { return dirIn(g.Config(), name) }

// dirIn is dirOf for a group of configuration cfg.
func dirIn(cfg group.Config, name string) (string, error) {
	offloadSets.mu.Lock()
	dir, ok := offloadSets.dirs[[2]string{cfg.CFDir, name}]
	offloadSets.mu.Unlock()
	if ok {
		return dir, nil
	}
	repo, err := defs.Open(cfg.DataDir, false)
	if err != nil {
		return "", err
	}
	defer repo.Close()
	var def defs.CFStruct
	if err := repo.View(func(tx *defs.Tx) error { var err error; def, err = tx.Struct(name); return err }); err != nil {
		return "", fmt.Errorf("data set directory of structure %s: %w", name, err)
	}
	return rememberDir(cfg, def), nil
}

// processCache is this process's read cache (nil when SMDSCacheBytes is 0).
func processCache() (*smds.Cache, error) {
	offloadSets.mu.Lock()
	defer offloadSets.mu.Unlock()
	if offloadSets.cache == nil && offloadSets.cerr == nil && SMDSCacheBytes > 0 {
		offloadSets.cache, offloadSets.cerr = smds.NewCache(SMDSCacheBytes)
	}
	return offloadSets.cache, offloadSets.cerr
}

// SMDSCacheMetrics are this process's read cache's metrics (zero without
// one).
func SMDSCacheMetrics() smds.CacheMetrics {
	offloadSets.mu.Lock()
	c := offloadSets.cache
	offloadSets.mu.Unlock()
	if c == nil {
		return smds.CacheMetrics{}
	}
	return c.Metrics()
}

// openDataSet returns data set num of structure name (attached as s), open
// in this process, opening or creating it the first time. A space map that
// is missing or of another epoch of the structure (it was recovered) is
// rebuilt from the references the structure holds, and the data set's dead
// owners are repaired, with the structure as the Resolver.
func openDataSet(g *group.Group, name string, s *lockfree.Structure, dir string, num uint16) (*dataSet, error) {
	return openDataSetIn(g.Config(), name, s, dir, num)
}

// openDataSetIn is openDataSet for a group of configuration cfg.
func openDataSetIn(cfg group.Config, name string, s *lockfree.Structure, dir string, num uint16) (*dataSet, error) {
	epoch := uint64(s.Mapping().Header().Created.UnixNano())
	k := dsKey{cfg.CFDir, name, num, epoch}
	offloadSets.mu.Lock()
	ds, ok := offloadSets.sets[k]
	offloadSets.mu.Unlock()
	if ok && ds.d.Retired() && s.Current() == nil {
		// Another process rebuilt the space map while the structure is in
		// service (docs/design/smds.md, section 6a): frees, repairs and
		// checks go to the new map (a free there of a run it does not hold
		// is ErrStale: the rebuild carried the old map's gens over); puts
		// through the old one would fail. A structure that failed keeps
		// its handles: its recovery replaced the map (another epoch's key),
		// its puts meet the fence and its frees change only the old map.
		forgetDataSet(ds)
		ok = false
	}
	if ok {
		return ds, nil
	}
	cache, err := processCache()
	if err != nil {
		return nil, err
	}
	o := smds.Options{Dir: dir, MapDir: cfg.CFDir, Structure: name, Member: dsMember(num), Number: num,
		Epoch: epoch, Cache: cache, Owners: dataSetOwners, StallLimit: DataSetStallLimit(),
		BlockSize: smdsGeometry.blockSize, ExtentBlocks: smdsGeometry.extentBlocks, MaxExtents: smdsGeometry.maxExtents}
	d, err := smds.Open(o)
	if err != nil {
		// Created, or its map rebuilt, by one process at a time: another
		// may be between linking a new data set and writing its map.
		unlock, lerr := lockDataSet(cfg.CFDir, name, num)
		if lerr != nil {
			return nil, lerr
		}
		defer unlock()
		d, err = smds.Open(o)
	}
	switch {
	case err == nil:
	case errors.Is(err, smds.ErrNotFound):
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("data set directory: %w", err)
		}
		// References the structure still holds to a data set file that
		// is gone: their messages' bodies are lost, and the new map must
		// not give a run the head, gen and length of one of them (its
		// removal would free that run under its new message).
		lost, _, rerr := structureRefs(s, num)
		if rerr != nil {
			return nil, fmt.Errorf("create data set %d of structure %s: %w", num, name, rerr)
		}
		o.Lost = lost
		d, err = smds.Create(o)
		if errors.Is(err, smds.ErrExist) { // created concurrently
			d, err = smds.Open(o)
		}
	case errors.Is(err, smds.ErrNeedRebuild):
		// Only from a structure in service: one being recovered holds
		// only part of its entries yet, and its recovery rebuilds the map
		// (RebuildDataSets) before it is back; a map built here would be
		// kept by this process and allocated from after that.
		if cerr := s.Current(); cerr != nil {
			return nil, fmt.Errorf("%w (its structure %s is out of service: its recovery rebuilds the map)", err, name)
		}
		// Processes may be in the middle of puts through the old map: it
		// is retired first, the references read after (RebuildFrom; see
		// docs/design/smds.md, section 6a). One stopped in its claim holds
		// the retirement: past DataSetStallLimit this open fails
		// (smds.StalledError, a put's MQRC 2102) and releases the lock;
		// the map stays retired, and the next open tries again.
		d, _, err = smds.RebuildFrom(o, func() ([]smds.Ref, error) {
			refs, _, err := structureRefs(s, num) // a reference that does not decode names no run
			return refs, err
		})
	}
	if err != nil {
		return nil, err
	}
	if _, err := d.RepairDead(resolverOf(s, num)); err != nil {
		d.Close()
		return nil, err
	}
	offloadSets.mu.Lock()
	defer offloadSets.mu.Unlock()
	if offloadSets.sets == nil {
		offloadSets.sets = map[dsKey]*dataSet{}
	}
	if prev, ok := offloadSets.sets[k]; ok { // opened concurrently
		d.Close()
		return prev, nil
	}
	ds = &dataSet{d: d, key: k}
	offloadSets.sets[k] = ds
	return ds, nil
}

// dataSetStallLimit is DataSetStallLimit's, in ns.
var dataSetStallLimit atomic.Int64

func init() { dataSetStallLimit.Store(int64(10 * time.Second)) }

// DataSetStallLimit bounds how long this process, creating or rebuilding
// a data set's space map while its structure is in service (the open of a
// put, a get or a free: openDataSet), waits for a live process between
// claiming blocks in the old map and writing them (docs/design/smds.md,
// section 6a): past it the open fails with an *smds.StalledError (MQRC
// 2102 for a put) instead of holding the data set's lock, and every
// process that waits for it, for as long as that process stays stopped.
// Default 10s (a member's default heartbeat timeout); a member sets its
// HeartbeatTimeout (SetDataSetStallLimit). A structure's recovery has its
// own (RebuildDataSets).
func DataSetStallLimit() time.Duration { return time.Duration(dataSetStallLimit.Load()) }

// SetDataSetStallLimit sets DataSetStallLimit (0: wait as long as the
// process lives).
func SetDataSetStallLimit(d time.Duration) { dataSetStallLimit.Store(int64(max(d, 0))) }

// forgetDataSet drops ds from this process's open data sets (its space
// map was retired: another process rebuilt it, and the next open maps the
// new one) and closes its idle owners. The data set stays mapped: views
// and reads through it may be in progress (a process keeps its data sets
// mapped until it ends).
func forgetDataSet(ds *dataSet) {
	offloadSets.mu.Lock()
	if offloadSets.sets[ds.key] == ds {
		delete(offloadSets.sets, ds.key)
	}
	offloadSets.mu.Unlock()
	ds.mu.Lock()
	idle := ds.idle
	ds.idle = nil
	ds.mu.Unlock()
	for _, o := range idle {
		o.Close()
	}
}

// RebuildDataSets rebuilds the space map of every data set of structure
// name (attached as s, just recovered and not yet in service: nobody
// allocates or frees) from the references its entries hold, checking
// each run's header on disk: what no entry refers to (bodies of messages
// lost with the CF, or got since) is free again. It returns the
// references rejected (their runs damaged or lost: those messages' gets
// move them, Queue.Get) as errors, one a message.
//
// A data set whose file is not a usable data set of the structure (its
// header unreadable, naming another structure or member, or truncated
// below it: replaceUnusable) does not fail the others: it is moved aside,
// an empty one takes its place (its map fencing every reference to it),
// its references are rejected, and it is returned in unusable, for the
// caller to log. Any other failure (an I/O error, a layout version this
// binary does not read) fails the rebuild, as before.
//
// Each map replaced is retired first, which waits for live processes
// between claiming blocks in it and writing them (docs/design/smds.md,
// section 6a); un bounds that wait and says what to do with a process
// that stalls there (Unstall).
func RebuildDataSets(g *group.Group, name string, s *lockfree.Structure, un Unstall) (kept int, rejected []error, unusable []UnusableDataSet, err error) {
	dir, err := dirOf(g, name)
	if errors.Is(err, defs.ErrNotFound) {
		return 0, nil, nil, nil // a structure being defined: it has no data sets yet
	}
	if err != nil {
		return 0, nil, nil, err
	}
	nums, err := dataSetNums(dir, name)
	if err != nil {
		return 0, nil, nil, err
	}
	cfg := g.Config()
	epoch := uint64(s.Mapping().Header().Created.UnixNano())
	cache, err := processCache()
	if err != nil {
		return 0, nil, nil, err
	}
	for _, num := range nums {
		refs, bad, err := structureRefs(s, num)
		if err != nil {
			return kept, rejected, unusable, err
		}
		rejected = append(rejected, bad...) // lost messages, as the rejected
		o := smds.Options{Dir: dir, MapDir: cfg.CFDir, Structure: name, Member: dsMember(num), Number: num, Epoch: epoch, Cache: cache, Owners: dataSetOwners,
			StallLimit: un.Limit}
		unlock, err := lockDataSet(cfg.CFDir, name, num)
		if err != nil {
			return kept, rejected, unusable, err
		}
		var d *smds.DataSet
		var res smds.RebuildResult
		var u *UnusableDataSet
		for {
			if u == nil {
				d, res, err = smds.Rebuild(o, refs)
				if err != nil && unusableFile(err, o) {
					u = &UnusableDataSet{Num: num, Err: err, Lost: len(refs)}
					d, res, err = replaceUnusable(o, refs, u)
				}
			} else {
				// An unusable file moved aside and replaced before the
				// map's replacement stalled (in replaceUnusable: the empty
				// data set is in place, its map not yet or not rebuilt).
				d, res, err = smds.Rebuild(o, refs)
			}
			var st *smds.StalledError
			if !errors.As(err, &st) || un.Stalled == nil {
				break
			}
			if serr := un.Stalled(st); serr != nil {
				err = errors.Join(err, serr)
				break
			}
		}
		unlock()
		if err != nil {
			return kept, rejected, unusable, fmt.Errorf("rebuild data set %d of structure %s: %w", num, name, err)
		}
		if u != nil {
			unusable = append(unusable, *u)
			for _, r := range refs {
				rejected = append(rejected, fmt.Errorf("data set %s unusable (moved to %s): %v: %w", u.Path, u.MovedTo, r, u.Err))
			}
		} else {
			kept += res.Kept
			for i, rj := range res.Rejected {
				rejected = append(rejected, fmt.Errorf("data set %s: %v: %w", d.Path(), refs[i], rj))
			}
		}
		k := dsKey{cfg.CFDir, name, num, epoch}
		offloadSets.mu.Lock()
		if offloadSets.sets == nil {
			offloadSets.sets = map[dsKey]*dataSet{}
		}
		if prev, ok := offloadSets.sets[k]; ok {
			prev.d.Close()
		}
		offloadSets.sets[k] = &dataSet{d: d, key: k}
		offloadSets.mu.Unlock()
	}
	return kept, rejected, unusable, nil
}

// Unstall bounds a structure recovery's wait, in RebuildDataSets, for a
// live process between claiming blocks in a space map being replaced and
// writing them: an application stopped there (SIGSTOP, a debugger) would
// hold the recovery, and the data set's lock, for as long as it stays
// stopped.
type Unstall struct {
	// Limit is how long a map's replacement waits for such a process
	// (smds.Options.StallLimit); 0: as long as it lives.
	Limit time.Duration
	// Stalled is called with each stall past Limit: nil, the data set's
	// rebuild is tried again (once the caller killed a stopped process, or
	// to wait another Limit for one that runs); an error fails it. A nil
	// Stalled fails it with the *smds.StalledError.
	Stalled func(*smds.StalledError) error
}

// lockDataSet takes the lock that makes creating or rebuilding data set
// num of structure name one process's job (flock on a hidden file beside
// the space maps; released when the process ends). It returns the unlock.
func lockDataSet(cfDir, name string, num uint16) (func(), error) {
	path := filepath.Join(cfDir, fmt.Sprintf(".%s.%s.smlock", name, dsMember(num)))
	f, _, err := ownedfs.OpenOrCreate(path, os.O_RDWR) // no symbolic link, FIFO or file open to others
	if err != nil {
		return nil, fmt.Errorf("data set lock: %w", err)
	}
	for {
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX)
		if !errors.Is(err, unix.EINTR) {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("data set lock %s: %w", path, err)
	}
	return func() { unix.Flock(int(f.Fd()), unix.LOCK_UN); f.Close() }, nil
}

// structureRefs are the references structure s holds to data set num,
// and an error for each entry of it whose reference does not decode (a
// damaged entry: it names no run, and its message's get fails). One such
// entry must not hide the others: a repair's resolver or a rebuild that
// saw none would free the runs they name. err: the structure could not
// be read (its file truncated under the mapping): nothing is known.
func structureRefs(s *lockfree.Structure, num uint16) (out []smds.Ref, bad []error, err error) {
	raw, err := s.OffloadRefs(num)
	if err != nil {
		return nil, nil, fmt.Errorf("references of structure %s to data set %d: %w", s.Name(), num, err)
	}
	for _, b := range raw {
		r, err := smds.DecodeRef(b)
		if err != nil {
			bad = append(bad, fmt.Errorf("structure %s: %w", s.Name(), err))
			continue
		}
		out = append(out, r)
	}
	return out, bad, nil
}

// resolverOf answers a data set's repair: does structure s still hold
// reference r? (Read once per repair: the set is taken when the repair
// first asks.) A structure that cannot be read holds every reference: a
// run kept is a leak the checker reports, a run freed a message lost.
func resolverOf(s *lockfree.Structure, num uint16) smds.Resolver {
	var set map[smds.Ref]bool
	var failed bool
	return func(r smds.Ref) bool {
		if set == nil {
			set = map[smds.Ref]bool{}
			refs, _, err := structureRefs(s, num) // a reference that does not decode names no run
			failed = err != nil
			for _, x := range refs {
				set[x] = true
			}
		}
		return failed || set[r]
	}
}

// dataSetOwners is the owner slots of the space maps this process creates
// or rebuilds: one for every connection of the group, each of which may
// hold an owner in a data set at once (a put into its member's, a free of
// a run of any), plus one per member for the repairs it makes. Owners sit
// idle in a process while it is connected (dataSet.idle), so a map with
// fewer slots than connections refuses puts when there are many
// processes. Maps made with fewer (smds.DefaultOwners) keep theirs until
// rebuilt. A put that finds none free fails with MQRC 2102.
const dataSetOwners = group.MaxConnections + group.PeerSlots

// owner takes an idle owner of this process in the data set, registering
// one when there is none; done gives it back.
func (ds *dataSet) owner() (*smds.Owner, error) {
	ds.mu.Lock()
	if n := len(ds.idle); n > 0 {
		o := ds.idle[n-1]
		ds.idle = ds.idle[:n-1]
		ds.mu.Unlock()
		return o, nil
	}
	ds.mu.Unlock()
	return ds.d.Register()
}

func (ds *dataSet) done(o *smds.Owner) {
	ds.mu.Lock()
	ds.idle = append(ds.idle, o)
	ds.mu.Unlock()
}

// closeIdleOwners closes this process's idle owners in every data set it
// has open (a connection's Disconnect: a process that ends leaves no
// owner for a repair to find). Owners in use by other connections'
// operations are not idle and stay; the next operation registers again.
func closeIdleOwners() error {
	offloadSets.mu.Lock()
	sets := make([]*dataSet, 0, len(offloadSets.sets))
	for _, ds := range offloadSets.sets {
		sets = append(sets, ds)
	}
	offloadSets.mu.Unlock()
	var errs []error
	for _, ds := range sets {
		ds.mu.Lock()
		idle := ds.idle
		ds.idle = nil
		ds.mu.Unlock()
		for _, o := range idle {
			if err := o.Close(); err != nil {
				errs = append(errs, fmt.Errorf("data set %s: %w", ds.d.Path(), err))
			}
		}
	}
	return errors.Join(errs...)
}

// freeOffloaded frees the run of an offloaded message of structure name
// (attached as s) whose entry is being freed: the hook every structure a
// process attaches calls (lockfree.Structure.SetOffloadFree). A run
// already freed (a repair or a process killed after freeing it) counts as
// freed.
func freeOffloaded(g *group.Group, name string, s *lockfree.Structure, b []byte) error {
	r, err := smds.DecodeRef(b)
	if err != nil {
		return fmt.Errorf("structure %s: %w", name, err)
	}
	dir, err := dirOf(g, name)
	if err != nil {
		return err
	}
	ds, err := openDataSet(g, name, s, dir, r.DataSet)
	if err != nil {
		return err
	}
	o, err := ds.owner()
	if err != nil {
		return err
	}
	defer ds.done(o)
	if err := o.Free(r); err != nil && !errors.Is(err, smds.ErrStale) {
		return err
	}
	return nil
}

// Crash points of offloaded messages (besides smds's and lockfree's).
var (
	cpOffloadPublished = crashpoint.New("mq.offload.published") // the CF put of an offloaded message done, its run not yet marked published
	cpOffloadClaimed   = crashpoint.New("mq.offload.claimed")   // an offloaded message claimed by a get, its body not yet read
)

// dataSetNums are the numbers of the data sets of structure name found in
// dir (<name>.M<n>.smds).
func dataSetNums(dir, name string) ([]uint16, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []uint16
	for _, e := range ents {
		rest, ok := strings.CutPrefix(e.Name(), name+".M")
		if !ok {
			continue
		}
		num, ok := strings.CutSuffix(rest, ".smds")
		if !ok {
			continue
		}
		// Only the names dsMember makes: M07 is not data set 7's file.
		if n, err := strconv.ParseUint(num, 10, 16); err == nil && dsMember(uint16(n)) == "M"+num {
			out = append(out, uint16(n))
		}
	}
	return out, nil
}

// RepairDataSets repairs the owners of dead processes in every data set of
// structure name (attached as s), with the structure as the Resolver: a
// run a dead process was putting is kept if an entry refers to it and
// freed if not, a free it left half done is finished. A member runs it
// after repairing a dead connection's owner in the structure (the CF's
// repair first: it frees the runs of the entries it frees). It returns how
// many owners it repaired.
func RepairDataSets(g *group.Group, name string, s *lockfree.Structure) (int, error) {
	dir, err := dirOf(g, name)
	if errors.Is(err, defs.ErrNotFound) {
		return 0, nil // a structure being defined (or deleted): no data sets
	}
	if err != nil {
		return 0, err
	}
	nums, err := dataSetNums(dir, name)
	if err != nil {
		return 0, err
	}
	total := 0
	var errs []error
	for _, num := range nums {
		ds, err := openDataSet(g, name, s, dir, num)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		n, err := ds.d.RepairDead(resolverOf(s, num))
		total += n
		if err != nil {
			errs = append(errs, fmt.Errorf("data set %s: %w", ds.d.Path(), err))
		}
	}
	return total, errors.Join(errs...)
}

// DataSetCheck is what the checker found in one data set.
type DataSetCheck struct {
	Num    uint16
	Report *smds.CheckReport
	Stats  smds.Stats
}

// CheckDataSets checks structure name and every data set of it: the CF's
// checker, then each data set's against the references the CF holds to
// it (every reference names a used run, no two overlap, every used run is
// referenced or in flight). With quiescent, nothing may be in flight. The
// error says what is wrong (nil: all is well).
func CheckDataSets(g *group.Group, name string, quiescent bool) ([]DataSetCheck, error) {
	s, err := g.Structure(name, false)
	if err != nil {
		return nil, err
	}
	r := s.Check(lockfree.CheckOptions{Quiescent: quiescent})
	if !r.OK() {
		return nil, fmt.Errorf("structure %s: %v", name, r)
	}
	return CheckDataSetsOf(g.Config(), name, s, r.Offloaded, quiescent)
}

// CheckDataSetsOf checks every data set of structure name (attached as s)
// of a group of configuration cfg against refs, the references the CF's
// checker found (lockfree.CheckReport.Offloaded). The error says what is
// wrong (nil: all is well).
func CheckDataSetsOf(cfg group.Config, name string, s *lockfree.Structure, refs [][]byte, quiescent bool) ([]DataSetCheck, error) {
	byDS := map[uint16][]smds.Ref{}
	for _, b := range refs {
		ref, err := smds.DecodeRef(b)
		if err != nil {
			return nil, fmt.Errorf("structure %s: %w", name, err)
		}
		byDS[ref.DataSet] = append(byDS[ref.DataSet], ref)
	}
	dir, err := dirIn(cfg, name)
	if err != nil && len(byDS) == 0 {
		return nil, nil // no definitions to find its data sets by, and no reference to one
	}
	if err != nil {
		return nil, err
	}
	nums, err := dataSetNums(dir, name)
	if err != nil {
		return nil, err
	}
	var out []DataSetCheck
	var errs []error
	for _, num := range nums {
		ds, err := openDataSetIn(cfg, name, s, dir, num)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		refs := byDS[num]
		delete(byDS, num)
		cr := ds.d.Check(refs, smds.CheckOptions{Quiescent: quiescent})
		if !cr.OK() {
			errs = append(errs, fmt.Errorf("data set %s: %v", ds.d.Path(), cr))
		}
		st, err := ds.d.Stats()
		if err != nil {
			errs = append(errs, err)
		}
		out = append(out, DataSetCheck{Num: num, Report: cr, Stats: st})
	}
	for num, refs := range byDS {
		errs = append(errs, fmt.Errorf("structure %s: %d references to data set %d, which is not in %s", name, len(refs), num, dir))
	}
	return out, errors.Join(errs...)
}

// DataSetStatus is one data set of a structure (DISPLAY CFSTATUS
// TYPE(SMDS)): its number (its member's peer slot), the space map's
// figures, or why they could not be read.
type DataSetStatus struct {
	Num   uint16
	Stats smds.Stats
	Err   error
}

// DataSetStatuses are the data sets of structure def, found in its data
// set directory.
func DataSetStatuses(g *group.Group, def defs.CFStruct) ([]DataSetStatus, error) {
	dir := rememberDir(g.Config(), def)
	nums, err := dataSetNums(dir, def.Name)
	if err != nil || len(nums) == 0 {
		return nil, err
	}
	s, err := g.Structure(def.Name, false)
	if err != nil {
		return nil, err
	}
	var out []DataSetStatus
	for _, num := range nums {
		st := DataSetStatus{Num: num}
		ds, err := openDataSet(g, def.Name, s, dir, num)
		if err == nil {
			st.Stats, err = ds.d.Stats()
		}
		st.Err = err
		out = append(out, st)
	}
	return out, nil
}

// offloadPolicy is what a put needs to know of its structure's offload
// rules.
type offloadPolicy struct {
	def    defs.CFStruct
	rules  [3]defs.OffloadRule
	minSz  int            // the smallest body a fill rule offloads
	maxVar int            // the longest variable part the structure holds
	fill   func() float64 // the structure's data elements used, in percent (an estimate)
}

// offloads reports whether a body of n bytes (with v bytes of names and
// properties) goes to a data set: never when it fits in the entry, always
// when the structure could not hold it, at OFFLDSZ and above, and, once
// the structure's data elements are at least OFFLDnTH% used, at OFFLDnSZ
// and above (docs/design/smds.md, section 8).
func (p *offloadPolicy) offloads(n, v int) bool {
	if !p.def.Offloads() || n+v <= lockfree.InlineMax {
		return false
	}
	if n >= p.def.OffloadSize() || n+v > p.maxVar {
		return true
	}
	if n < p.minSz {
		return false
	}
	f := p.fill()
	for _, r := range p.rules {
		if f >= float64(r.Th) && n >= r.Sz {
			return true
		}
	}
	return false
}

// fillEvery is how often a process samples a structure's element fill for
// the offload rules (a few thousand loads: lockfree.Structure.Fill).
const fillEvery = 20 * time.Millisecond

// fillCache is a structure's element fill as this process last sampled it.
type fillCache struct {
	at   atomic.Int64  // Unix ns of the sample
	fill atomic.Uint64 // math.Float64bits of the percentage
}

var fills sync.Map // *lockfree.Structure -> *fillCache

// elementFill is structure s's data elements used, in percent, sampled at
// most every fillEvery by this process.
func elementFill(s *lockfree.Structure) float64 {
	v, ok := fills.Load(s)
	if !ok {
		v, _ = fills.LoadOrStore(s, &fillCache{})
	}
	fc := v.(*fillCache)
	now := time.Now().UnixNano()
	if at := fc.at.Load(); now-at > int64(fillEvery) && fc.at.CompareAndSwap(at, now) {
		_, el := s.Fill(4096)
		fc.fill.Store(math.Float64bits(el * 100))
	}
	return math.Float64frombits(fc.fill.Load())
}

// policy is the offload policy of h's structure (nil: it does not offload).
func (h *Queue) policy() *offloadPolicy {
	def, ok := h.c.structs[h.def.CFStruct]
	if !ok || !def.Offloads() {
		return nil
	}
	p := h.s.Params()
	pol := &offloadPolicy{def: def, rules: def.Rules(), minSz: math.MaxInt, maxVar: max(p.Elements*p.ElementSize, lockfree.InlineMax)}
	for _, r := range pol.rules {
		if r.Th <= 100 {
			pol.minSz = min(pol.minSz, r.Sz)
		}
	}
	s := h.s
	pol.fill = func() float64 { return elementFill(s) }
	return pol
}

// offloadPut writes lm's body to the connection's member's data set for
// h's structure (synced with sync: a persistent message's record refers
// to it) and makes lm an offloaded message referring to it. The
// run is the caller's until published: it calls published with whether
// the CF put succeeded (Published, or Free when it did not).
func (h *Queue) offloadPut(lm *lockfree.Message, sync bool) (published func(ok bool), err error) {
	// A handle of a structure that failed (or was recovered since: its
	// file is gone) would allocate from a space map its recovery replaced,
	// whose free blocks may hold bodies of messages put since: its write
	// would overwrite them. Its CF put would fail anyway. This check is
	// not the guard (the structure may fail right after it): the space
	// map's fence is (smds.ErrRetired below); it saves the I/O.
	if err := h.s.Current(); err != nil {
		return nil, err
	}
	c := h.c
	def := c.structs[h.def.CFStruct]
	dir := rememberDir(c.g.Config(), def)
	var ds *dataSet
	var o *smds.Owner
	var r smds.Ref
	for attempt := 1; ; attempt++ {
		ds, err = openDataSet(c.g, h.def.CFStruct, h.s, dir, uint16(c.peer.Slot))
		if err != nil {
			return nil, err
		}
		if o, err = ds.owner(); err != nil {
			return nil, err
		}
		if r, err = o.Put(lm.Body, sync); err == nil {
			break
		}
		if !errors.Is(err, smds.ErrRetired) {
			ds.done(o)
			return nil, err
		}
		// The space map this process had was retired (replaced by a
		// rebuild) after it opened the data set: the put wrote nothing
		// (docs/design/smds.md, section 6a). Its owner is of no use.
		o.Close()
		forgetDataSet(ds)
		// The structure failed (or was recovered) after the check above,
		// and its recovery's rebuild retired the map: the put fails as
		// its CF put would.
		if cerr := h.s.Current(); cerr != nil {
			return nil, cerr
		}
		// Rebuilt in service by another process: put again through the
		// new map (the open waits for the rebuilder's lock).
		if attempt == 3 {
			return nil, err
		}
	}
	r.DataSet = uint16(c.peer.Slot)
	ref := make([]byte, smds.RefSize)
	r.Encode(ref)
	lm.Offload, lm.OffloadLen, lm.Body = ref, len(lm.Body), nil
	return func(ok bool) {
		defer ds.done(o)
		if !ok {
			// A put that failed may still have left the message in the
			// CF (a persistent put under syncpoint whose log record
			// failed stays in the unit of work, to be backed out): free
			// the run only when no entry refers to it.
			ok = holdsRef(h.s, r)
		}
		if ok {
			cpOffloadPublished.Hit()
			o.Published()
			return
		}
		// A failure leaves it to the data set's repair (this owner's
		// descriptor names it) and checker. ErrStale: whoever freed the
		// entry (a backout of the put) freed the run too; the descriptor
		// naming it is cleared.
		if err := o.Free(r); errors.Is(err, smds.ErrStale) {
			o.Published()
		}
	}, nil
}

// holdsRef reports whether structure s holds reference r.
func holdsRef(s *lockfree.Structure, r smds.Ref) bool {
	refs, _, err := structureRefs(s, r.DataSet)
	if err != nil {
		return true // unknown: kept (a leak the checker reports), not freed under an entry
	}
	for _, x := range refs {
		if x == r {
			return true
		}
	}
	return false
}

// readOffloaded reads the body of offloaded message lm (of h's structure)
// from its data set into lm.Body, checking its checksum: the cache first.
// A body read from the file is cached for a browse or a view (it may be
// read again), not for a get (its run is freed next).
func (h *Queue) readOffloaded(lm *lockfree.Message, keep bool) error {
	if lm.Offload == nil {
		return nil
	}
	r, err := smds.DecodeRef(lm.Offload)
	if err != nil {
		return fmt.Errorf("message in structure %s: %w", h.def.CFStruct, err)
	}
	c := h.c
	if def, ok := c.structs[h.def.CFStruct]; ok {
		rememberDir(c.g.Config(), def)
	}
	dir, err := dirOf(c.g, h.def.CFStruct)
	if err != nil {
		return err
	}
	ds, err := openDataSet(c.g, h.def.CFStruct, h.s, dir, r.DataSet)
	if err != nil {
		return err
	}
	read := ds.d.ReadNoFill
	if keep {
		read = ds.d.Read
	}
	body, err := read(r, nil)
	if err != nil {
		return err
	}
	if len(body) != lm.OffloadLen {
		return fmt.Errorf("message in structure %s: data set %d returned %d bytes for a body of %d", h.def.CFStruct, r.DataSet, len(body), lm.OffloadLen)
	}
	lm.Body, lm.Offload, lm.OffloadLen = body, nil, 0
	return nil
}
