package mqsc

import (
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/qmgr/qmgr/defs"
	"github.com/qmgr/qmgr/group"
	"github.com/qmgr/qmgr/mq"
	"github.com/qmgr/qmgr/smds"
)

func defineStruct(env Env, c Command) ([]Result, error) {
	if err := checkFlags(c, "REPLACE", "NOREPLACE"); err != nil {
		return nil, err
	}
	if !defs.ValidStructName(c.Name) {
		return nil, fmt.Errorf("%w: CFSTRUCT(%s): 1 to 12 letters and digits, starting with a letter", ErrValue, c.Name)
	}
	// The checks run twice: first to learn whether a structure file must be
	// created (which can take a while for a large one, so it is done outside
	// the repository's write transaction), then again in that transaction.
	var def defs.CFStruct
	created := false
	decide := func(tx *defs.Tx) error {
		old, err := tx.Struct(c.Name)
		exists := err == nil
		if err := checkDefine(c, "CFSTRUCT", exists); err != nil {
			return err
		}
		def = defs.CFStruct{Name: c.Name, SizeMB: 256}
		if exists {
			def = old
		}
		o := cfstructObj{CFStruct: def}
		if exists {
			o.old = &old
		}
		if err := cfstructTable.apply(&o, c.Attrs); err != nil {
			return err
		}
		def = o.CFStruct
		if err := def.Validate(); err != nil {
			return fmt.Errorf("%w: %v", ErrValue, err)
		}
		created = !exists
		return nil
	}
	if err := env.Repo().View(decide); err != nil {
		return nil, err
	}
	if created {
		if err := env.CreateStructure(def); err != nil {
			return nil, err
		}
	}
	err := env.Repo().Update(func(tx *defs.Tx) error {
		wasCreated := created
		if err := decide(tx); err != nil {
			return err
		}
		if created && !wasCreated {
			return fmt.Errorf("%w: CFSTRUCT(%s) was deleted concurrently; try again", ErrExists, c.Name)
		}
		_, err := tx.Save(defs.TypeCFStruct, def.Name, def, defs.Replace)
		return err
	})
	if err != nil {
		return nil, err
	}
	msg := "AMQ8110I: CF structure created."
	if !created {
		msg = "AMQ8111I: CF structure changed."
	}
	return []Result{{Message: msg}}, env.DefsChanged()
}

// cfstructObj is a structure's definition for its attribute table.
type cfstructObj struct {
	defs.CFStruct
	// old is the definition before (DEFINE REPLACE, ALTER): its SIZE and
	// ELEMSIZE are fixed at creation. nil for a new structure.
	old *defs.CFStruct
	// elem is the element size DISPLAY shows: ELEMSIZE, or the group's
	// when that is 0.
	elem int64
}

