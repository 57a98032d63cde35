package defs

import (
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/qmgr/qmgr/internal/ownedfs"
)

// OpenReadOnly opens the repository in dataDir for reading only (View):
// for tools that look at a running group, such as qmgr check. Unlike Open
// it writes nothing, so it never takes the repository's write lock and
// never waits for a member that holds it (a WAL reader runs beside the
// writer); its connections are query_only, so an Update fails. It fails
// with ErrNotFound when no member has created the repository, and with
// ErrCorrupt when its schema is another binary's.
func OpenReadOnly(dataDir string) (*Repo, error) {
	path := filepath.Join(dataDir, FileName)
	f, err := ownedfs.Open(path, os.O_RDONLY)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%w: %s (no member of the group has started in this data directory)", ErrNotFound, path)
		}
		return nil, permErr(path, err)
	}
	f.Close()
	dsn := "file:" + path + "?_pragma=busy_timeout(10000)&_pragma=query_only(1)&_txlock=deferred"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("defs: open %s: %w", path, err)
	}
	r := &Repo{db: db, rdb: db, path: path}
	var v string
	if err := db.QueryRow(`SELECT value FROM meta WHERE key='schema_version'`).Scan(&v); err != nil {
		db.Close()
		return nil, fmt.Errorf("defs: %s: %w", path, err)
	}
	if v != schemaVersion && v != "1" { // 1: Open's init marks it 2, nothing else changed
		db.Close()
		return nil, fmt.Errorf("%w: %s has schema version %s, this binary uses %s", ErrCorrupt, path, v, schemaVersion)
	}
	return r, nil
}
