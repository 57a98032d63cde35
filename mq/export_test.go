package mq

import (
	"errors"
	"fmt"

	"github.com/qmgr/qmgr/smds"
)

// SmallDataSets makes the data sets this process creates small (1 MiB
// extents of 4 KiB blocks, at most 64 of them), so tests do not allocate
// 128 MiB extents.
func SmallDataSets() {
	smdsGeometry.blockSize, smdsGeometry.extentBlocks, smdsGeometry.maxExtents = 4096, 1024, 64
}

// CheckOffload is CheckDataSets (quiescent) through c's group, with the
// statistics of the data sets of the given peer slots.
func CheckOffload(c *Conn, name string, slots ...int) ([]smds.Stats, error) {
	checks, err := CheckDataSets(c.g, name, true)
	if err != nil {
		return nil, err
	}
	var out []smds.Stats
	for _, slot := range slots {
		found := false
		for _, ck := range checks {
			if ck.Num == uint16(slot) {
				out, found = append(out, ck.Stats), true
			}
		}
		if !found {
			return nil, fmt.Errorf("no data set of slot %d", slot)
		}
	}
	return out, nil
}

// LeakRun writes a run of n bytes into c's member's data set of
// structure name and marks it published without any CF entry referring
// to it: a leak for the checker to find.
func LeakRun(c *Conn, name string, n int) error {
	ds, err := memberDataSet(c, name)
	if err != nil {
		return err
	}
	o, err := ds.owner()
	if err != nil {
		return err
	}
	defer ds.done(o)
	if _, err := o.Put(make([]byte, n), false); err != nil {
		return err
	}
	return o.Published()
}

// RemoveExpired is a member's expiry scan (qm's expiryScan) of queue q
// through c's owner in its structure: it removes q's expired messages.
func RemoveExpired(c *Conn, q string) (int, error) {
	h, err := c.Open(q, OpenOptions{Browse: true})
	if err != nil {
		return 0, err
	}
	defer h.Close()
	return h.o.RemoveExpired(h.q)
}

// HoldOwners takes every owner slot of c's member's data set of structure
// name that it can (this process's idle owners, then new registrations
// until the map has none left) and returns how many, and a func that
// gives them back.
func HoldOwners(c *Conn, name string) (int, func() error, error) {
	ds, err := memberDataSet(c, name)
	if err != nil {
		return 0, nil, err
	}
	ds.mu.Lock()
	held := ds.idle
	ds.idle = nil
	ds.mu.Unlock()
	for {
		o, err := ds.d.Register()
		if errors.Is(err, smds.ErrNoOwnerSlot) {
			break
		}
		if err != nil {
			return 0, nil, err
		}
		held = append(held, o)
	}
	return len(held), func() error {
		for _, o := range held {
			ds.done(o)
		}
		return nil
	}, nil
}

// ForgetDataSets drops every data set this process has open, as a new
// process starts with none (their mappings stay until the process ends).
func ForgetDataSets() {
	offloadSets.mu.Lock()
	sets := offloadSets.sets
	offloadSets.mu.Unlock()
	for _, ds := range sets {
		forgetDataSet(ds)
	}
}

// memberDataSet opens c's member's data set of structure name.
func memberDataSet(c *Conn, name string) (*dataSet, error) {
	s, err := c.g.Structure(name, false)
	if err != nil {
		return nil, err
	}
	dir, err := dirOf(c.g, name)
	if err != nil {
		return nil, err
	}
	return openDataSet(c.g, name, s, dir, uint16(c.peer.Slot))
}

// WaitSMDSCache waits until this process's read cache has applied every
// set made so far: ristretto applies sets asynchronously, so a read
// right after the one that filled the cache may miss.
func WaitSMDSCache() {
	if c, _ := processCache(); c != nil {
		c.Wait()
	}
}
