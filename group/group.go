package group

import (
	"cmp"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"sync"

	"github.com/qmgr/qmgr/internal/ownedfs"
	"github.com/qmgr/qmgr/lockfree"
	"github.com/qmgr/qmgr/procid"
	"github.com/qmgr/qmgr/shm"
	"github.com/qmgr/qmgr/vfs"
)

// Sentinel errors.
var (
	ErrConfig      = errors.New("group: invalid configuration")
	ErrNoGroup     = errors.New("group: group not found")
	ErrNoPeerSlot  = errors.New("group: no free peer slot")
	ErrPeerRunning = errors.New("group: member already running")
	ErrBadRecord   = errors.New("group: malformed record")
	// ErrStructureBusy: another member is creating or recovering the
	// structure now (it holds the structure's recovery lock).
	ErrStructureBusy = errors.New("group: structure being created or recovered by another member")
	// ErrPidNamespace: a member runs in another pid namespace (CheckPidNS).
	ErrPidNamespace = errors.New("group: member in another pid namespace")
)

// Status slot allocation in the admin structure.
const (
	PeerSlots        = 32
	firstLeaseSlot   = 32
	firstCounterSlot = 48
	FirstFreeSlot    = 64 // later layers (channel status) use slots from here
	statusSlots      = 1024
	recordSize       = 256
	// MaxConnections is the number of connection slots (owner slots of
	// every structure of the group).
	MaxConnections = 1024
)

// Leases.
const (
	LeaseExpiry = firstLeaseSlot + 0 // the member that runs the periodic expiry scan
	LeaseBackup = firstLeaseSlot + 1 // the member that schedules CF backups (later)
)

// Counters.
const (
	CounterDefs = firstCounterSlot + 0 // bumped after every change of the shared definitions
	CounterLRSN = firstCounterSlot + 1 // log record sequence numbers (LRSN): the last one handed out
	// Inbound channel connections refused by any member's channel
	// initiator since the admin structure was created: over a listener's
	// cap, handshake (TLS and HELLO) not complete by its deadline
	// (channel.Inbound), and partners that did not authenticate (DISPLAY
	// QMGR INREFUSED, INTIMEOUT and INUNAUTH).
	CounterInboundRefused  = firstCounterSlot + 2
	CounterInboundTimedOut = firstCounterSlot + 3
	CounterInboundUnauth   = firstCounterSlot + 4
)

// Config locates a group's files.
type Config struct {
	// Name is the group name; default QSG1. Same rules as structure names.
	Name string
	// DataDir holds the shared definitions, recovery logs and backups;
	// default $XDG_STATE_HOME/qmgr/<name> (or ~/.local/state/qmgr/<name>).
	DataDir string
	// CFDir holds the CF structure files; default /dev/shm/qmgr-<name>.
	CFDir string
	// AdminSize and AppSize are the sizes of new structures; defaults
	// 16 MiB and 256 MiB.
	AdminSize, AppSize uint64
	// AppElementSize is the data element size of the application
	// structures this process creates; default 256 bytes, a multiple of 64.
	// Larger elements suit large messages (fewer elements per message)
	// and cost room for messages just above an entry's inline part.
	AppElementSize int
}

// WithDefaults is c with the defaults documented on its fields applied.
// DataDir's default is under $XDG_STATE_HOME, or else under the home
// directory; with neither it stays empty, and Validate says why.
func (c Config) WithDefaults() Config {
	if c.Name == "" {
		c.Name = "QSG1"
	}
	if c.DataDir == "" {
		if base := stateHome(); base != "" {
			c.DataDir = filepath.Join(base, "qmgr", c.Name)
		}
	}
	if c.CFDir == "" {
		c.CFDir = shm.DefaultDir(c.Name)
	}
	if c.AdminSize == 0 {
		c.AdminSize = 16 << 20
	}
	if c.AppSize == 0 {
		c.AppSize = 256 << 20
	}
	if c.AppElementSize == 0 {
		c.AppElementSize = 256
	}
	return c
}

// stateHome is $XDG_STATE_HOME, or ~/.local/state; empty when neither is
// known.
func stateHome() string {
	if base := os.Getenv("XDG_STATE_HOME"); base != "" {
		return base
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return ""
	}
	return filepath.Join(home, ".local", "state")
}

