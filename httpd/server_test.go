package httpd

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/qmgr/qmgr/qm"
	"github.com/qmgr/qmgr/status"
)

// fakeSource is a member that records the commands it is given.
type fakeSource struct {
	mu       sync.Mutex
	commands []string
	notReady error
	// hold, when set, blocks Exec until it is closed, after a send on
	// entered.
	hold, entered chan struct{}
}

func (f *fakeSource) Name() string { return "QM1" }
func (f *fakeSource) Ready() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.notReady
}

func (f *fakeSource) setReady(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.notReady = err
}
func (f *fakeSource) Status() (status.Report, error) {
	return status.Report{Group: "G", Active: 1, Members: []status.Member{{Name: "QM1", State: "active"}}}, nil
}
func (f *fakeSource) Exec(cmd string) qm.Response {
	if f.hold != nil {
		f.entered <- struct{}{}
		<-f.hold
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.commands = append(f.commands, cmd)
	return qm.Response{OK: true, Member: "QM1", Text: "done", Objects: []json.RawMessage{json.RawMessage(`{"QUEUE":"Q"}`)}}
}
func (f *fakeSource) PeerRecoveries() []qm.PeerRecovery { return nil }

func (f *fakeSource) executed() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.commands...)
}

const testToken = "0123456789abcdef-token"

