package mq

import (
	"log/slog"
	"sync"
	"time"

	"github.com/qmgr/qmgr/group"
	"github.com/qmgr/qmgr/lockfree"
)

// Failed frees of offloaded runs. A run whose free fails (its data set
// does not open, its reference does not decode, its owner was revoked...)
// stays used: a leak the data set's checker reports, and nothing else
// would tell. lockfree counts them per attached Structure, but every
// connection attaches its own and a recovered structure is attached
// again, so this process tallies them here by structure (the frees all
// go through the hook group.OffloadFree), for DISPLAY CFSTATUS
// TYPE(SMDS) (FREEERRS, FREEERR) and the metrics
// (qmgr_smds_free_errors_total), and logs them: the first at once, later
// ones at most every freeErrLogEvery, with the count and the last error
// (a data set that fails every free must not flood the log).

// freeErrLogEvery is how often at most a structure's failed frees are
// logged after the first.
const freeErrLogEvery = time.Minute

// FreeErrors is the tally of one structure's failed frees in this process.
type FreeErrors struct {
	Count int64
	Last  error // the last failure (nil when Count is 0)
	// LastAt is when the last failure happened.
	LastAt time.Time
}

type freeErrTally struct {
	FreeErrors
	logged   int64     // Count when last logged
	loggedAt time.Time // when last logged
}

var freeErrs struct {
	mu sync.Mutex
	m  map[[2]string]*freeErrTally // (CF directory, structure)
}

// freeOffloadedCounted is freeOffloaded (the offload-free hook of every
// structure the process attaches), with its failures tallied and logged.
func freeOffloadedCounted(g *group.Group, name string, s *lockfree.Structure, b []byte) error {
	err := freeOffloaded(g, name, s, b)
	if err != nil {
		noteFreeError(g.Config(), name, err)
	}
	return err
}

// noteFreeError tallies a failed free of a run of structure name of the
// group of configuration cfg, and logs it (see freeErrLogEvery).
func noteFreeError(cfg group.Config, name string, err error) {
	now := time.Now()
	freeErrs.mu.Lock()
	if freeErrs.m == nil {
		freeErrs.m = map[[2]string]*freeErrTally{}
	}
	k := [2]string{cfg.CFDir, name}
	t := freeErrs.m[k]
	if t == nil {
		t = &freeErrTally{}
		freeErrs.m[k] = t
	}
	t.Count++
	t.Last, t.LastAt = err, now
	log := t.logged == 0 || now.Sub(t.loggedAt) >= freeErrLogEvery
	var since int64
	if log {
		since = t.Count - t.logged
		t.logged, t.loggedAt = t.Count, now
	}
	count := t.Count
	freeErrs.mu.Unlock()
	if log {
		slog.Default().Error("mq: the data-set run of an offloaded message could not be freed (it stays used: a leak the data set's checker reports)",
			"structure", name, "failed_frees", count, "since_last_logged", since, "err", err)
	}
}

// OffloadFreeErrors is this process's tally of failed frees of offloaded
// runs of structure name of the group of configuration cfg (zero: none).
func OffloadFreeErrors(cfg group.Config, name string) FreeErrors {
	freeErrs.mu.Lock()
	defer freeErrs.mu.Unlock()
	if t := freeErrs.m[[2]string{cfg.CFDir, name}]; t != nil {
		return t.FreeErrors
	}
	return FreeErrors{}
}