// Validate checks the configuration as Open uses it (with its defaults
// applied); it changes nothing.
func (c Config) Validate() error {
	c = c.WithDefaults()
	if !shm.ValidName(c.Name) {
		return fmt.Errorf("%w: group name %q (1 to 48 of A-Z a-z 0-9 . _ %%)", ErrConfig, c.Name)
	}
	if c.DataDir == "" {
		_, err := os.UserHomeDir()
		return fmt.Errorf("%w: no data directory given and no home directory: %v", ErrConfig, err)
	}
	if c.AppElementSize < 64 || c.AppElementSize > 1<<20 || c.AppElementSize%64 != 0 {
		return fmt.Errorf("%w: application element size %d (64 bytes to 1 MiB, a multiple of 64)", ErrConfig, c.AppElementSize)
	}
	return nil
}

// Group is an attached group: its admin structure and the application
// structures opened so far.
type Group struct {
	cfg   Config
	admin *lockfree.Structure

	mu     sync.Mutex
	apps   map[string]*lockfree.Structure
	ghosts []*lockfree.Structure // failed structures still mapped (owners may use them until they notice): closed by Close
	// failedIDs holds, per structure name, the creation times (shm
	// Header.Created, Unix ns) of the files found failed: a file of that
	// name carrying one of them is a copy of a failed file put in its
	// place, not a recovered structure (Failed, structure). Under mu.
	failedIDs map[string][]int64
}

// AdminParams are the admin structure's parameters.
func AdminParams() lockfree.Params {
	return lockfree.Params{Owners: MaxConnections, Queues: 1, Entries: 64, Elements: 64,
		StatusSlots: statusSlots, StatusSize: recordSize}
}

// QueuesPerStructure is how many queues an application structure holds.
// Every (connection, queue) pair has a 64-byte count cell, so this and
// MaxConnections set a fixed cost of 16 MiB per structure.
const QueuesPerStructure = 256

// AppStatusSlots is how many status slots a new application structure
// has: recovery units keep their role record and one progress record per
// replica there (1 + REPLICAS slots per unit: 102 units of 4 replicas).
// A structure made before keeps the count it was made with.
const AppStatusSlots = 512

// AppParams are the parameters of application structures (counts come from
// the size).
func AppParams() lockfree.Params {
	return lockfree.Params{Owners: MaxConnections, Queues: QueuesPerStructure, StatusSlots: AppStatusSlots}
}

// Open attaches the group's admin structure, creating the directories and
// the structure when create is set (members do; applications do not).
func Open(cfg Config, create bool) (*Group, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	g := &Group{cfg: cfg, apps: map[string]*lockfree.Structure{}}
	var err error
	if create {
		// On disk: the data directory's name must survive a power cut.
		if err := vfs.MkdirDurableWith(vfs.OS(), cfg.DataDir, ownedfs.MkdirAll); err != nil {
			return nil, fmt.Errorf("group %s: data directory: %w", cfg.Name, err)
		}
		g.admin, _, err = lockfree.Create(lockfree.CreateOptions{Dir: cfg.CFDir, Name: shm.AdminStructure, Kind: shm.KindAdmin,
			Size: cfg.AdminSize, Params: AdminParams()})
	} else {
		g.admin, err = lockfree.Attach(cfg.CFDir, shm.AdminStructure)
		if errors.Is(err, shm.ErrNotFound) {
			return nil, fmt.Errorf("%w: %s has no admin structure (is a member of group %s running?): %v", ErrNoGroup, cfg.CFDir, cfg.Name, err)
		}
	}
	if err != nil {
		return nil, err
	}
	if g.admin.Params().StatusSlots < statusSlots || g.admin.Params().Owners != MaxConnections {
		g.admin.Close()
		return nil, fmt.Errorf("%w: %s is not a group admin structure", ErrConfig, shm.AdminStructure)
	}
	return g, nil
}

// Config is the group's configuration (defaults applied).
func (g *Group) Config() Config { return g.cfg }

// Admin is the admin structure.
func (g *Group) Admin() *lockfree.Structure { return g.admin }

// Structure attaches (or, with create, creates) an application structure.
func (g *Group) Structure(name string, create bool) (*lockfree.Structure, error) {
	return g.StructureSized(name, create, 0)
}

// StructureSized is Structure with the size of a new structure (0: the
// configured AppSize).
func (g *Group) StructureSized(name string, create bool, size uint64) (*lockfree.Structure, error) {
	s, _, err := g.structure(name, create, size, 0)
	return s, err
}

// CreateStructure attaches application structure name, creating it (of
// size bytes, with data elements of elemSize bytes; 0: the configured
// AppSize and AppElementSize) when it does not exist, and reports whether
// this call created it. A structure it creates is out of
// service (lockfree.CreateOptions.Recovering) until its creator, which
// recovers its persistent messages first, puts it in service.
func (g *Group) CreateStructure(name string, size uint64, elemSize int) (*lockfree.Structure, bool, error) {
	return g.structure(name, true, size, elemSize)
}

