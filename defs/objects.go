package defs

import (
	"fmt"
	"path/filepath"
	"strings"
	"time"
)

// Type is an object type, named as in MQSC.
type Type string

// Object types.
const (
	TypeQLocal   Type = "QLOCAL"
	TypeCFStruct Type = "CFSTRUCT"
	TypeQMgr     Type = "QMGR"
	TypeBackup   Type = "BACKUP"
)

// GroupQMgr is the name of the one QMGR object: the group's attributes.
const GroupQMgr = "GROUP"

// Queue is a local queue shared by the group (MQ's QLOCAL with
// QSGDISP(SHARED)).
type Queue struct {
	Name     string `json:"QUEUE"`
	MaxDepth int64  `json:"MAXDEPTH"` // default 5000
	MaxMsgL  int    `json:"MAXMSGL"`  // default 4194304
	DefPsist bool   `json:"DEFPSIST"` // default NO
	DefPrty  int    `json:"DEFPRTY"`  // 0..9, default 0
	BOThresh int    `json:"BOTHRESH"` // 0: no backout threshold
	BOQName  string `json:"BOQNAME"`
	CFStruct string `json:"CFSTRUCT"` // default APPL1
	IndxType string `json:"INDXTYPE"` // NONE, MSGID, CORRELID; default NONE
	Usage    string `json:"USAGE"`    // NORMAL, XMITQ; default NORMAL
	Trigger  bool   `json:"TRIGGER"`  // XMITQ: start the sender channel when messages arrive; default NO
	TrigData string `json:"TRIGDATA"` // XMITQ: the channel to start; default the one sender using the queue
	Descr    string `json:"DESCR"`
	// AMQP is the queue's AMQP part: set for a queue declared through
	// AMQP (package amqp/qsg), nil for one only MQ applications use.
	AMQP    *QueueAMQP `json:"AMQP,omitempty"`
	Created time.Time  `json:"-"`
	Altered time.Time  `json:"-"`
}

// DefaultQueue is a queue with MQ's defaults.
func DefaultQueue(name string) Queue {
	return Queue{Name: name, MaxDepth: 5000, MaxMsgL: 4 << 20, CFStruct: "APPL1", IndxType: "NONE", Usage: "NORMAL"}
}

// Validate checks a queue definition.
func (q Queue) Validate() error {
	switch {
	case !ValidName(q.Name):
		return fmt.Errorf("%w: queue name %q", ErrBadName, q.Name)
	case q.MaxDepth < 0 || q.MaxDepth > 999_999_999:
		return fmt.Errorf("%w: MAXDEPTH(%d) not in 0..999999999", ErrBadValue, q.MaxDepth)
	case q.MaxMsgL < 0 || q.MaxMsgL > 100<<20:
		return fmt.Errorf("%w: MAXMSGL(%d) not in 0..104857600", ErrBadValue, q.MaxMsgL)
	case q.DefPrty < 0 || q.DefPrty > 9:
		return fmt.Errorf("%w: DEFPRTY(%d) not in 0..9", ErrBadValue, q.DefPrty)
	case q.BOThresh < 0 || q.BOThresh > 999_999_999:
		return fmt.Errorf("%w: BOTHRESH(%d) not in 0..999999999", ErrBadValue, q.BOThresh)
	case q.BOQName != "" && !ValidName(q.BOQName):
		return fmt.Errorf("%w: BOQNAME(%s)", ErrBadName, q.BOQName)
	case !ValidStructName(q.CFStruct):
		return fmt.Errorf("%w: CFSTRUCT(%s)", ErrBadName, q.CFStruct)
	case q.IndxType != "NONE" && q.IndxType != "MSGID" && q.IndxType != "CORRELID":
		return fmt.Errorf("%w: INDXTYPE(%s) is not NONE, MSGID or CORRELID", ErrBadValue, q.IndxType)
	case q.Usage != "NORMAL" && q.Usage != "XMITQ":
		return fmt.Errorf("%w: USAGE(%s) is not NORMAL or XMITQ", ErrBadValue, q.Usage)
	case len(q.Descr) > 64:
		return fmt.Errorf("%w: DESCR longer than 64 characters", ErrBadValue)
	case q.TrigData != "" && !ValidChannelName(q.TrigData):
		return fmt.Errorf("%w: TRIGDATA(%s) is not a channel name", ErrBadValue, q.TrigData)
	}
	if q.AMQP != nil {
		return q.AMQP.Validate()
	}
	return nil
}

