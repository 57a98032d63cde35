package logrec

import (
	"testing"

	"github.com/qmgr/qmgr/internal/layouttable"
)

// TestLayoutTables: the byte layouts documented as tables above their
// offset constants in layout.go match the constants and record sizes.
func TestLayoutTables(t *testing.T) {
	layouttable.Verify(t,
		layouttable.Layout{File: "layout.go", Title: "Log message header", Prefix: "lg", SizeName: "logHeaderSize"},
		layouttable.Layout{File: "layout.go", Title: "Log message CorrelID", Prefix: "lc", SizeName: "idSize"},
		layouttable.Layout{File: "layout.go", Title: "Record header", Prefix: "rc", SizeName: "recHeaderSize"},
		layouttable.Layout{File: "layout.go", Title: "INPUT and INPUT_EARLY record body", Prefix: "in", SizeName: "inputFixedSize"},
		layouttable.Layout{File: "layout.go", Title: "INPUT_REF record body", Prefix: "rf", SizeName: "inputRefSize"},
		layouttable.Layout{File: "layout.go", Title: "CHOICES record body", Prefix: "ch", SizeName: "choicesFixed"},
		layouttable.Layout{File: "layout.go", Title: "CHECK record body", Prefix: "ck", SizeName: "checkSize"},
		layouttable.Layout{File: "layout.go", Title: "Choices list", Prefix: "cc", SizeName: "choiceHdrSize"},
		layouttable.Layout{File: "layout.go", Title: "OUT record", Prefix: "ot", SizeName: "outSize"},
		layouttable.Layout{File: "layout.go", Title: "Output MsgID", Prefix: "oi", SizeName: "idSize"},
		layouttable.Layout{File: "layout.go", Title: "Snapshot transfer CorrelID", Prefix: "sc", SizeName: "idSize"},
		layouttable.Layout{File: "layout.go", Title: "Snapshot chunk", Prefix: "sk", SizeName: "chunkHdrSize"},
		layouttable.Layout{File: "layout.go", Title: "Framework state header", Prefix: "fs", SizeName: "fsHeaderSize"},
		layouttable.Layout{File: "layout.go", Title: "Destination entry", Prefix: "de", SizeName: "destSize"},
		layouttable.Layout{File: "layout.go", Title: "Source entry", Prefix: "sr", SizeName: "sourceSize"},
		layouttable.Layout{File: "layout.go", Title: "Resend section header", Prefix: "rs", SizeName: "rsHeaderSize"},
		layouttable.Layout{File: "layout.go", Title: "Resend entry", Prefix: "re", SizeName: "resendFixedSize"},
	)
}
