package mqconn

import (
	"strings"
	"testing"

	"github.com/qmgr/qmgr/group"
)

type fakeConn struct{ g *group.Group }

func TestOfUsesTheRegisteredAccessor(t *testing.T) {
	Register(func(c *fakeConn) Parts { return Parts{Group: c.g} })
	c := &fakeConn{g: new(group.Group)}
	if got := Of(c); got.Group != c.g {
		t.Fatalf("Of returned group %p, want the connection's %p", got.Group, c.g)
	}
}

func TestOfPanicsOnAnotherType(t *testing.T) {
	Register(func(c *fakeConn) Parts { return Parts{} })
	defer func() {
		r := recover()
		msg, _ := r.(string)
		if !strings.Contains(msg, "mqconn: Of(*int)") {
			t.Fatalf("recovered %v, want a panic naming the type", r)
		}
	}()
	Of(new(int))
}
