package lockfree

import "testing"

// TestCloseWhileOutOfService: an owner registered while its structure is
// out of service (being recovered: what a connection does when it looks
// the structure up in that window) and closed before the structure is
// back in service frees its slot. It held nothing (every operation fails
// out of service); a slot left active under a live process would refuse
// every later owner of that slot number (a connection slot reused) with
// "slot N is active", for as long as the process lives.
func TestCloseWhileOutOfService(t *testing.T) {
	s, created, err := Create(CreateOptions{Dir: t.TempDir(), Name: "APPL1", Params: smallParams, Recovering: true})
	if err != nil || !created {
		t.Fatalf("create: %v %v", err, created)
	}
	defer s.Close()
	o, err := s.RegisterSlotLabel(5, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}
	s.PutInService()
	again, err := s.RegisterSlotLabel(5, 0)
	if err != nil {
		t.Fatalf("the slot of an owner closed while the structure was out of service: %v", err)
	}
	again.Close()
	checkOK(t, s)
}
