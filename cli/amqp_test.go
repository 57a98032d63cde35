package cli

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/qmgr/qmgr/internal/amqpprobe"
)

// amqpAnswers dials port and reads connection.start.
func amqpAnswers(port int) error { return amqpprobe.Dial("127.0.0.1:" + strconv.Itoa(port)) }

// isAMQPListener reports whether process pid runs the amqp-listener
// command (and is not a zombie).
func isAMQPListener(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || len(b) == 0 { // gone, or a zombie (empty command line)
		return false
	}
	args := strings.Split(string(b), "\x00")
	return len(args) > 1 && args[1] == "amqp-listener"
}

// amqpListenerPid is the pid of member pid's AMQP listener (0: none).
func amqpListenerPid(pid int) int {
	for _, c := range children(pid) {
		if isAMQPListener(c) {
			return c
		}
	}
	return 0
}

// connPids are the pids of the connections DISPLAY CONN shows.
func (g *testGroup) connPids() map[int]bool {
	out := g.mqsc("DISPLAY CONN(*) PID")
	pids := map[int]bool{}
	for _, f := range strings.Fields(out) {
		if v, ok := strings.CutPrefix(f, "PID("); ok {
			if n, err := strconv.Atoi(strings.TrimSuffix(v, ")")); err == nil {
				pids[n] = true
			}
		}
	}
	return pids
}

// qmgrChildren is what DISPLAY QMGR on member shows of its child
// processes (JSON).
func (g *testGroup) qmgrChildren(member string) string {
	g.t.Helper()
	code, out, errs := g.run("", "mqsc", "--name", member, "--json", "-c", "DISPLAY QMGR CHINIT AMQP AMQPADDR AMQPGENADDR")
	if code != 0 {
		g.t.Fatalf("DISPLAY QMGR on %s: exit %d %s %s", member, code, out, errs)
	}
	return strings.TrimSpace(out)
}

// TestAMQPListener: each member's AMQP listener answers the protocol
// header with connection.start on its own port and on the generic port
// they share; a client that sends nothing holds up no one and is closed;
// the listener, SIGKILLed alone, is restarted by its member and its CF
// connection recovered; STOP CHINIT leaves it running (DISPLAY QMGR
// shows both children's states and the listener's addresses); a member SIGKILLed
// takes its listener with it (nothing holds its port) and the generic
// port goes on answering through the survivor.
func TestAMQPListener(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process")
	}
	g := newTestGroup(t)
	port1, port2, generic := freePort(t), freePort(t), freePort(t)
	flags := func(port int) []string {
		return []string{"--amqp-port", strconv.Itoa(port), "--amqp-generic-port", strconv.Itoa(generic), "--amqp-handshake-timeout", "1s"}
	}
	qm1 := g.startWith("QM1", flags(port1)...)
	g.startWith("QM2", flags(port2)...)

	// Both ports of both members answer (the listener starts after the
	// member is active: wait for it).
	for _, p := range []int{port1, port2, generic, generic, generic} {
		waitFor(t, fmt.Sprintf("connection.start on port %d", p), 30*time.Second, func() bool { return amqpAnswers(p) == nil })
	}
	if err := amqpAnswers(port1); err != nil {
		t.Fatal(err)
	}

	want := fmt.Sprintf(`{"QMNAME":"QM1","CHINIT":"RUNNING","AMQP":"RUNNING","AMQPADDR":"127.0.0.1:%d","AMQPGENADDR":"127.0.0.1:%d"}`, port1, generic)
	var got string
	waitFor(t, "DISPLAY QMGR showing both children running", 30*time.Second, func() bool { got = g.qmgrChildren("QM1"); return got == want })

	// A silent client: the next one is served meanwhile, and it is closed
	// when the handshake timeout (1s) ends.
	silent, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(port1))
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	if err := amqpAnswers(port1); err != nil {
		t.Fatalf("a client after a silent one: %v", err)
	}
	if err := amqpprobe.Closed(silent, 15*time.Second); err != nil {
		t.Fatalf("silent client: %v", err)
	}

	// The listener alone is SIGKILLed: its member recovers its CF
	// connection and restarts it.
	lp := amqpListenerPid(qm1.Process.Pid)
	if lp == 0 {
		t.Fatalf("QM1 (pid %d) has no AMQP listener child: children %v", qm1.Process.Pid, children(qm1.Process.Pid))
	}
	if !g.connPids()[lp] {
		t.Fatalf("the AMQP listener (pid %d) has no CF connection: DISPLAY CONN shows %v", lp, g.connPids())
	}
	syscall.Kill(lp, syscall.SIGKILL)
	var lp2 int
	waitFor(t, "a new AMQP listener for QM1", 30*time.Second, func() bool {
		lp2 = amqpListenerPid(qm1.Process.Pid)
		return lp2 != 0 && lp2 != lp
	})
	waitFor(t, "connection.start on QM1's port from the restarted listener", 30*time.Second, func() bool { return amqpAnswers(port1) == nil })
	waitFor(t, "the killed listener's CF connection recovered", 30*time.Second, func() bool { return !g.connPids()[lp] })
	waitFor(t, "the new listener's CF connection", 30*time.Second, func() bool { return g.connPids()[lp2] })
	if !logsContain(g, "recovered a connection", "pid="+strconv.Itoa(lp)) {
		t.Fatalf("no recovery of the killed listener's connection (pid %d) in the logs", lp)
	}

	// STOP CHINIT stops the channel initiator, not the AMQP listener.
	if code, out, errs := g.run("", "mqsc", "--name", "QM1", "-c", "STOP CHINIT"); code != 0 {
		t.Fatalf("STOP CHINIT: exit %d %s %s", code, out, errs)
	}
	want = strings.Replace(want, `"CHINIT":"RUNNING"`, `"CHINIT":"STOPPED"`, 1)
	if got := g.qmgrChildren("QM1"); got != want {
		t.Fatalf("DISPLAY QMGR of QM1 after STOP CHINIT: %s, want %s", got, want)
	}
	if cs := children(qm1.Process.Pid); len(cs) != 1 || cs[0] != lp2 {
		t.Fatalf("QM1's children after STOP CHINIT: %v, want only its AMQP listener %d", cs, lp2)
	}
	if err := amqpAnswers(port1); err != nil {
		t.Fatalf("QM1's AMQP port after STOP CHINIT: %v", err)
	}

	// The member is SIGKILLed: its listener dies with it, nothing holds
	// its port, and the generic port is QM2's alone.
	g.kill("QM1")
	waitFor(t, "QM1's AMQP listener gone", 30*time.Second, func() bool { return !isAMQPListener(lp2) })
	waitFor(t, "QM1's AMQP port closed", 30*time.Second, func() bool {
		c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port1), 5*time.Second)
		if err == nil {
			c.Close()
		}
		return err != nil
	})
	for range 5 {
		if err := amqpAnswers(generic); err != nil {
			t.Fatalf("generic port after QM1 died: %v", err)
		}
	}
}

