package xmit

import (
	"testing"

	"github.com/qmgr/qmgr/internal/layouttable"
)

// TestLayoutTables: the transmission header's table in xmit.go matches its
// offset constants and HeaderSize.
func TestLayoutTables(t *testing.T) {
	layouttable.Verify(t,
		layouttable.Layout{File: "xmit.go", Title: "Transmission header (HeaderSize", Prefix: "off", SizeName: "HeaderSize"},
	)
}
