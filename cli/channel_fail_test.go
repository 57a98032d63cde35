package cli

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/qmgr/qmgr/channel"
	"github.com/qmgr/qmgr/crashpoint"
)

// armOnce sets the crash point for the processes started until the
// returned function runs; the point acts once, in the first process to
// reach it, which creates the returned file.
func armOnce(t *testing.T, point string) (fired string, disarm func()) {
	fired = filepath.Join(t.TempDir(), "fired")
	os.Setenv(crashpoint.EnvVar, point)
	os.Setenv(crashpoint.OnceVar, fired)
	return fired, func() {
		os.Unsetenv(crashpoint.EnvVar)
		os.Unsetenv(crashpoint.OnceVar)
	}
}

// sendAndCheck puts n messages to the remote queue, starts the channel and
// checks that all of them arrive, exactly once and in order, and that both
// groups' structures are sound.
func sendAndCheck(t *testing.T, g, r *testGroup, n int) {
	putSeq(t, g, "QM1", n)
	g.mqsc("START CHANNEL(TO.R)")
	waitAll(t, g, r, n)
}

func waitAll(t *testing.T, g, r *testGroup, n int) {
	t.Helper()
	waitFor(t, "every message at the remote side", 120*time.Second, func() bool {
		return r.depth("TARGET") >= int64(n) && g.depth("XQ") == 0
	})
	time.Sleep(200 * time.Millisecond) // nothing more arrives
	checkSeq(t, r, n)
	for _, gr := range []*testGroup{g, r} {
		if code, out, errs := gr.run("", "check"); code != 0 {
			t.Fatalf("check: %s %s", out, errs)
		}
	}
}

// TestChannelCrashPoints: the channel initiator running an instance is
// SIGKILLed at each step of a batch (sender: record put, END_BATCH sent,
// CONFIRM received; receiver: batch committed, CONFIRM not sent). Its
// member restarts it, the channel restarts, the two sides resynchronise
// and every message arrives exactly once, in order.
func TestChannelCrashPoints(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process")
	}
	for _, tc := range []struct {
		point  string
		remote bool // the point is on the receiving side
	}{
		{"channel.sender.indoubt", false},
		{"channel.sender.sent", false},
		{"channel.sender.confirmed", false},
		{"channel.receiver.committed", true},
	} {
		t.Run(tc.point, func(t *testing.T) {
			fired, disarm := armOnce(t, tc.point+":5")
			var g, r *testGroup
			if tc.remote {
				r = remoteSide(t)
				disarm()
				g = sendingSide(t, r)
			} else {
				r = remoteSide(t)
				g = sendingSide(t, r)
				disarm()
			}
			sendAndCheck(t, g, r, 5000)
			if _, err := os.Stat(fired); err != nil {
				t.Fatalf("the crash point was never reached: %v", err)
			}
		})
	}
}

// TestChannelRemoteKilledAndCommsFailure: the remote queue manager is
// SIGKILLed mid-transfer and restarted (the sender retries every SHORTTMR
// and resumes); then its listener goes away for a while (STOP CHINIT,
// START CHINIT): a comms failure. Nothing is lost or duplicated.
func TestChannelRemoteKilledAndCommsFailure(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process")
	}
	n := 20000
	g, r, port := remoteSetup(t)
	putSeq(t, g, "QM1", n)
	g.mqsc("START CHANNEL(TO.R)")
	waitFor(t, "a quarter of the messages at the remote side", 60*time.Second, func() bool { return r.depth("TARGET") >= int64(n/4) })
	r.kill("RQM")
	waitFor(t, "the channel retrying", 30*time.Second, func() bool {
		st, _ := g.chStatus("TO.R")
		return st.State == channel.Retrying
	})
	r.startWith("RQM", "--port", strconv.Itoa(port))
	waitAll(t, g, r, n)

	// Comms failure: nobody listens for a while.
	r.mqsc("STOP CHINIT")
	putRange(t, g, "QM1", n, 1000)
	waitFor(t, "the channel retrying", 30*time.Second, func() bool {
		st, _ := g.chStatus("TO.R")
		return st.State == channel.Retrying && st.Retries >= 2
	})
	if d := r.depth("TARGET"); d != 0 {
		t.Fatalf("%d messages arrived with the remote channel initiator stopped", d)
	}
	r.mqsc("START CHINIT")
	waitFor(t, "the messages sent after the listener came back", 60*time.Second, func() bool {
		return r.depth("TARGET") >= 1000 && g.depth("XQ") == 0
	})
	time.Sleep(200 * time.Millisecond)
	checkRangeVia(t, r, "RQM", n, 1000)
}

// TestChannelIdlePartnerKilled: a sender with nothing to send notices at
// once that its partner died (the connection's FIN), not at its next
// heartbeat (HBINT is 300 s here), goes to RETRYING, and resumes when the
// partner is back.
func TestChannelIdlePartnerKilled(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process")
	}
	g, r, port := remoteSetup(t)
	sendAndCheck(t, g, r, 1000)
	r.kill("RQM")
	waitFor(t, "the idle channel retrying", 15*time.Second, func() bool {
		st, _ := g.chStatus("TO.R")
		return st.State == channel.Retrying
	})
	r.startWith("RQM", "--port", strconv.Itoa(port))
	putRange(t, g, "QM1", 1000, 500)
	waitFor(t, "the messages sent after the partner came back", 60*time.Second, func() bool {
		return r.depth("TARGET") >= 500 && g.depth("XQ") == 0
	})
	time.Sleep(200 * time.Millisecond)
	checkRangeVia(t, r, "RQM", 1000, 500) // the first 1000 were checked (got) already
}

