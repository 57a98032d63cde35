package mq

import (
	"testing"

	"github.com/qmgr/qmgr/defs"
	"github.com/qmgr/qmgr/group"
	"github.com/qmgr/qmgr/internal/mqconn"
	"github.com/qmgr/qmgr/lockfree"
)

// TestMQConnParts: the accessor mq registers hands out the connection's
// own group handle, admin owner and definitions repository.
func TestMQConnParts(t *testing.T) {
	c := &Conn{g: new(group.Group), admin: new(lockfree.Owner), repo: new(defs.Repo)}
	p := mqconn.Of(c)
	if p.Group != c.g || p.Admin != c.admin || p.Defs != c.repo {
		t.Fatalf("parts %+v, want the connection's group %p, admin %p, repo %p", p, c.g, c.admin, c.repo)
	}
}
