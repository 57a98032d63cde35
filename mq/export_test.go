package mq

import (
	"fmt"

	"github.com/qmgr/qmgr/lockfree"
	"github.com/qmgr/qmgr/smds"
)

// SmallDataSets makes the data sets this process creates small (1 MiB
// extents of 4 KiB blocks, at most 64 of them), so tests do not allocate
// 128 MiB extents.
func SmallDataSets() {
	smdsGeometry.blockSize, smdsGeometry.extentBlocks, smdsGeometry.maxExtents = 4096, 1024, 64
}

// CheckOffload runs the CF checker on structure name and the checker of
// every data set of the given members' peer slots against the references
// the CF holds, and returns the data sets' statistics. Quiescent: nothing
// may be in flight.
func CheckOffload(c *Conn, name string, slots ...int) ([]smds.Stats, error) {
	s, err := c.g.Structure(name, false)
	if err != nil {
		return nil, err
	}
	r := s.Check(lockfree.CheckOptions{Quiescent: true})
	if !r.OK() {
		return nil, fmt.Errorf("CF checker: %v", r)
	}
	byDS := map[uint16][]smds.Ref{}
	for _, b := range r.Offloaded {
		ref, err := smds.DecodeRef(b)
		if err != nil {
			return nil, err
		}
		byDS[ref.DataSet] = append(byDS[ref.DataSet], ref)
	}
	dir, err := dirOf(c.g, name)
	if err != nil {
		return nil, err
	}
	var out []smds.Stats
	for _, slot := range slots {
		ds, err := openDataSet(c.g, name, s, dir, uint16(slot))
		if err != nil {
			return nil, err
		}
		refs := byDS[uint16(slot)]
		delete(byDS, uint16(slot))
		if cr := ds.d.Check(refs, smds.CheckOptions{Quiescent: true}); !cr.OK() {
			return nil, fmt.Errorf("data set %d: %v", slot, cr)
		}
		st, err := ds.d.Stats()
		if err != nil {
			return nil, err
		}
		out = append(out, st)
	}
	if len(byDS) > 0 {
		return nil, fmt.Errorf("references to data sets not checked: %v", byDS)
	}
	return out, nil
}