// CFStruct is a coupling-facility application structure.
type CFStruct struct {
	Name   string `json:"CFSTRUCT"`
	SizeMB int    `json:"SIZE"` // MiB (MinStructMiB..1048576); default 256
	// ElemSize is the size of the structure's data elements in bytes
	// (ELEMSIZE): a message takes whole elements, so large messages want
	// large ones and small messages small ones. 0: the group's
	// --app-element-size (256 by default). Fixed at creation.
	ElemSize int    `json:"ELEMSIZE,omitempty"`
	Descr    string `json:"DESCR"`
	// NoRecAuto is RECAUTO(NO): a member that finds the structure failed
	// leaves it failed until RECOVER CFSTRUCT (default RECAUTO(YES):
	// members recover it by themselves).
	NoRecAuto bool `json:"NORECAUTO,omitempty"`
	// Offload is OFFLOAD(SMDS): message bodies the offload rules pick go
	// to the putting member's shared message data set for the structure,
	// and the CF entry holds a reference to them (docs/design/smds.md).
	// "" (the default, also OFFLOAD(NONE)): every body stays in the CF.
	Offload string `json:"OFFLOAD,omitempty"`
	// OffldSz is OFFLDSZ: with OFFLOAD(SMDS), bodies of at least this many
	// bytes are offloaded. 0: DefaultOffldSz.
	OffldSz int `json:"OFFLDSZ,omitempty"`
	// OffldRules are OFFLDnTH/OFFLDnSZ: when the structure's data
	// elements are at least Th% used, bodies of at least Sz bytes are
	// offloaded too. nil: DefaultOffloadRules.
	OffldRules *[3]OffloadRule `json:"OFFLDRULES,omitempty"`
	// DSDir is DSDIR: the directory of the structure's data sets. "":
	// smds under the group's data directory. Fixed at creation.
	DSDir   string    `json:"DSDIR,omitempty"`
	Created time.Time `json:"-"`
	Altered time.Time `json:"-"`
}

// OffloadRule is one of a structure's fill rules (OFFLDnTH, OFFLDnSZ):
// once the structure's data elements are at least Th percent used, a body
// of at least Sz bytes is offloaded. Sz = MaxOffldRuleSz turns the rule off.
type OffloadRule struct {
	Th int `json:"TH"` // percent, 0..100
	Sz int `json:"SZ"` // bytes, 0..MaxOffldRuleSz
}

// Offload values and defaults, after IBM MQ's.
const (
	OffloadSMDS    = "SMDS"
	OffloadNone    = "NONE"
	DefaultOffldSz = 64 << 10
	MaxOffldSz     = 1 << 30
	MaxOffldRuleSz = 64 << 10
	MaxDSDirLen    = 1024
)

// DefaultOffloadRules are the fill rules of a structure that sets none:
// 32 KiB bodies from 70% full, 4 KiB from 80%, every body from 90%.
var DefaultOffloadRules = [3]OffloadRule{{70, 32 << 10}, {80, 4 << 10}, {90, 0}}

// Offloads reports whether the structure is OFFLOAD(SMDS).
func (c CFStruct) Offloads() bool { return c.Offload == OffloadSMDS }

// OffloadSize is the effective OFFLDSZ.
func (c CFStruct) OffloadSize() int {
	if c.OffldSz == 0 {
		return DefaultOffldSz
	}
	return c.OffldSz
}

// Rules is the effective OFFLDnTH/OFFLDnSZ.
func (c CFStruct) Rules() [3]OffloadRule {
	if c.OffldRules == nil {
		return DefaultOffloadRules
	}
	return *c.OffldRules
}

// MinStructMiB is the smallest SIZE of a structure: every (connection,
// queue) pair has a 64-byte count cell, about 17 MiB of every structure
// (group.QueuesPerStructure), and 24 MiB leaves room for about 11,000
// messages.
const MinStructMiB = 24

// Validate checks a structure definition.
func (c CFStruct) Validate() error {
	switch {
	case !ValidStructName(c.Name):
		return fmt.Errorf("%w: CFSTRUCT name %q (1 to 12 letters and digits, starting with a letter)", ErrBadName, c.Name)
	case c.SizeMB < MinStructMiB || c.SizeMB > 1<<20:
		return fmt.Errorf("%w: SIZE(%d) not in %d..1048576 MiB", ErrBadValue, c.SizeMB, MinStructMiB)
	case c.ElemSize != 0 && (c.ElemSize < 64 || c.ElemSize > 1<<20 || c.ElemSize%64 != 0):
		return fmt.Errorf("%w: ELEMSIZE(%d): 64 bytes to 1 MiB, a multiple of 64", ErrBadValue, c.ElemSize)
	case len(c.Descr) > 64:
		return fmt.Errorf("%w: DESCR longer than 64 characters", ErrBadValue)
	case c.Offload != "" && c.Offload != OffloadSMDS && c.Offload != OffloadNone:
		return fmt.Errorf("%w: OFFLOAD(%s) is not SMDS or NONE", ErrBadValue, c.Offload)
	case c.OffldSz < 0 || c.OffldSz > MaxOffldSz:
		return fmt.Errorf("%w: OFFLDSZ(%d): 1 byte to 1 GiB", ErrBadValue, c.OffldSz)
	case len(c.DSDir) > MaxDSDirLen:
		return fmt.Errorf("%w: DSDIR longer than %d bytes", ErrBadValue, MaxDSDirLen)
	case c.DSDir != "" && !filepath.IsAbs(c.DSDir):
		return fmt.Errorf("%w: DSDIR(%s) is not an absolute path", ErrBadValue, c.DSDir)
	}
	if c.OffldRules != nil {
		for i, r := range c.OffldRules {
			switch {
			case r.Th < 0 || r.Th > 100:
				return fmt.Errorf("%w: OFFLD%dTH(%d) not in 0..100 percent", ErrBadValue, i+1, r.Th)
			case r.Sz < 0 || r.Sz > MaxOffldRuleSz:
				return fmt.Errorf("%w: OFFLD%dSZ(%d) not in 0..64K bytes", ErrBadValue, i+1, r.Sz)
			}
		}
	}
	return nil
}

