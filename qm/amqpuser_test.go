package qm

import (
	"context"
	"net"
	"strings"
	"testing"

	"github.com/qmgr/qmgr/amqp/access"
	"github.com/qmgr/qmgr/defs"
)

// TestGuestOnceOnly: the first start of a group makes guest (password
// guest, loopback only); a group whose administrator deleted it does not
// get it back at the next start.
func TestGuestOnceOnly(t *testing.T) {
	cfg := testConfig(t, "QM1")
	run := func(f func(m *Member)) {
		t.Helper()
		m, err := Start(cfg)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { m.Run(ctx); close(done) }()
		defer func() { cancel(); m.Stop(); <-done }()
		f(m)
	}
	run(func(m *Member) {
		local := &net.TCPAddr{IP: net.ParseIP("127.0.0.1"), Port: 5672}
		if u, err := access.Authenticate(m.Repo(), "guest", "guest", local); err != nil || !u.LoopbackOnly {
			t.Fatalf("guest/guest from loopback after the first start: %+v, %v", u, err)
		}
		if _, err := access.Authenticate(m.Repo(), "guest", "guest", &net.TCPAddr{IP: net.ParseIP("10.0.0.1")}); err != access.ErrLoopbackOnly {
			t.Fatalf("guest from 10.0.0.1: %v, want ErrLoopbackOnly", err)
		}
		mustExec(t, m, "DELETE AMQPUSER(guest)")
	})
	run(func(m *Member) {
		if r := m.Exec("DISPLAY AMQPUSER(guest)"); r.OK || !strings.Contains(r.Error, "not found") {
			t.Fatalf("guest after its deletion and a restart: %+v", r)
		}
	})
}

// TestPasswordNeverLogged: a password given to SET AMQPUSER through the
// command socket is not in the member's log, whether the command works,
// fails, or is malformed.
func TestPasswordNeverLogged(t *testing.T) {
	cfg := testConfig(t, "QM1")
	logged := logTo(t, &cfg)
	startMember(t, cfg)
	const pw = "Hunter2-very-secret"
	for _, cmd := range []string{
		"SET AMQPUSER(alice) PASSWORD('" + pw + "')",
		"set amqpuser(alice) password(" + pw + ") tags(a)",
		"SET AMQPUSER(alice) PASSWORD('" + pw + "') TAGS('bad tag')",
		"SET AMQPUSER(alice) PASSWORD('" + pw + "'",
		"SET AMQPUSER(alice) PASSWORD(" + pw,
		"SET AMQPUSER(alice) +\n PASSWORD('" + pw + "')",
	} {
		if _, err := Command(cfg.Group, "QM1", cmd); err != nil {
			t.Fatalf("%q: %v", cmd, err)
		}
	}
	log := logged()
	if !strings.Contains(log, "AMQPUSER") {
		t.Fatalf("the commands were not logged at all:\n%s", log)
	}
	if strings.Contains(log, pw) || strings.Contains(strings.ToUpper(log), strings.ToUpper(pw)) || strings.Contains(log, pw[:7]) {
		t.Fatalf("the log shows the password:\n%s", log)
	}
	var u defs.AMQPUser
	m := func(tx *defs.Tx) error { var err error; u, err = tx.AMQPUser("alice"); return err }
	r, err := defs.Open(cfg.Group.DataDir, false)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if err := r.View(m); err != nil || strings.Contains(u.Hash, pw) {
		t.Fatalf("stored alice: %+v, %v", u, err)
	}
	if _, err := access.Authenticate(r, "alice", pw, nil); err != nil {
		t.Fatalf("alice with the password set through the socket: %v", err)
	}
}