// serve runs a server of cfg (on a free loopback port) showing src.
func serve(t *testing.T, cfg Config, src Source) (*Server, string) {
	t.Helper()
	cfg.Addr = "127.0.0.1:0"
	s, err := Listen(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if src != nil {
		s.SetSource(src)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve() }()
	t.Cleanup(func() {
		s.Close(t.Context())
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return s, "http://" + s.Addr().String()
}

func do(t *testing.T, method, url, token string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func TestConfigValidate(t *testing.T) {
	for _, c := range []struct {
		cfg Config
		ok  bool
	}{
		{Config{}, true},
		{Config{Addr: "127.0.0.1:9100"}, true},
		{Config{Addr: ":9100", Token: testToken}, true},
		{Config{Addr: "localhost:0"}, true},
		{Config{Token: testToken}, false}, // a token without a server
		{Config{Addr: "127.0.0.1"}, false},
		{Config{Addr: "127.0.0.1:99999"}, false},
		{Config{Addr: "example.com:80"}, false},
		{Config{Addr: "127.0.0.1:9100", Token: "short"}, false},
		{Config{Addr: "127.0.0.1:9100", ReadTimeout: -1}, false},
		{Config{Addr: "127.0.0.1:9100", MaxHeaderBytes: 100}, false},
	} {
		if err := c.cfg.Validate(); (err == nil) != c.ok {
			t.Errorf("%+v: Validate = %v, want ok %v", c.cfg, err, c.ok)
		} else if err != nil && !errors.Is(err, ErrConfig) {
			t.Errorf("%+v: %v is not ErrConfig", c.cfg, err)
		}
	}
}

// TestBadRequests: unknown paths, wrong methods and huge headers get
// their status codes.
func TestBadRequests(t *testing.T) {
	_, url := serve(t, Config{MaxHeaderBytes: 4096}, &fakeSource{})
	for _, c := range []struct {
		method, path string
		code         int
	}{
		{"GET", "/nosuch", 404},
		{"GET", "/api/nosuch", 404},
		{"GET", "/api/display/nosuch", 404},
		{"GET", "/static/nosuch.js", 404},
		{"POST", "/api/status", 405},
		{"DELETE", "/healthz", 405},
		{"GET", "/api/channels/C1/stop", 405},
		{"GET", "/healthz", 200},
		{"GET", "/api/status", 200},
		{"GET", "/", 200},
		{"GET", "/static/console.js", 200},
	} {
		if resp, body := do(t, c.method, url+c.path, ""); resp.StatusCode != c.code {
			t.Errorf("%s %s: %d %q, want %d", c.method, c.path, resp.StatusCode, body, c.code)
		}
	}
	req, _ := http.NewRequest("GET", url+"/healthz", nil)
	req.Header.Set("X-Huge", strings.Repeat("x", 64<<10))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("huge header: %d, want 431", resp.StatusCode)
	}
}

// TestSecurityHeaders: every answer, the console's page too, carries
// the Content-Security-Policy.
func TestSecurityHeaders(t *testing.T) {
	_, url := serve(t, Config{}, &fakeSource{})
	for _, p := range []string{"/", "/api/status", "/nosuch"} {
		resp, _ := do(t, "GET", url+p, "")
		if got := resp.Header.Get("Content-Security-Policy"); got != contentSecurityPolicy {
			t.Errorf("%s: Content-Security-Policy %q", p, got)
		}
		if resp.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s: no nosniff", p)
		}
	}
}

// TestActionsNeedToken: an action is refused without the token (401),
// with a wrong one (403), by a server without a token (403), and runs
// the MQSC command with the right one.
func TestActionsNeedToken(t *testing.T) {
	src := &fakeSource{}
	_, url := serve(t, Config{Token: testToken}, src)
	for _, c := range []struct {
		token string
		code  int
	}{
		{"", 401},
		{"wrong-token-wrong-token", 403},
		{testToken + "x", 403},
		{testToken[:len(testToken)-1], 403},
	} {
		if resp, body := do(t, "POST", url+"/api/channels/C1/stop", c.token); resp.StatusCode != c.code {
			t.Errorf("token %q: %d %q, want %d", c.token, resp.StatusCode, body, c.code)
		}
	}
	if got := src.executed(); len(got) != 0 {
		t.Fatalf("commands ran without the token: %q", got)
	}
	if resp, body := do(t, "POST", url+"/api/channels/C1/stop", testToken); resp.StatusCode != 200 {
		t.Fatalf("stop with the token: %d %q", resp.StatusCode, body)
	}
	if resp, body := do(t, "POST", url+"/api/channels/C1/start", testToken); resp.StatusCode != 200 {
		t.Fatalf("start with the token: %d %q", resp.StatusCode, body)
	}
	if resp, _ := do(t, "POST", url+"/api/channels/C1%29%20ALL/start", testToken); resp.StatusCode != 400 {
		t.Fatalf("a channel name that is not one: %d, want 400", resp.StatusCode)
	}
	if resp, _ := do(t, "POST", url+"/api/channels/C1/delete", testToken); resp.StatusCode != 404 {
		t.Fatalf("an action that does not exist: %d, want 404", resp.StatusCode)
	}
	if got, want := strings.Join(src.executed(), ";"), "STOP CHANNEL(C1);START CHANNEL(C1)"; got != want {
		t.Fatalf("commands %q, want %q", got, want)
	}

	off := &fakeSource{}
	_, url = serve(t, Config{}, off)
	if resp, _ := do(t, "POST", url+"/api/channels/C1/stop", testToken); resp.StatusCode != 403 {
		t.Fatalf("an action on a server without a token: %d, want 403", resp.StatusCode)
	}
	if len(off.executed()) != 0 {
		t.Fatal("a server without a token ran an action")
	}
}

// TestSlowClientClosed: a client that sends half a header is cut off by
// ReadHeaderTimeout, and other clients are served meanwhile.
func TestSlowClientClosed(t *testing.T) {
	s, url := serve(t, Config{ReadHeaderTimeout: 200 * time.Millisecond}, &fakeSource{})
	c, err := net.Dial("tcp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Half: ")); err != nil {
		t.Fatal(err)
	}
	if resp, _ := do(t, "GET", url+"/healthz", ""); resp.StatusCode != 200 {
		t.Fatalf("healthz while a client is slow: %d", resp.StatusCode)
	}
	// The server closes the connection; the deadline only keeps a broken
	// server from hanging the test.
	c.SetReadDeadline(time.Now().Add(time.Minute))
	_, err = bufio.NewReader(c).ReadString('\n')
	var ne net.Error
	if err == nil || errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("a half-sent header was not cut off: read %v", err)
	}
}