var cfstructTable = table[cfstructObj]{
	typ: "CFSTRUCT", header: "AMQ8112I: Display CF structure details.", defaultAll: true, notFound: notFoundAs("CFSTRUCT"),
	attrs: []attr[cfstructObj]{
		{name: "CFSTRUCT", ident: true, show: func(s *cfstructObj) any { return s.Name }},
		{name: "SIZE", show: func(s *cfstructObj) any { return int64(s.SizeMB) }, set: func(s *cfstructObj, a Attr) error {
			n, err := parseIntAs[int](a, defs.MinStructMiB, 1<<20)
			if err != nil {
				return err
			}
			if s.old != nil && n != s.old.SizeMB {
				return fmt.Errorf("%w: SIZE of CFSTRUCT(%s) is fixed at creation (%d MiB)", ErrValue, s.Name, s.old.SizeMB)
			}
			s.SizeMB = n
			return nil
		}},
		{name: "ELEMSIZE", show: func(s *cfstructObj) any { return s.elem }, set: func(s *cfstructObj, a Attr) error {
			n, err := parseIntAs[int](a, 64, 1<<20)
			if err != nil {
				return err
			}
			if s.old != nil && n != s.old.ElemSize {
				return fmt.Errorf("%w: ELEMSIZE of CFSTRUCT(%s) is fixed at creation", ErrValue, s.Name)
			}
			s.ElemSize = n
			return nil
		}},
		{name: "RECAUTO", show: func(s *cfstructObj) any { return yesNo(!s.NoRecAuto) }, set: func(s *cfstructObj, a Attr) error {
			switch a.Value {
			case "YES":
				s.NoRecAuto = false
			case "NO":
				s.NoRecAuto = true
			default:
				return fmt.Errorf("%w: RECAUTO(%s): YES or NO", ErrValue, a.Value)
			}
			return nil
		}},
		{name: "DESCR", show: func(s *cfstructObj) any { return s.Descr }, set: func(s *cfstructObj, a Attr) error {
			s.Descr = a.Value
			return nil
		}},
		{name: "OFFLOAD", show: func(s *cfstructObj) any {
			if s.Offloads() {
				return defs.OffloadSMDS
			}
			return defs.OffloadNone
		}, set: func(s *cfstructObj, a Attr) error {
			v, err := parseEnum(a, defs.OffloadSMDS, defs.OffloadNone)
			if err != nil {
				return err
			}
			s.Offload = v
			if v == defs.OffloadNone {
				s.Offload = ""
			}
			return nil
		}},
		{name: "OFFLDSZ", show: func(s *cfstructObj) any { return showBytes(s.OffloadSize()) }, set: func(s *cfstructObj, a Attr) error {
			n, err := parseBytes(a, 1, defs.MaxOffldSz)
			if err != nil {
				return err
			}
			s.OffldSz = n
			return nil
		}},
		offldRule(0, false), offldRule(0, true),
		offldRule(1, false), offldRule(1, true),
		offldRule(2, false), offldRule(2, true),
		{name: "DSDIR", show: func(s *cfstructObj) any { return s.DSDir }, set: func(s *cfstructObj, a Attr) error {
			if a.Value != "" && !filepath.IsAbs(a.Value) {
				return fmt.Errorf("%w: DSDIR(%s) is not an absolute path", ErrValue, a.Value)
			}
			if s.old != nil && a.Value != s.old.DSDir {
				// Its data sets are found there by number: another
				// directory would hide them (and share their space maps).
				return fmt.Errorf("%w: DSDIR of CFSTRUCT(%s) is fixed at creation (%q)", ErrValue, s.Name, s.old.DSDir)
			}
			s.DSDir = a.Value
			return nil
		}},
		{name: "CRDATE", show: func(s *cfstructObj) any { return mqDay(s.Created) }},
		{name: "CRTIME", show: func(s *cfstructObj) any { return mqTime(s.Created) }},
	},
}

// offldRule is the attribute OFFLDnTH (size false) or OFFLDnSZ of rule i.
func offldRule(i int, size bool) attr[cfstructObj] {
	name := fmt.Sprintf("OFFLD%dTH", i+1)
	if size {
		name = fmt.Sprintf("OFFLD%dSZ", i+1)
	}
	return attr[cfstructObj]{name: name, show: func(s *cfstructObj) any {
		r := s.Rules()[i]
		if size {
			return showBytes(r.Sz)
		}
		return int64(r.Th)
	}, set: func(s *cfstructObj, a Attr) error {
		rules := s.Rules()
		if size {
			n, err := parseBytes(a, 0, defs.MaxOffldRuleSz)
			if err != nil {
				return err
			}
			rules[i].Sz = n
		} else {
			n, err := parseIntAs[int](a, 0, 100)
			if err != nil {
				return err
			}
			rules[i].Th = n
		}
		s.OffldRules = &rules
		return nil
	}}
}

