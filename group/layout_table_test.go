package group

import (
	"testing"

	"github.com/qmgr/qmgr/internal/layouttable"
)

// TestLayoutTables: the peer, lease and counter record tables in
// records.go match their offset constants and the record size.
func TestLayoutTables(t *testing.T) {
	layouttable.Verify(t,
		layouttable.Layout{File: "records.go", Title: "Peer record (a status slot", Prefix: "pr", SizeName: "recordSize", Except: []string{"prUsed"}},
		layouttable.Layout{File: "records.go", Title: "Lease record (a status slot", Prefix: "ls", SizeName: "recordSize"},
		layouttable.Layout{File: "records.go", Title: "Counter record (a status slot", Prefix: "ctr", SizeName: "recordSize"},
	)
}
