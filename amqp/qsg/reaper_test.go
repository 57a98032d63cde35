package qsg

import (
	"fmt"
	"os/exec"
	"testing"

	"github.com/qmgr/qmgr/group"
	"github.com/qmgr/qmgr/procid"
)

// TestOwnerGone: an exclusive queue's owner is gone when its member's
// incarnation is not the active one, or its listener process died; a name
// that is not one of ours is left alone.
func TestOwnerGone(t *testing.T) {
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	dead, err := procid.Of(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Process.Kill()
	cmd.Wait()
	peers := []group.Peer{{Name: "QM1", State: group.PeerActive, Incarnation: 3}}
	ns := procid.SelfNS()
	for _, c := range []struct {
		owner string
		gone  bool
	}{
		{fmt.Sprintf("QM1/3/%s/%d/7", procid.Self(), ns), false},
		{fmt.Sprintf("QM1/2/%s/%d/7", procid.Self(), ns), true},
		{fmt.Sprintf("QM2/3/%s/%d/7", procid.Self(), ns), true},
		{fmt.Sprintf("QM1/3/%s/%d/7", dead, ns), true},
		{fmt.Sprintf("QM1/3/%s/%d/7", dead, ns+1), false}, // another pid namespace: cannot tell
		{"someone else's", false},
		{"QM1/x/y/z/w", false},
	} {
		if got := ownerGone(c.owner, peers); got != c.gone {
			t.Errorf("ownerGone(%q) = %v, want %v", c.owner, got, c.gone)
		}
	}
}
