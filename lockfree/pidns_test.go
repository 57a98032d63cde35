package lockfree

import (
	"testing"

	"github.com/qmgr/qmgr/procid"
)

// TestOwnerRecordsPidNamespace: an owner slot records the pid namespace of
// its process, so that a process of another namespace is never judged by
// a pid that means nothing there.
func TestOwnerRecordsPidNamespace(t *testing.T) {
	s := newStructure(t, Params{Owners: 4, Queues: 1, Entries: 64, Elements: 64})
	o := register(t, s)
	info, ok := s.Owner(o.Tag().Slot())
	if !ok || !info.Registered || info.PidNS == 0 || info.PidNS != procid.SelfNS() {
		t.Fatalf("owner %+v: want its pid namespace %d", info, procid.SelfNS())
	}
}