// QMgr holds the group-wide queue manager attributes.
type QMgr struct {
	DeadQ string `json:"DEADQ"` // dead-letter queue; empty for none
	Descr string `json:"DESCR"`
	// CFRecTime is the recovery time target of automatic CF backups, in
	// milliseconds: the member holding the backup lease backs up a
	// structure once recovering it from its last backup and the logs
	// would take longer. 0 turns automatic backups off; default 30000.
	CFRecTime int `json:"CFRECTIME"`
}

// Backup records a fuzzy backup of an application structure (package
// recovery/backup has the file's layout). Its object name is BackupName.
type Backup struct {
	Structure  string    `json:"CFSTRUCT"`
	Start      uint64    `json:"STARTLRSN"`
	ReplayFrom uint64    `json:"REPLAYLRSN"`
	Path       string    `json:"PATH"`
	Size       int64     `json:"SIZE"`
	Messages   uint64    `json:"MSGS"`
	Taken      time.Time `json:"TAKEN"`
	// Logged is the structure's count of logged bytes when the backup
	// started (lockfree.Structure.Logged): what was logged since sizes
	// the next recovery.
	Logged uint64 `json:"LOGGED"`
}

// ReplayRate is the replay rate the last recovery measured, object
// RECOVERY(REPLAY); the automatic backup schedule divides by it.
type ReplayRate struct {
	BytesPerSec   float64   `json:"BYTESPERSEC"`
	RecordsPerSec float64   `json:"RECORDSPERSEC"`
	Measured      time.Time `json:"MEASURED"`
}

// Recovery statistics.
const (
	TypeRecovery = Type("RECOVERY")
	ReplayName   = "REPLAY"
	// DefaultReplayBytesPerSec is the replay rate assumed until a recovery
	// measures one: the design's 1M records/s of about 200 bytes.
	DefaultReplayBytesPerSec = 200e6
)

// BackupName is the object name of the backup of structure that starts
// at LRSN start: names sort by start within a structure.
func BackupName(structure string, start uint64) string {
	return fmt.Sprintf("%s.%016x", structure, start)
}

// DefaultCFRecTime is CFRecTime's default (30 s).
const DefaultCFRecTime = 30000

// Validate checks the attributes.
func (m QMgr) Validate() error {
	if m.DeadQ != "" && !ValidName(m.DeadQ) {
		return fmt.Errorf("%w: DEADQ(%s)", ErrBadName, m.DeadQ)
	}
	if m.CFRecTime < 0 || m.CFRecTime > 7*24*3600*1000 {
		return fmt.Errorf("%w: CFRECTIME(%d): 0 (off) to a week, in milliseconds", ErrBadValue, m.CFRecTime)
	}
	return nil
}

// ValidName reports whether s is a valid object name: 1 to 48 of
// A-Z a-z 0-9 . / _ % and, beyond MQ's set, - (so that the usual AMQP
// queue names, my-queue or amq.gen-..., are queue names too).
func ValidName(s string) bool {
	if len(s) == 0 || len(s) > 48 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '/' || c == '_' || c == '%' || c == '-') {
			return false
		}
	}
	return true
}

// ValidStructName reports whether s is a valid CF structure name: as in IBM
// MQ, 1 to 12 letters and digits starting with a letter.
func ValidStructName(s string) bool {
	if len(s) == 0 || len(s) > 12 || !(s[0] >= 'A' && s[0] <= 'Z' || s[0] >= 'a' && s[0] <= 'z') {
		return false
	}
	return strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9')
	}) < 0
}

// Match reports whether name matches an MQSC generic pattern: a trailing *
// matches any suffix, a lone * matches everything.
func Match(pattern, name string) bool {
	if strings.HasSuffix(pattern, "*") {
		return strings.HasPrefix(name, pattern[:len(pattern)-1])
	}
	return pattern == name
}
