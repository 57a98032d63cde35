package backup

import (
	"testing"

	"github.com/qmgr/qmgr/internal/layouttable"
)

// TestLayoutTables: the header and trailer tables in backup.go match their
// offset constants and sizes.
func TestLayoutTables(t *testing.T) {
	layouttable.Verify(t,
		layouttable.Layout{File: "backup.go", Title: "Backup file header (headerSize", Prefix: "bh", SizeName: "headerSize"},
		layouttable.Layout{File: "backup.go", Title: "Backup file trailer (trailerSize", Prefix: "bt", SizeName: "trailerSize"},
	)
}
