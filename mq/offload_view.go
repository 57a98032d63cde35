package mq

import (
	"fmt"

	"github.com/qmgr/qmgr/lockfree"
	"github.com/qmgr/qmgr/smds"
)

// viewOffloaded is readOffloaded for a view (GetViewsInto): the body of
// offloaded message lm as a slice of the read-only mapping of its data set
// (smds.DataSet.View), not a copy, after its run header and checksum were
// checked: a damaged body is an error, never a view. The message is held
// by the view's unit of work (or until the view is released), so its run
// is not freed, nor reused, while the slice is in use, and the data set
// stays mapped as long as the process has it open (to its end). A channel
// sender thus writes the body from the mapping to the socket in its
// vectored write, without assembling it in a buffer first; nor does it go
// through the read cache (a body sent once would push out those read
// again): a body resent after a failover comes from the page cache.
func (h *Queue) viewOffloaded(lm *lockfree.Message) ([]byte, error) {
	r, err := smds.DecodeRef(lm.Offload)
	if err != nil {
		return nil, fmt.Errorf("message in structure %s: %w", h.def.CFStruct, err)
	}
	c := h.c
	if def, ok := c.structs[h.def.CFStruct]; ok {
		rememberDir(c.g.Config(), def)
	}
	dir, err := dirOf(c.g, h.def.CFStruct)
	if err != nil {
		return nil, err
	}
	ds, err := openDataSet(c.g, h.def.CFStruct, h.s, dir, r.DataSet)
	if err != nil {
		return nil, err
	}
	body, err := ds.d.View(r)
	if err != nil {
		return nil, err
	}
	if len(body) != lm.OffloadLen {
		return nil, fmt.Errorf("message in structure %s: data set %d returned %d bytes for a body of %d", h.def.CFStruct, r.DataSet, len(body), lm.OffloadLen)
	}
	return body, nil
}