// TestAMQPListenerTLS: with --amqp-tls-cert and --amqp-tls-key, a TLS
// client trusting the test's self-signed certificate gets
// connection.start; a client that connects and sends no ClientHello is
// closed after the handshake timeout and holds up no one; an orderly
// stop of the member stops its listener.
func TestAMQPListenerTLS(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process")
	}
	pki := newTestPKI(t)
	pki.cert("amqp", "127.0.0.1", "Example")
	pool := x509.NewCertPool()
	pool.AddCert(pki.caCert)
	g := newTestGroup(t)
	port := freePort(t)
	m := g.startWith("QM1", "--no-chinit", "--amqp-port", strconv.Itoa(port), "--amqp-handshake-timeout", "1s",
		"--amqp-tls-cert", filepath.Join(pki.dir, "amqp.pem"), "--amqp-tls-key", filepath.Join(pki.dir, "amqp.key"))
	dialTLS := func() error {
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", "127.0.0.1:"+strconv.Itoa(port),
			&tls.Config{RootCAs: pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12})
		if err != nil {
			return err
		}
		defer c.Close()
		return amqpprobe.Start(c)
	}
	waitFor(t, "connection.start over TLS", 30*time.Second, func() bool { return dialTLS() == nil })

	silent, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	if err := dialTLS(); err != nil {
		t.Fatalf("a TLS client after a silent one: %v", err)
	}
	if err := amqpprobe.Closed(silent, 15*time.Second); err != nil {
		t.Fatalf("silent client on the TLS port: %v", err)
	}
	if err := amqpAnswers(port); err == nil {
		t.Fatal("a plain AMQP client got connection.start on the TLS port")
	}

	lp := amqpListenerPid(m.Process.Pid)
	if lp == 0 {
		t.Fatal("QM1 has no AMQP listener child")
	}
	if err := g.harness().StopMember("QM1", 30*time.Second); err != nil {
		t.Fatal(err)
	}
	if isAMQPListener(lp) {
		t.Fatalf("the AMQP listener (pid %d) outlived its member's orderly stop", lp)
	}
	if !logsContain(g, "amqp listener stopped") {
		t.Fatal("the listener did not stop in order (no \"amqp listener stopped\" in the logs)")
	}
}