// parseBytes parses a size in bytes, optionally with a K or M suffix (units
// of 1024 and 1048576 bytes, as MQ's OFFLDSZ(64K)), in lo..hi bytes.
func parseBytes(a Attr, lo, hi int64) (int, error) {
	v, unit := a.Value, int64(1)
	switch {
	case strings.HasSuffix(v, "K"):
		v, unit = strings.TrimSuffix(v, "K"), 1<<10
	case strings.HasSuffix(v, "M"):
		v, unit = strings.TrimSuffix(v, "M"), 1<<20
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || a.Quoted || n < 0 || n > hi/unit+1 {
		if err == nil && !a.Quoted && n >= 0 {
			return 0, fmt.Errorf("%w: %s(%s) not in %s..%s", ErrValue, a.Key, a.Value, showBytes(int(lo)), showBytes(int(hi)))
		}
		return 0, fmt.Errorf("%w: %s(%s) is not a size in bytes (a number, optionally followed by K or M)", ErrValue, a.Key, a.Value)
	}
	if n *= unit; n < lo || n > hi {
		return 0, fmt.Errorf("%w: %s(%s) not in %s..%s", ErrValue, a.Key, a.Value, showBytes(int(lo)), showBytes(int(hi)))
	}
	return int(n), nil
}

// showBytes shows a size as MQ does: in K or M when a whole number of them.
func showBytes(n int) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return strconv.Itoa(n>>20) + "M"
	case n%(1<<10) == 0:
		return strconv.Itoa(n>>10) + "K"
	}
	return strconv.Itoa(n)
}

func displayStructs(env Env, c Command) ([]Result, error) {
	return display(c, &cfstructTable, func() ([]cfstructObj, error) {
		var cs []defs.CFStruct
		if err := env.Repo().View(func(tx *defs.Tx) error { var err error; cs, err = tx.Structs(c.Name); return err }); err != nil {
			return nil, err
		}
		out := make([]cfstructObj, len(cs))
		for i, s := range cs {
			out[i] = cfstructObj{CFStruct: s, elem: int64(s.ElemSize)}
			if s.ElemSize == 0 { // the group's default when it was created
				out[i].elem = int64(env.Group().Config().AppElementSize)
				if st, err := env.Group().Structure(s.Name, false); err == nil {
					out[i].elem = int64(st.Params().ElementSize)
				}
			}
		}
		return out, nil
	})
}

// cfstatusObj is a structure's status: STATUS, and either why it is not
// active (RECOVERER and RECPID while a member recovers it, REASON) or
// its usage.
type cfstatusObj struct {
	name, status string
	recoverer    string  // the recovering process's member name ("" for one that is not a member)
	recpid       int64   // the recovering process; 0 when nobody recovers it
	reason       *string // nil when active
	usage        *cfUsage
}

// cfUsage is an active structure's size and usage.
type cfUsage struct {
	size, entsMax, entsUsed, elemMax, elemUsed, queues, conns int64
}

// usageAttr is an attribute of an active structure's usage.
func usageAttr(name string, v func(u *cfUsage) int64) attr[cfstatusObj] {
	return attr[cfstatusObj]{name: name, show: func(s *cfstatusObj) any {
		if s.usage == nil {
			return nil
		}
		return v(s.usage)
	}}
}

var cfstatusTable = table[cfstatusObj]{
	typ: "CFSTATUS", header: "AMQ8113I: Display CF status details.", defaultAll: true, notFound: notFoundAs("CFSTRUCT"),
	attrs: []attr[cfstatusObj]{
		{name: "CFSTRUCT", ident: true, show: func(s *cfstatusObj) any { return s.name }},
		{name: "STATUS", show: func(s *cfstatusObj) any { return s.status }},
		{name: "RECOVERER", show: func(s *cfstatusObj) any {
			if s.recpid == 0 {
				return nil
			}
			return s.recoverer
		}},
		{name: "RECPID", show: func(s *cfstatusObj) any {
			if s.recpid == 0 {
				return nil
			}
			return s.recpid
		}},
		{name: "REASON", show: func(s *cfstatusObj) any {
			if s.reason == nil {
				return nil
			}
			return *s.reason
		}},
		usageAttr("SIZE", func(u *cfUsage) int64 { return u.size }),
		usageAttr("ENTSMAX", func(u *cfUsage) int64 { return u.entsMax }),
		usageAttr("ENTSUSED", func(u *cfUsage) int64 { return u.entsUsed }),
		usageAttr("ELEMMAX", func(u *cfUsage) int64 { return u.elemMax }),
		usageAttr("ELEMUSED", func(u *cfUsage) int64 { return u.elemUsed }),
		usageAttr("QUEUES", func(u *cfUsage) int64 { return u.queues }),
		usageAttr("CONNS", func(u *cfUsage) int64 { return u.conns }),
	},
}

