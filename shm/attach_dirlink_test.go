package shm

import (
	"os"
	"path/filepath"
	"testing"
)

// TestAttachThroughPlantedDirLinkRefused: a CF directory that is a symbolic
// link a stranger planted (to another group's CF directory of the same
// owner) is refused by members (Create) and applications (Attach) alike.
func TestAttachThroughPlantedDirLinkRefused(t *testing.T) {
	top := t.TempDir()
	other := filepath.Join(top, "qmgr-OTHER")
	s, _, err := Create(CreateOptions{Dir: other, Name: "admin", Kind: KindAdmin, Size: 2 * PageSize, Version: 1})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	link := filepath.Join(top, "qmgr-G")
	if err := os.Symlink(other, link); err != nil {
		t.Fatal(err)
	}
	os.Lchown(link, 65534, 65534) // planted by a stranger
	if _, _, err := Create(CreateOptions{Dir: link, Name: "admin", Kind: KindAdmin, Size: 2 * PageSize, Version: 1}); err == nil {
		t.Errorf("a member used the planted link")
	}
	if m, err := Attach(link, "admin", 1); err == nil {
		m.Close()
		t.Errorf("an application attached %s through a stranger's symbolic link to %s", link, other)
	}
}
