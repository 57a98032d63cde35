package lockfree

import (
	"testing"

	"github.com/qmgr/qmgr/internal/layouttable"
)

// TestLayoutTables: the byte layouts documented as tables above their
// offset constants in layout.go match the constants and the record sizes
// (see package layouttable), so a documented layout cannot drift.
func TestLayoutTables(t *testing.T) {
	layouttable.Verify(t,
		layouttable.Layout{File: "layout.go", Title: "Control page (offset 0", Prefix: "ctl", SizeName: "ctlPageSize"},
		layouttable.Layout{File: "layout.go", Title: "Owner slot fields.", Prefix: "own", SizeName: "ownerSize"},
		layouttable.Layout{File: "layout.go", Title: "Descriptor buffer fields", Prefix: "db", SizeName: "descBufSize"},
		layouttable.Layout{File: "layout.go", Title: "Cell fields", Prefix: "cl", SizeName: "cellSize"},
		layouttable.Layout{File: "layout.go", Title: "Queue record fields", Prefix: "q", SizeName: "queueFixed"},
		layouttable.Layout{File: "layout.go", Title: "Sublog fields", Prefix: "sl", SizeName: "sublogSize"},
		layouttable.Layout{File: "layout.go", Title: "Entry fields.", Prefix: "en", SizeName: "entrySize"},
		layouttable.Layout{File: "layout.go", Title: "Segment fields", Prefix: "sg", SizeName: "segSize"},
		layouttable.Layout{File: "layout.go", Title: "Status slot fields", Prefix: "st", SizeName: "statusHdr"},
		layouttable.Layout{File: "layout.go", Title: "Generated message id (idBytes", Prefix: "mi", SizeName: "idBytes"},
		layouttable.Layout{File: "layout.go", Title: "Index key (indexKeySize", Prefix: "ik", SizeName: "indexKeySize"},
	)
}

// TestLayoutSizes: the sizes the tables are checked against are the ones
// computeLayout uses.
func TestLayoutSizes(t *testing.T) {
	if descBufSize != ownDescBuf1-ownDescBuf0 {
		t.Errorf("descriptor buffers are %d bytes apart, a buffer is %d", ownDescBuf1-ownDescBuf0, descBufSize)
	}
	if sgSlots+segSlots*8 != segSize {
		t.Errorf("segment slots end at %d, a segment is %d bytes", sgSlots+segSlots*8, segSize)
	}
	if enInline+InlineMax != entrySize {
		t.Errorf("inline part ends at %d, an entry is %d bytes", enInline+InlineMax, entrySize)
	}
	l := computeLayout(Params{Owners: 100, Queues: 3}.withDefaults())
	if l.queueSize != qBitmaps+2*l.bitmapSize+Priorities*sublogSize {
		t.Errorf("queue record %d bytes, the table's fixed part, bitmaps and sublogs make %d", l.queueSize, qBitmaps+2*l.bitmapSize+Priorities*sublogSize)
	}
}
