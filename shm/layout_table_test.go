package shm

import (
	"testing"

	"github.com/qmgr/qmgr/internal/layouttable"
)

// TestLayoutTables: the header's table in structure.go matches its offset
// constants and HeaderSize.
func TestLayoutTables(t *testing.T) {
	layouttable.Verify(t,
		layouttable.Layout{File: "structure.go", Title: "Header (page 0, HeaderSize", Prefix: "off", SizeName: "HeaderSize"},
	)
}