// Failed takes mapping s of structure name, found failed (its file is
// gone or damaged), out of service in this process and every other that
// maps the same file, and forgets it when it is the group's mapping of
// name, so that the next Structure attaches the recovered one. It acts on
// s, and on a copy of s's file put in its place (same bytes, so the same
// creation time: whatever s's file received after the copy is missing
// from it, so it is failed too, now or when attached). A recovered file of
// the same name, which the group may map by now, stays in service: a
// caller that found s failed may be late (failing by name failed the
// structure a survivor had just recovered).
func (g *Group) Failed(name string, s *lockfree.Structure) {
	id := s.Mapping().Header().Created.UnixNano()
	g.mu.Lock()
	if g.failedIDs == nil {
		g.failedIDs = map[string][]int64{}
	}
	if !slices.Contains(g.failedIDs[name], id) {
		g.failedIDs[name] = append(g.failedIDs[name], id)
	}
	cur, ok := g.apps[name]
	copied := ok && cur != s && cur.Mapping().Header().Created.UnixNano() == id
	if ok && (cur == s || copied) {
		delete(g.apps, name)
		g.ghosts = append(g.ghosts, cur)
	}
	g.mu.Unlock()
	s.Fail()
	if copied {
		cur.Fail()
	}
}

// copyOfFailed reports whether s, just attached as structure name, is a
// copy of a file of that name found failed (Failed). Under mu.
func (g *Group) copyOfFailed(name string, s *lockfree.Structure) bool {
	return slices.Contains(g.failedIDs[name], s.Mapping().Header().Created.UnixNano())
}

func (g *Group) structure(name string, create bool, size uint64, elemSize int) (*lockfree.Structure, bool, error) {
	if size == 0 {
		size = g.cfg.AppSize
	}
	if elemSize == 0 {
		elemSize = g.cfg.AppElementSize
	}
	g.mu.Lock()
	s, ok := g.apps[name]
	g.mu.Unlock()
	if ok {
		if s.Mapping().Check() == nil {
			return s, false, nil
		}
		// Its file is gone or damaged (in service or not: a process that
		// has not noticed yet): out of service, and a recovered one may be
		// there.
		g.Failed(name, s)
	}
	// Create or attach without the lock: creating a large structure takes a
	// while (its pages are populated) and others must not wait for it.
	var err error
	created := false
	if create {
		p := AppParams()
		p.ElementSize = elemSize
		s, created, err = lockfree.Create(lockfree.CreateOptions{Dir: g.cfg.CFDir, Name: name, Kind: shm.KindApplication,
			Size: size, Params: p, Recovering: true})
	} else {
		s, err = lockfree.Attach(g.cfg.CFDir, name)
	}
	if err != nil {
		return nil, false, err
	}
	if s.Params().Owners != MaxConnections {
		s.Close()
		return nil, false, fmt.Errorf("%w: structure %s has %d owner slots, the group uses %d", ErrConfig, name, s.Params().Owners, MaxConnections)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if prev, ok := g.apps[name]; ok { // attached concurrently
		if prev.Mapping().Check() == nil {
			s.Close()
			return prev, created, nil
		}
		// An attach that began before a recovery replaced the file, and
		// ended after: it maps the failed one. Ours is current.
		g.ghosts = append(g.ghosts, prev)
		prev.Fail()
	}
	if g.copyOfFailed(name, s) {
		s.Fail() // a failed file's copy: recovered like the failed file
	}
	g.apps[name] = s
	if f := OffloadFree; f != nil {
		s.SetOffloadFree(func(ref []byte) error { return f(g, name, s, ref) })
	}
	return s, created, nil
}

// OffloadFree, when set (package mq sets it), frees the data-set run of an
// offloaded message of application structure name (attached as s) when
// its entry is freed: it is installed as the offload-free hook of every
// application structure a Group attaches (lockfree.Structure.SetOffloadFree),
// so that whoever frees an entry (a get, a commit, a repair of a dead
// connection by its member) frees its run.
var OffloadFree func(g *Group, name string, s *lockfree.Structure, ref []byte) error

// Depth is the depth of queue q in application structure structure.
func (g *Group) Depth(structure, q string) (int64, error) {
	s, err := g.Structure(structure, false)
	if err != nil {
		return 0, err
	}
	id, err := s.LookupQueue(q)
	if err != nil {
		return 0, err
	}
	return s.Depth(id), nil
}

// Structures attaches every application structure present in the CF
// directory and returns them by name, sorted.
func (g *Group) Structures() ([]string, error) {
	names, err := shm.List(g.cfg.CFDir)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, n := range names {
		if n == shm.AdminStructure {
			continue
		}
		if _, err := g.Structure(n, false); err != nil {
			return out, fmt.Errorf("structure %s: %w", n, err)
		}
		out = append(out, n)
	}
	sort.Strings(out)
	return out, nil
}

// QueueInfos describes every queue of the group's application structures
// (Structures), by name. A structure that cannot be attached is left out;
// the first such error (or Structures') is returned with the queues of the
// others.
func (g *Group) QueueInfos() (map[string]lockfree.QueueInfo, error) {
	out := map[string]lockfree.QueueInfo{}
	names, err := g.Structures()
	for _, n := range names {
		s, serr := g.Structure(n, false)
		if serr != nil {
			err = cmp.Or(err, fmt.Errorf("structure %s: %w", n, serr))
			continue
		}
		for _, qi := range s.Queues() {
			out[qi.Name] = qi
		}
	}
	return out, err
}

// Close detaches every structure.
func (g *Group) Close() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	var errs []error
	for n, s := range g.apps {
		errs = append(errs, s.Close())
		delete(g.apps, n)
	}
	for _, s := range g.ghosts {
		s.Close() // its file is gone: nothing to report
	}
	g.ghosts = nil
	errs = append(errs, g.admin.Close())
	return errors.Join(errs...)
}

