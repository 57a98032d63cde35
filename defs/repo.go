package defs

import (
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"modernc.org/sqlite" // the database/sql driver "sqlite"

	"github.com/qmgr/qmgr/internal/ownedfs"
	"github.com/qmgr/qmgr/vfs"
)

// Sentinel errors.
var (
	ErrNotFound   = errors.New("defs: object not found")
	ErrExists     = errors.New("defs: object already exists")
	ErrBadName    = errors.New("defs: invalid name")
	ErrBadValue   = errors.New("defs: invalid attribute value")
	ErrPermission = errors.New("defs: not authorised")
	ErrCorrupt    = errors.New("defs: stored definition unreadable")
)

// schemaVersion is the repository's schema; version 1 (no aborted_uows
// table) is upgraded on open.
const schemaVersion = "2"

// FileName is the database file in the data directory.
const FileName = "defs.db"

// Repo is an open definitions repository.
type Repo struct {
	db   *sql.DB // writes: transactions take the write lock at BEGIN
	rdb  *sql.DB // reads: deferred transactions, never the write lock
	path string
}

// Open opens (creating when create is set) the repository in dataDir.
func Open(dataDir string, create bool) (*Repo, error) {
	path := filepath.Join(dataDir, FileName)
	if create {
		if err := vfs.MkdirDurableWith(vfs.OS(), dataDir, ownedfs.MkdirAll); err != nil {
			return nil, permErr(dataDir, err)
		}
		// Create the file ourselves so it gets owner/group permissions
		// (0660 whatever the umask); SQLite gives its WAL and
		// shared-memory files the same mode.
		f, created, err := ownedfs.OpenOrCreate(path, os.O_RDWR)
		if err != nil {
			return nil, permErr(path, err)
		}
		if created {
			// The new database's name survives a power cut (SQLite syncs
			// the directory for its WAL, not for the main file).
			if err := vfs.SyncParent(vfs.OS(), path); err != nil {
				f.Close()
				return nil, permErr(path, err)
			}
		}
		f.Close()
	} else if f, err := ownedfs.Open(path, os.O_RDWR); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%w: %s (no member of the group has started in this data directory)", ErrNotFound, path)
		}
		return nil, permErr(path, err)
	} else {
		f.Close()
	}
	// synchronous(FULL): in WAL mode a commit syncs the WAL before it
	// returns, so a definition a command reported made survives a power
	// cut (NORMAL syncs only at checkpoints: a lost DEFINE QLOCAL would
	// make recovery drop that queue's persistent messages). Every
	// connection of both pools gets these pragmas when it opens.
	dsn := "file:" + path + "?_pragma=journal_mode(WAL)&_pragma=busy_timeout(10000)&_pragma=synchronous(FULL)"
	db, err := sql.Open("sqlite", dsn+"&_txlock=immediate")
	if err != nil {
		return nil, fmt.Errorf("defs: open %s: %w", path, err)
	}
	rdb, err := sql.Open("sqlite", dsn+"&_txlock=deferred")
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("defs: open %s: %w", path, err)
	}
	r := &Repo{db: db, rdb: rdb, path: path}
	if err := r.init(); err != nil {
		r.Close()
		return nil, err
	}
	return r, nil
}

func permErr(path string, err error) error {
	if errors.Is(err, os.ErrPermission) {
		return fmt.Errorf("%w: %s: %v (run as the user that owns the group's files or a member of its group)", ErrPermission, path, err)
	}
	return fmt.Errorf("defs: %s: %w", path, err)
}

// initBusyWait bounds how long init retries a schema creation that
// SQLite refused with SQLITE_BUSY without waiting (as busy_timeout does).
const initBusyWait = 10 * time.Second

// init creates the schema if it is missing and checks its version. Members
// started together all run it at once, and SQLite does not call the busy
// handler where waiting could deadlock (a connection promoting its read
// lock to a write lock while another process writes, as CREATE TABLE IF
// NOT EXISTS in autocommit does; the switch of a new file to WAL): such a
// SQLITE_BUSY is retried, after a short pause, for up to initBusyWait.
func (r *Repo) init() error {
	deadline := time.Now().Add(initBusyWait)
	for pause := time.Millisecond; ; pause = min(2*pause, 50*time.Millisecond) {
		err := r.initOnce()
		if err == nil || !isBusy(err) || time.Now().After(deadline) {
			return err
		}
		time.Sleep(pause)
	}
}

// isBusy reports whether err is SQLite's SQLITE_BUSY (any extended code).
func isBusy(err error) bool {
	var se *sqlite.Error
	return errors.As(err, &se) && se.Code()&0xff == sqliteBusy
}

// sqliteBusy is SQLITE_BUSY, the primary result code.
const sqliteBusy = 5

