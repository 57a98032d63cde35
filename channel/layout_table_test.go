package channel

import (
	"testing"

	"github.com/qmgr/qmgr/internal/layouttable"
)

// TestLayoutTables: the byte layouts documented as tables above their
// offset constants (the status record, the wire frames, the sync records)
// match the constants and the record sizes.
func TestLayoutTables(t *testing.T) {
	layouttable.Verify(t,
		layouttable.Layout{File: "status.go", Title: "Status record layout", Prefix: "rec", SizeName: "recSize"},
		layouttable.Layout{File: "wire.go", Title: "Frame header (frameHdrSize", Prefix: "fh", SizeName: "frameHdrSize"},
		layouttable.Layout{File: "wire.go", Title: "HELLO payload (helloSize", Prefix: "he", SizeName: "helloSize"},
		layouttable.Layout{File: "wire.go", Title: "CHALLENGE payload (challengeSize", Prefix: "ch", SizeName: "challengeSize"},
		layouttable.Layout{File: "wire.go", Title: "AUTH payload (authSize", Prefix: "au", SizeName: "authSize"},
		layouttable.Layout{File: "wire.go", Title: "HELLO_ACK payload (helloAckSize", Prefix: "ha", SizeName: "helloAckSize"},
		layouttable.Layout{File: "wire.go", Title: "END_BATCH payload (endBatchSize", Prefix: "eb", SizeName: "endBatchSize"},
		layouttable.Layout{File: "wire.go", Title: "CONFIRM payload (confirmSize", Prefix: "cf", SizeName: "confirmSize"},
		layouttable.Layout{File: "wire.go", Title: "CLOSE payload (closeFixed", Prefix: "cl", SizeName: "closeFixed"},
		layouttable.Layout{File: "sync.go", Title: "Sync record key", Prefix: "sk", SizeName: "syncKeySize"},
		layouttable.Layout{File: "sync.go", Title: "Receiver sync record (recvSyncSize", Prefix: "rs", SizeName: "recvSyncSize"},
		layouttable.Layout{File: "sync.go", Title: "Sender sync record (sendSyncFixed", Prefix: "ss", SizeName: "sendSyncFixed"},
	)
}