// ConnLabel is the owner label of a connection of incarnation inc of the
// member in peer slot peer: the member recovers it when the application
// dies, its peers when the member dies. The label carries the incarnation
// (its low 24 bits) so that a connection left over from an earlier
// incarnation of the slot is never taken for one of the current member's.
//
//	bits  0..31  peer slot
//	bits 32..39  1 (a connection label)
//	bits 40..63  incarnation mod 2^24
func ConnLabel(peer int, inc uint64) uint64 {
	return (inc&labelIncMask)<<40 | 1<<32 | uint64(uint32(peer))
}

const labelIncMask = 1<<24 - 1

// LabelPeer returns the peer slot and the incarnation (mod 2^24) a
// connection label names.
func LabelPeer(label uint64) (peer int, inc uint64, ok bool) {
	if (label>>32)&0xff != 1 || uint32(label) >= PeerSlots {
		return 0, 0, false
	}
	return int(uint32(label)), label >> 40, true
}

// SameIncarnation reports whether a label's incarnation (mod 2^24) is inc.
func SameIncarnation(labelInc, inc uint64) bool { return labelInc == inc&labelIncMask }

// StructureState is what a structure's state looks like to an operator
// (DISPLAY CFSTATUS, qmgr status).
type StructureState struct {
	// Status is ACTIVE (in service), RECOVERING (a live process is
	// filling it) or FAILED (out of service until a member recovers it).
	Status string
	// Recoverer is the process that is (or was) recovering it, and
	// RecovererName the member it is ("" when none is).
	Recoverer     procid.ID
	RecovererName string
	// Reason says why it is not ACTIVE.
	Reason string
}

// StructureStatus describes structure s, attached through g.
func (g *Group) StructureStatus(s *lockfree.Structure) StructureState {
	if err := s.Mapping().Check(); err != nil {
		return StructureState{Status: "FAILED", Reason: err.Error()}
	}
	st, rec := s.Service()
	switch st {
	case lockfree.InService:
		return StructureState{Status: "ACTIVE"}
	case lockfree.Failed:
		return StructureState{Status: "FAILED", Reason: "taken out of service (its file was damaged or qmgr check --fail found it damaged); the members recover it unless it is RECAUTO(NO)"}
	}
	out := StructureState{Status: "RECOVERING", Recoverer: rec, RecovererName: g.memberOf(rec)}
	who := fmt.Sprintf("pid %d", rec.Pid)
	if out.RecovererName != "" {
		who = fmt.Sprintf("member %s (pid %d)", out.RecovererName, rec.Pid)
	}
	if !procid.Alive(rec) {
		out.Status = "FAILED"
		out.Reason = "its recoverer, " + who + ", died in the middle of the recovery; the members recover it again"
		return out
	}
	out.Reason = "being recovered by " + who
	return out
}

// memberOf is the name of the member whose process id is ("" if none).
func (g *Group) memberOf(id procid.ID) string {
	peers, err := g.Peers()
	if err != nil {
		return ""
	}
	for _, p := range peers {
		if p.Process == id && id.Pid != 0 {
			return p.Name
		}
	}
	return ""
}