func (r *Repo) initOnce() error {
	_, err := r.db.Exec(`
CREATE TABLE IF NOT EXISTS objects (
  type TEXT NOT NULL, name TEXT NOT NULL, def TEXT NOT NULL,
  created INTEGER NOT NULL, altered INTEGER NOT NULL,
  PRIMARY KEY (type, name));
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS aborted_uows (key INTEGER PRIMARY KEY, at INTEGER NOT NULL);
INSERT OR IGNORE INTO meta(key, value) VALUES ('schema_version', '` + schemaVersion + `');
UPDATE meta SET value = '` + schemaVersion + `' WHERE key = 'schema_version' AND value = '1';`)
	if err != nil {
		return fmt.Errorf("defs: initialise %s: %w", r.path, err)
	}
	var v string
	if err := r.db.QueryRow(`SELECT value FROM meta WHERE key='schema_version'`).Scan(&v); err != nil {
		return fmt.Errorf("defs: %s: %w", r.path, err)
	}
	if v != schemaVersion {
		return fmt.Errorf("%w: %s has schema version %s, this binary uses %s", ErrCorrupt, r.path, v, schemaVersion)
	}
	return nil
}

// Close closes the repository.
func (r *Repo) Close() error { return errors.Join(r.db.Close(), r.rdb.Close()) }

// Mode says what Save does when the object exists or not.
type Mode int

// Save modes.
const (
	Create  Mode = iota // fail with ErrExists when it exists
	Replace             // create or replace
	Alter               // fail with ErrNotFound when it does not exist
)

// Tx is a transaction on the repository.
type Tx struct{ tx *sql.Tx }

// Update runs f in one immediate transaction: either all of it happens or
// none. f may do other work (creating a queue in the CF) and fail to roll
// the definitions back.
func (r *Repo) Update(f func(tx *Tx) error) error {
	tx, err := r.db.Begin()
	if err != nil {
		return fmt.Errorf("defs: begin: %w", err)
	}
	if err := f(&Tx{tx}); err != nil {
		tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("defs: commit: %w", err)
	}
	return nil
}

// View runs f in a read transaction (a consistent snapshot that never
// waits for writers).
func (r *Repo) View(f func(tx *Tx) error) error {
	tx, err := r.rdb.Begin()
	if err != nil {
		return fmt.Errorf("defs: begin: %w", err)
	}
	defer tx.Rollback()
	return f(&Tx{tx})
}

// Save stores object obj (a Queue, CFStruct or QMgr) of type t under name.
func (t *Tx) Save(typ Type, name string, obj any, mode Mode) (created bool, err error) {
	js, err := json.Marshal(obj)
	if err != nil {
		return false, fmt.Errorf("defs: encode %s(%s): %w", typ, name, err)
	}
	now := time.Now().UnixNano()
	var exists int
	t.tx.QueryRow(`SELECT COUNT(*) FROM objects WHERE type=? AND name=?`, string(typ), name).Scan(&exists)
	switch {
	case mode == Create && exists > 0:
		return false, fmt.Errorf("%w: %s(%s)", ErrExists, typ, name)
	case mode == Alter && exists == 0:
		return false, fmt.Errorf("%w: %s(%s)", ErrNotFound, typ, name)
	}
	if exists > 0 {
		_, err = t.tx.Exec(`UPDATE objects SET def=?, altered=? WHERE type=? AND name=?`, string(js), now, string(typ), name)
	} else {
		_, err = t.tx.Exec(`INSERT INTO objects(type, name, def, created, altered) VALUES (?,?,?,?,?)`, string(typ), name, string(js), now, now)
	}
	if err != nil {
		return false, fmt.Errorf("defs: save %s(%s): %w", typ, name, err)
	}
	return exists == 0, nil
}