// TestReadiness: /readyz is 503 until the member is set and while it is
// not ready; /healthz is 200 all along.
func TestReadiness(t *testing.T) {
	s, url := serve(t, Config{}, nil)
	check := func(path string, want int) {
		t.Helper()
		if resp, body := do(t, "GET", url+path, ""); resp.StatusCode != want {
			t.Fatalf("%s: %d %q, want %d", path, resp.StatusCode, body, want)
		}
	}
	check("/healthz", 200)
	check("/readyz", 503)
	check("/api/status", 503)
	src := &fakeSource{notReady: errors.New("structure APPL1 is RECOVERING")}
	s.SetSource(src)
	check("/readyz", 503)
	check("/api/status", 200)
	src.setReady(nil)
	check("/readyz", 200)
}

// TestMetricsRegistry: /metrics exposes the registry of the
// configuration.
func TestMetricsRegistry(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "qmgr_test_things_total", Help: "things"})
	reg.MustRegister(c)
	c.Add(3)
	_, url := serve(t, Config{Registry: reg}, &fakeSource{})
	resp, body := do(t, "GET", url+"/metrics", "")
	if resp.StatusCode != 200 || !strings.Contains(body, "qmgr_test_things_total 3") {
		t.Fatalf("metrics: %d %q", resp.StatusCode, body)
	}
}

// TestDisplayJSON: /api/display/{object} runs its DISPLAY command and
// answers with the member's objects.
func TestDisplayJSON(t *testing.T) {
	src := &fakeSource{}
	_, url := serve(t, Config{}, src)
	resp, body := do(t, "GET", url+"/api/display/qlocal", "")
	var d Display
	if resp.StatusCode != 200 || json.Unmarshal([]byte(body), &d) != nil || d.Command != "DISPLAY QLOCAL(*) ALL" || len(d.Objects) != 1 || string(d.Objects[0]) != `{"QUEUE":"Q"}` {
		t.Fatalf("display: %d %q", resp.StatusCode, body)
	}
	if got := src.executed(); len(got) != 1 || got[0] != "DISPLAY QLOCAL(*) ALL" {
		t.Fatalf("commands %q", got)
	}
}

// TestOneCommandAtATime: while one request's command runs on the member,
// another waits CommandWait and gets 503; reading the status does not
// wait.
func TestOneCommandAtATime(t *testing.T) {
	src := &fakeSource{hold: make(chan struct{}), entered: make(chan struct{}, 1)}
	_, url := serve(t, Config{CommandWait: 100 * time.Millisecond}, src)
	first := make(chan int)
	go func() {
		resp, err := http.Get(url + "/api/display/qstatus")
		if err != nil {
			first <- 0
			return
		}
		resp.Body.Close()
		first <- resp.StatusCode
	}()
	// The first request holds the command until hold closes: once it
	// runs, a second one is refused.
	select {
	case <-src.entered:
	case <-time.After(time.Minute):
		t.Fatal("the first command never ran")
	}
	if resp, body := do(t, "GET", url+"/api/display/qlocal", ""); resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(body, "busy") {
		t.Fatalf("a second command while the first runs: %d %q, want 503 busy", resp.StatusCode, body)
	}
	if resp, _ := do(t, "GET", url+"/api/status", ""); resp.StatusCode != 200 {
		t.Fatalf("status while a command runs: %d", resp.StatusCode)
	}
	close(src.hold)
	if code := <-first; code != 200 {
		t.Fatalf("the first command: %d", code)
	}
	go func() { <-src.entered }() // the next command's
	if resp, _ := do(t, "GET", url+"/api/display/qlocal", ""); resp.StatusCode != 200 {
		t.Fatalf("a command after the first ended: %d", resp.StatusCode)
	}
}
