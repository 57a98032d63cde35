package mq

import (
	"testing"

	"github.com/qmgr/qmgr/internal/layouttable"
)

// TestLayoutTables: the dead-letter header's table in dlh.go and the
// generated message id's in persist.go match their constants and sizes.
func TestLayoutTables(t *testing.T) {
	layouttable.Verify(t,
		layouttable.Layout{File: "dlh.go", Title: "Dead-letter header layout", Prefix: "dl", SizeName: "dlhSize", Except: []string{"dlNameLen", "dlFmtLen"}},
		layouttable.Layout{File: "persist.go", Title: "Generated message id of a persistent message", Prefix: "pk", SizeName: "msgIDSize"},
	)
}