// cfbackupObj is a structure's newest backup and the recovery estimate
// (DISPLAY CFSTATUS TYPE(BACKUP)).
type cfbackupObj struct {
	name string
	e    defs.Estimate
}

// backupAttr is an attribute of the newest backup (zero when there is
// none).
func backupAttr(name string, v func(b *defs.Backup) any, none any) attr[cfbackupObj] {
	return attr[cfbackupObj]{name: name, show: func(o *cfbackupObj) any {
		if o.e.Newest == nil {
			return none
		}
		return v(o.e.Newest)
	}}
}

var cfbackupTable = table[cfbackupObj]{
	typ: "CFSTATUS", header: "AMQ8113I: Display CF status details.", defaultAll: true, notFound: notFoundAs("CFSTRUCT"),
	attrs: []attr[cfbackupObj]{
		{name: "CFSTRUCT", ident: true, show: func(o *cfbackupObj) any { return o.name }},
		{name: "TYPE", ident: true, show: func(o *cfbackupObj) any { return "BACKUP" }},
		backupAttr("BKUPDATE", func(b *defs.Backup) any { return mqDay(b.Taken) }, ""),
		backupAttr("BKUPTIME", func(b *defs.Backup) any { return mqTime(b.Taken) }, ""),
		backupAttr("BKUPLRSN", func(b *defs.Backup) any { return int64(b.Start) }, int64(0)),
		backupAttr("BKUPSIZE", func(b *defs.Backup) any { return b.Size }, int64(0)),
		backupAttr("BKUPMSGS", func(b *defs.Backup) any { return int64(b.Messages) }, int64(0)),
		{name: "LOGBYTES", show: func(o *cfbackupObj) any { return int64(o.e.Bytes) }},
		{name: "REPLAYMBS", show: func(o *cfbackupObj) any { return int64(o.e.Rate.BytesPerSec / 1e6) }},
		{name: "RECOVERMS", show: func(o *cfbackupObj) any { return o.e.Time.Milliseconds() }},
	},
}

// cfsmdsObj is a data set of a structure (DISPLAY CFSTATUS TYPE(SMDS)),
// with this member's read cache and failed frees of the structure's runs.
type cfsmdsObj struct {
	name, qmgr string
	st         mq.DataSetStatus
	cache      smds.CacheMetrics
	free       mq.FreeErrors
}

// smdsAttr is a figure of a data set whose space map could be read.
func smdsAttr(name string, v func(s *smds.Stats) int64) attr[cfsmdsObj] {
	return attr[cfsmdsObj]{name: name, show: func(o *cfsmdsObj) any {
		if o.st.Err != nil {
			return nil
		}
		return v(&o.st.Stats)
	}}
}

