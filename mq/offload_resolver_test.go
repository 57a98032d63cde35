package mq

import (
	"testing"

	"github.com/qmgr/qmgr/lockfree"
	"github.com/qmgr/qmgr/smds"
)

// TestResolverWithUndecodableRef: one CF entry whose reference does not
// decode (damaged) must not make the data set's repair and rebuild
// believe the structure holds no reference at all: the repair of a dead
// owner frees a run whose reference the resolver denies, and a rebuild
// frees every run no reference names.
func TestResolverWithUndecodableRef(t *testing.T) {
	s, _, err := lockfree.Create(lockfree.CreateOptions{Dir: t.TempDir(), Name: "APPL1",
		Params: lockfree.Params{Owners: 16, Queues: 8, Entries: 256, Elements: 256, ElementSize: 128, StatusSlots: 8, StatusSize: 64}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	o, err := s.Register()
	if err != nil {
		t.Fatal(err)
	}
	q, err := o.CreateQueue("Q", lockfree.QueueAttrs{})
	if err != nil {
		t.Fatal(err)
	}
	good := smds.Ref{DataSet: 3, Head: 10, Len: 5000, Gen: 1, Seq: 42, Sum: 7}
	gb := make([]byte, smds.RefSize)
	good.Encode(gb)
	bad := make([]byte, smds.RefSize) // data set 3, Seq 0: does not decode
	bad[0] = 3
	if _, err := smds.DecodeRef(bad); err == nil {
		t.Fatal("the damaged reference decodes")
	}
	for _, ref := range [][]byte{bad, gb} {
		if err := o.Put(q, &lockfree.Message{Offload: ref, OffloadLen: 5000}, lockfree.PutOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if !resolverOf(s, 3)(good) {
		t.Error("the repair's resolver says the structure does not hold a reference it holds (another entry's reference is damaged): the repair would free its run")
	}
	if !holdsRef(s, good) {
		t.Error("holdsRef says the structure does not hold a reference it holds (another entry's reference is damaged): a failed put would free its run")
	}
	refs, errs, err := structureRefs(s, 3)
	if err != nil || len(refs) != 1 || refs[0] != good || len(errs) != 1 {
		t.Errorf("structureRefs = %v, %v: %v: want the one good reference, and the damaged one as an error (a rebuild of the data set fails for good)", refs, errs, err)
	}
}
