package amqp

import (
	"testing"

	"github.com/qmgr/qmgr/internal/layouttable"
)

// TestLayoutTables: the frame and content header tables match their
// constants.
func TestLayoutTables(t *testing.T) {
	layouttable.Verify(t,
		layouttable.Layout{File: "frame.go", Title: "Frame on the wire", Prefix: "frameOff", SizeName: "frameHeaderSize"},
		layouttable.Layout{File: "props.go", Title: "Content header payload", Prefix: "headerOff", SizeName: "headerFixedSize"},
	)
}