// A structure without data sets shows no rows (displayCFStatus reports a
// structure that does not exist).
var cfsmdsTable = table[cfsmdsObj]{
	typ: "CFSTATUS", header: "AMQ8113I: Display CF status details.", defaultAll: true,
	attrs: []attr[cfsmdsObj]{
		{name: "CFSTRUCT", ident: true, show: func(o *cfsmdsObj) any { return o.name }},
		{name: "TYPE", ident: true, show: func(o *cfsmdsObj) any { return "SMDS" }},
		{name: "DSNUM", ident: true, show: func(o *cfsmdsObj) any { return int64(o.st.Num) }},
		{name: "QMNAME", show: func(o *cfsmdsObj) any { return o.qmgr }},
		{name: "STATUS", show: func(o *cfsmdsObj) any {
			if o.st.Err != nil {
				return "FAILED"
			}
			return "ACTIVE"
		}},
		{name: "REASON", show: func(o *cfsmdsObj) any {
			if o.st.Err == nil {
				return nil
			}
			return o.st.Err.Error()
		}},
		smdsAttr("DSSIZE", func(s *smds.Stats) int64 { return s.FileBytes }),
		smdsAttr("DSBLOCK", func(s *smds.Stats) int64 { return int64(s.BlockSize) }),
		smdsAttr("TOTBLKS", func(s *smds.Stats) int64 { return int64(s.Blocks) }),
		smdsAttr("USEDBLKS", func(s *smds.Stats) int64 { return int64(s.UsedBlocks) }),
		smdsAttr("FREEBLKS", func(s *smds.Stats) int64 { return int64(s.FreeBlocks) }),
		smdsAttr("RUNS", func(s *smds.Stats) int64 { return int64(s.Runs) }),
		smdsAttr("OWNERS", func(s *smds.Stats) int64 { return int64(s.Owners) }),
		{name: "CACHEHIT", show: func(o *cfsmdsObj) any { return int64(o.cache.Hits) }},
		{name: "CACHEMISS", show: func(o *cfsmdsObj) any { return int64(o.cache.Misses) }},
		{name: "CACHEEVICT", show: func(o *cfsmdsObj) any { return int64(o.cache.Evictions) }},
		{name: "CACHESIZE", show: func(o *cfsmdsObj) any { return o.cache.Bytes }},
		// This process's failed frees of the structure's runs (every
		// data set's; a run whose free failed stays used) and the last
		// error.
		{name: "FREEERRS", show: func(o *cfsmdsObj) any { return o.free.Count }},
		{name: "FREEERR", show: func(o *cfsmdsObj) any {
			if o.free.Last == nil {
				return nil
			}
			return o.free.Last.Error()
		}},
	},
}

// smdsStatus lists the data sets of structures cs.
func smdsStatus(env Env, cs []defs.CFStruct) ([]cfsmdsObj, error) {
	cache := mq.SMDSCacheMetrics()
	var out []cfsmdsObj
	for _, def := range cs {
		sts, err := mq.DataSetStatuses(env.Group(), def)
		if err != nil {
			return out, fmt.Errorf("data sets of CFSTRUCT(%s): %w", def.Name, err)
		}
		for _, st := range sts {
			o := cfsmdsObj{name: def.Name, st: st, cache: cache, free: mq.OffloadFreeErrors(env.Group().Config(), def.Name)}
			if p, err := env.Group().Peer(int(st.Num)); err == nil {
				o.qmgr = p.Name
			}
			out = append(out, o)
		}
	}
	return out, nil
}