// Delete removes an object.
func (t *Tx) Delete(typ Type, name string) error {
	res, err := t.tx.Exec(`DELETE FROM objects WHERE type=? AND name=?`, string(typ), name)
	if err != nil {
		return fmt.Errorf("defs: delete %s(%s): %w", typ, name, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("%w: %s(%s)", ErrNotFound, typ, name)
	}
	if typ == TypeCFStruct {
		return t.forgetStruct(name)
	}
	return nil
}

// Load reads one object into obj, and its creation and alteration times.
func (t *Tx) Load(typ Type, name string, obj any) (created, altered time.Time, err error) {
	var js string
	var c, a int64
	err = t.tx.QueryRow(`SELECT def, created, altered FROM objects WHERE type=? AND name=?`, string(typ), name).Scan(&js, &c, &a)
	if errors.Is(err, sql.ErrNoRows) {
		return created, altered, fmt.Errorf("%w: %s(%s)", ErrNotFound, typ, name)
	}
	if err != nil {
		return created, altered, fmt.Errorf("defs: load %s(%s): %w", typ, name, err)
	}
	if err := json.Unmarshal([]byte(js), obj); err != nil {
		return created, altered, fmt.Errorf("%w: %s(%s): %v", ErrCorrupt, typ, name, err)
	}
	return time.Unix(0, c), time.Unix(0, a), nil
}

// Names lists the names of type typ matching pattern (see Match), sorted.
func (t *Tx) Names(typ Type, pattern string) ([]string, error) {
	rows, err := t.tx.Query(`SELECT name FROM objects WHERE type=?`, string(typ))
	if err != nil {
		return nil, fmt.Errorf("defs: list %s: %w", typ, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, err
		}
		if Match(pattern, n) {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out, rows.Err()
}

// loadAll loads the objects of type typ matching pattern with load.
func loadAll[T any](t *Tx, typ Type, pattern string, load func(string) (T, error)) ([]T, error) {
	names, err := t.Names(typ, pattern)
	if err != nil {
		return nil, err
	}
	out := make([]T, 0, len(names))
	for _, n := range names {
		o, err := load(n)
		if err != nil {
			return out, err
		}
		out = append(out, o)
	}
	return out, nil
}

// Queue loads a queue definition.
func (t *Tx) Queue(name string) (Queue, error) {
	q := Queue{}
	c, a, err := t.Load(TypeQLocal, name, &q)
	q.Created, q.Altered = c, a
	return q, err
}

// Queues loads the queues matching pattern.
func (t *Tx) Queues(pattern string) ([]Queue, error) {
	return loadAll(t, TypeQLocal, pattern, t.Queue)
}

// Struct loads a structure definition.
func (t *Tx) Struct(name string) (CFStruct, error) {
	c := CFStruct{}
	cr, a, err := t.Load(TypeCFStruct, name, &c)
	c.Created, c.Altered = cr, a
	return c, err
}

// Structs loads the structures matching pattern.
func (t *Tx) Structs(pattern string) ([]CFStruct, error) {
	return loadAll(t, TypeCFStruct, pattern, t.Struct)
}

// Backups loads the backups recorded for structure, newest first.
func (t *Tx) Backups(structure string) ([]Backup, error) {
	names, err := t.Names(TypeBackup, "*")
	if err != nil {
		return nil, err
	}
	var out []Backup
	for i := len(names) - 1; i >= 0; i-- {
		n := names[i]
		if !strings.HasPrefix(n, structure+".") {
			continue
		}
		var b Backup
		if _, _, err := t.Load(TypeBackup, n, &b); err != nil {
			return out, err
		}
		out = append(out, b)
	}
	return out, nil
}

// Replay loads the measured replay rate (the default when none was).
func (t *Tx) Replay() (ReplayRate, error) {
	r := ReplayRate{BytesPerSec: DefaultReplayBytesPerSec}
	_, _, err := t.Load(TypeRecovery, ReplayName, &r)
	if errors.Is(err, ErrNotFound) {
		return ReplayRate{BytesPerSec: DefaultReplayBytesPerSec}, nil
	}
	if r.BytesPerSec <= 0 {
		r.BytesPerSec = DefaultReplayBytesPerSec
	}
	return r, err
}

// Estimate is what recovering a structure would replay now, and for how
// long.
type Estimate struct {
	Newest *Backup // the structure's newest recorded backup; nil for none
	Rate   ReplayRate
	Bytes  uint64        // logged about the structure since Newest began
	Time   time.Duration // Bytes at Rate
}

// RecoveryEstimate estimates the recovery of structure, whose count of
// logged bytes (lockfree.Structure.Logged) is logged now.
func (t *Tx) RecoveryEstimate(structure string, logged uint64) (Estimate, error) {
	var e Estimate
	recs, err := t.Backups(structure)
	if err != nil {
		return e, err
	}
	if e.Rate, err = t.Replay(); err != nil {
		return e, err
	}
	e.Bytes = logged
	if len(recs) > 0 {
		e.Newest = &recs[0]
		if logged >= e.Newest.Logged { // else the structure was recreated since
			e.Bytes -= e.Newest.Logged
		}
	}
	e.Time = time.Duration(float64(e.Bytes) / e.Rate.BytesPerSec * float64(time.Second))
	return e, nil
}

// QMgr loads the group's queue manager attributes (defaults when never
// set).
func (t *Tx) QMgr() (QMgr, error) {
	m := QMgr{CFRecTime: DefaultCFRecTime} // what a stored object leaves out keeps its default
	_, _, err := t.Load(TypeQMgr, GroupQMgr, &m)
	if errors.Is(err, ErrNotFound) {
		return QMgr{CFRecTime: DefaultCFRecTime}, nil
	}
	return m, err
}