// TestChannelStopQuiesces: STOP CHANNEL during a transfer waits for the
// batches in flight, so the channel stops with nothing in doubt (no
// sender record in the sync queue), and a START goes on from there.
func TestChannelStopQuiesces(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process")
	}
	const n = 20000
	g, r, _ := remoteSetup(t)
	putSeq(t, g, "QM1", n)
	g.mqsc("START CHANNEL(TO.R)")
	waitFor(t, "messages at the remote side", 30*time.Second, func() bool { return r.depth("TARGET") >= 500 })
	g.mqsc("STOP CHANNEL(TO.R)")
	waitFor(t, "the channel stopped", 15*time.Second, func() bool { st, _ := g.chStatus("TO.R"); return st.State == channel.Stopped })
	if d := g.depth(channel.SyncQueue); d != 0 {
		t.Fatalf("%d sender records in the sync queue after STOP CHANNEL", d)
	}
	if moved := r.depth("TARGET") + g.depth("XQ"); moved != n {
		t.Fatalf("%d messages at the remote side and on the transmission queue, want %d", moved, n)
	}
	g.mqsc("START CHANNEL(TO.R)")
	waitAll(t, g, r, n)
}

// TestChannelStatusUnavailable: the status table cannot be read for a
// while by the channel initiator running the channel. The instance ends,
// its lock frees, and the channel restarts (on another member, or on the
// same once the table is back); nothing is lost or duplicated.
func TestChannelStatusUnavailable(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process")
	}
	fired, disarm := armOnce(t, "channel.status.unavailable:20:fail:40")
	g, r, _ := remoteSetup(t)
	disarm()
	sendAndCheck(t, g, r, 20000)
	if _, err := os.Stat(fired); err != nil {
		t.Fatalf("the status table never failed: %v", err)
	}
	if !logsContain(g, "channel failed; retrying", channel.ErrUnavailable.Error()) {
		t.Fatal("no channel instance ended on the unavailable status table")
	}
}

// logsContain reports whether a line of g's member logs holds every one of
// the strings.
func logsContain(g *testGroup, all ...string) bool {
	logs, _ := filepath.Glob(filepath.Join(g.dir, "*.log"))
	for _, l := range logs {
		b, _ := os.ReadFile(l)
	line:
		for _, ln := range strings.Split(string(b), "\n") {
			for _, s := range all {
				if !strings.Contains(ln, s) {
					continue line
				}
			}
			return true
		}
	}
	return false
}

// TestChannelTLS: a channel with certificates on both sides carries
// messages over TLS; a sender without TLS is refused by the TLS receiver
// and moves nothing.
func TestChannelTLS(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process")
	}
	dir := t.TempDir()
	ca := writeTLS(t, dir)
	g, r, port := remoteSetup(t)
	files := fmt.Sprintf("SSLCERT('%s') SSLKEY('%s') SSLCA('%s')", filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"), ca)
	r.mqsc("ALTER CHANNEL(TO.R) CHLTYPE(RCVR) " + files)
	// A plain sender first: refused, nothing moves.
	r.mqsc("DEFINE QLOCAL(UNUSED)")
	putSeq(t, g, "QM1", 100)
	g.mqsc("START CHANNEL(TO.R)")
	waitFor(t, "the plain channel refused", 30*time.Second, func() bool {
		st, _ := g.chStatus("TO.R")
		return st.State == channel.Retrying && st.Retries >= 1
	})
	if d := r.depth("TARGET"); d != 0 {
		t.Fatalf("%d messages arrived over a plain channel to a TLS receiver", d)
	}
	g.mqsc("STOP CHANNEL(TO.R)")
	waitFor(t, "the channel stopped", 30*time.Second, func() bool { st, _ := g.chStatus("TO.R"); return st.State == channel.Stopped })
	g.mqsc(fmt.Sprintf("ALTER CHANNEL(TO.R) CHLTYPE(SDR) CONNAME('127.0.0.1(%d)') XMITQ(XQ) %s", port, files))
	g.mqsc("START CHANNEL(TO.R)")
	waitAll(t, g, r, 100)
}

// writeTLS writes a CA (ca.pem) and a certificate for 127.0.0.1 signed by
// it (cert.pem, key.pem), used by both sides, and returns the CA's path.
func writeTLS(t *testing.T, dir string) string {
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "qmgr test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "qmgr channel"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(key)
	write := func(name, typ string, b []byte) {
		if err := os.WriteFile(filepath.Join(dir, name), pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: b}), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("ca.pem", "CERTIFICATE", caDER)
	write("cert.pem", "CERTIFICATE", der)
	write("key.pem", "EC PRIVATE KEY", keyDER)
	return filepath.Join(dir, "ca.pem")
}