// displayCFStatus shows the structures' status (TYPE(SUMMARY), the
// default) or their backups (TYPE(BACKUP)).
func displayCFStatus(env Env, c Command) ([]Result, error) {
	typ := "SUMMARY"
	for _, a := range c.Attrs {
		if a.Key != "TYPE" || (a.Value != "SUMMARY" && a.Value != "BACKUP" && a.Value != "SMDS") {
			return nil, fmt.Errorf("%w: DISPLAY CFSTATUS takes TYPE(SUMMARY|BACKUP|SMDS), not %s(%s)", ErrSyntax, a.Key, a.Value)
		}
		typ = a.Value
	}
	c.Attrs = nil // the rest is the selection
	structs := func() ([]defs.CFStruct, error) {
		var cs []defs.CFStruct
		err := env.Repo().View(func(tx *defs.Tx) error { var err error; cs, err = tx.Structs(c.Name); return err })
		return cs, err
	}
	if typ == "SMDS" {
		return display(c, &cfsmdsTable, func() ([]cfsmdsObj, error) {
			cs, err := structs()
			if err != nil {
				return nil, err
			}
			if len(cs) == 0 && !strings.HasSuffix(c.Name, "*") {
				return nil, notFoundAs("CFSTRUCT")(c.Name)
			}
			return smdsStatus(env, cs)
		})
	}
	if typ == "BACKUP" {
		return display(c, &cfbackupTable, func() ([]cfbackupObj, error) {
			cs, err := structs()
			if err != nil {
				return nil, err
			}
			return backupStatus(env, cs)
		})
	}
	return display(c, &cfstatusTable, func() ([]cfstatusObj, error) {
		cs, err := structs()
		if err != nil {
			return nil, err
		}
		out := make([]cfstatusObj, len(cs))
		for i, def := range cs {
			out[i] = structStatus(env, def)
		}
		return out, nil
	})
}

// structStatus is the status of structure def.
func structStatus(env Env, def defs.CFStruct) cfstatusObj {
	o := cfstatusObj{name: def.Name}
	_, s, err := env.OwnerIn(def)
	if errors.Is(err, group.ErrStructureBusy) {
		// Its file is missing and a member holds its recovery lock.
		reason := "being created and recovered by another member"
		o.status, o.reason = "RECOVERING", &reason
		return o
	}
	if err != nil {
		reason := err.Error()
		o.status, o.reason = "FAILED", &reason
		return o
	}
	if st := env.Group().StructureStatus(s); st.Status != "ACTIVE" {
		o.status, o.reason = st.Status, &st.Reason
		if st.Recoverer.Pid != 0 {
			o.recoverer, o.recpid = st.RecovererName, int64(st.Recoverer.Pid)
		}
		return o
	}
	u := s.Usage()
	p := s.Params()
	o.status = "ACTIVE"
	o.usage = &cfUsage{size: int64(s.Mapping().Header().Size >> 20),
		entsMax: int64(p.Entries), entsUsed: int64(u.EntriesUsed), elemMax: int64(p.Elements), elemUsed: int64(u.ElementsUsed),
		queues: int64(u.Queues), conns: int64(u.Owners)}
	return o
}

// structAction runs BACKUP or RECOVER CFSTRUCT(name) through do.
func structAction(env Env, c Command, do func(structure string) (string, error)) ([]Result, error) {
	if err := checkFlags(c); err != nil {
		return nil, err
	}
	if len(c.Attrs) > 0 {
		return nil, fmt.Errorf("%w: %s CFSTRUCT takes no attributes", ErrSyntax, c.Verb)
	}
	if err := env.Repo().View(func(tx *defs.Tx) error { _, err := tx.Struct(c.Name); return err }); err != nil {
		return nil, fmt.Errorf("%w: CFSTRUCT(%s)", ErrNotFound, c.Name)
	}
	msg, err := do(c.Name)
	if err != nil {
		return nil, err
	}
	return []Result{{Message: msg}}, nil
}

// backupStatus is each structure's newest backup and how long a recovery
// would take now: the bytes logged about the structure since the backup
// began, at the replay rate the last recovery measured (or the design's
// 200 MB/s).
func backupStatus(env Env, cs []defs.CFStruct) ([]cfbackupObj, error) {
	var out []cfbackupObj
	for _, def := range cs {
		var logged uint64
		if _, s, err := env.OwnerIn(def); err == nil {
			logged = s.Logged()
		}
		var e defs.Estimate
		if err := env.Repo().View(func(tx *defs.Tx) error { var err error; e, err = tx.RecoveryEstimate(def.Name, logged); return err }); err != nil {
			return nil, err
		}
		out = append(out, cfbackupObj{name: def.Name, e: e})
	}
	return out, nil
}
