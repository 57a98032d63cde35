package httpd_test

import (
	"bytes"
	"context"
	"encoding/json"
	"image/png"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/qmgr/qmgr/cli"
	"github.com/qmgr/qmgr/group"
	"github.com/qmgr/qmgr/internal/groupproc"
	"github.com/qmgr/qmgr/internal/testproc"
	"github.com/qmgr/qmgr/internal/testtool"
	"github.com/qmgr/qmgr/status"
)

func TestMain(m *testing.M) {
	testproc.Register("qmgr", func(args []string) int { return cli.Main(args, os.Stdout, os.Stderr) })
	testproc.Main(m)
}

// qmgrCommand runs this test binary as qmgr with args (the group's
// members).
func qmgrCommand(args ...string) *exec.Cmd {
	c := exec.Command(os.Args[0], args...)
	c.Env = append(os.Environ(), testproc.RoleEnv("qmgr"))
	return c
}

// webGroup is a group of real member processes whose member QM1 serves
// HTTP.
type webGroup struct {
	t     *testing.T
	cfg   group.Config
	procs *groupproc.Group
	url   string // QM1's server
}

const browserToken = "browser-test-token-0123456789"

// recoverySlowedBy is how long QM1's first recovery of a dead member
// sleeps once it claimed the peer record: the console shows the dead
// member "recovering" meanwhile.
const recoverySlowedBy = 4 * time.Second

// startWebGroup starts QM1 (with --http, and its peer recoveries slowed
// by a crash point so that a dead member is seen before it is
// recovered) and QM2.
func startWebGroup(t *testing.T) *webGroup {
	dir := t.TempDir()
	cfg := group.Config{Name: "WEB", DataDir: filepath.Join(dir, "data"), CFDir: filepath.Join(dir, "cf"), AppSize: 32 << 20}.WithDefaults()
	g := &webGroup{t: t, cfg: cfg, procs: &groupproc.Group{Cfg: cfg, Dir: dir, Command: qmgrCommand,
		StartFlags: []string{"--heartbeat", "20ms", "--heartbeat-timeout", "2s", "--stop-grace", "300ms", "--no-chinit"}}}
	t.Cleanup(func() {
		g.procs.KillAll()
		if t.Failed() {
			g.procs.DumpLogs(t.Logf, 20000)
		}
	})
	slowRecovery := func(c *exec.Cmd) {
		c.Env = append(c.Env, "QMGR_CRASHPOINT=qm.recover.claimed:1:sleep:"+recoverySlowedBy.String())
	}
	if _, err := g.procs.Spawn("QM1", slowRecovery, "--http", "127.0.0.1:0", "--http-token", browserToken); err != nil {
		t.Fatal(err)
	}
	if err := g.procs.WaitActive("QM1"); err != nil {
		t.Fatalf("%v\n%s", err, g.procs.Log("QM1"))
	}
	g.url = "http://" + listening(t, g.procs.Log("QM1"))
	if _, err := g.procs.Start("QM2"); err != nil {
		t.Fatalf("%v\n%s", err, g.procs.Log("QM2"))
	}
	return g
}

// listening is the address a member's log says its HTTP server listens on.
func listening(t *testing.T, log string) string {
	m := regexp.MustCompile(`msg="http server listening" addr=(\S+)`).FindStringSubmatch(log)
	if m == nil {
		t.Fatalf("the member did not log its HTTP address:\n%s", log)
	}
	return m[1]
}

// qmgr runs qmgr in this process against the group.
func (g *webGroup) qmgr(args ...string) string {
	g.t.Helper()
	var out, errb bytes.Buffer
	if code := cli.MainIO(g.cfg.Args(args...), strings.NewReader(""), &out, &errb); code != 0 {
		g.t.Fatalf("qmgr %q: exit %d\n%s%s", args, code, out.String(), errb.String())
	}
	return out.String()
}

func (g *webGroup) get(path string) []byte {
	g.t.Helper()
	resp, err := http.Get(g.url + path)
	if err != nil {
		g.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		g.t.Fatalf("GET %s: %d %s", path, resp.StatusCode, b)
	}
	return b
}

// TestAPIMatchesCLI: /api/status is `qmgr status --json`, and
// /api/display/qstatus is `qmgr mqsc --json -c "DISPLAY QSTATUS(*)"`, for
// the same group (the heartbeat ages aside, which move).
func TestAPIMatchesCLI(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process")
	}
	g := startWebGroup(t)
	g.qmgr("mqsc", "-c", "DEFINE QLOCAL(Q.API)")
	g.qmgr("put", "--queue", "Q.API", "--count", "3")
	var cliRep, apiRep status.Report
	if err := json.Unmarshal([]byte(g.qmgr("status", "--json")), &cliRep); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(g.get("/api/status"), &apiRep); err != nil {
		t.Fatal(err)
	}
	for _, r := range []*status.Report{&cliRep, &apiRep} {
		for i := range r.Members {
			r.Members[i].Heartbeat = ""
		}
	}
	a, _ := json.Marshal(cliRep)
	b, _ := json.Marshal(apiRep)
	if !bytes.Equal(a, b) || apiRep.Active != 2 || len(apiRep.Queues) < 2 {
		t.Fatalf("qmgr status --json:\n%s\n/api/status:\n%s", a, b)
	}
	var d struct{ Objects []json.RawMessage }
	if err := json.Unmarshal(g.get("/api/display/qstatus"), &d); err != nil {
		t.Fatal(err)
	}
	var api []string
	for _, o := range d.Objects {
		api = append(api, string(o))
	}
	cliLines := strings.Fields(g.qmgr("mqsc", "--json", "-c", "DISPLAY QSTATUS(*)"))
	if strings.Join(api, "\n") != strings.Join(cliLines, "\n") || !strings.Contains(strings.Join(api, ""), `"QUEUE":"Q.API","TYPE":"QUEUE","CURDEPTH":3`) {
		t.Fatalf("DISPLAY QSTATUS:\n%s\n/api/display/qstatus:\n%s", strings.Join(cliLines, "\n"), strings.Join(api, "\n"))
	}
	checkMetrics(t, g.get("/metrics"))
}

// checkMetrics checks that a member's /metrics (qmgr start wires package
// metrics into its server) has the group's figures of Q.API after the 3
// puts of TestAPIMatchesCLI, labelled with the group and the member.
func checkMetrics(t *testing.T, exposition []byte) {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(bytes.NewReader(exposition))
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	for name, want := range map[string]float64{"qmgr_queue_depth_messages": 3, "qmgr_queue_put_messages_total": 3} {
		var got []float64
		for _, m := range mfs[name].GetMetric() {
			l := map[string]string{}
			for _, p := range m.GetLabel() {
				l[p.GetName()] = p.GetValue()
			}
			if l["queue"] == "Q.API" && l["group"] == "WEB" && l["member"] == "QM1" {
				got = append(got, m.GetGauge().GetValue()+m.GetCounter().GetValue())
			}
		}
		if len(got) != 1 || got[0] != want {
			t.Errorf("/metrics %s{queue=Q.API,group=WEB,member=QM1}: %v, want [%v]", name, got, want)
		}
	}
	if mfs["go_goroutines"] == nil {
		t.Error("/metrics has no Go runtime figures")
	}
}

// hostileDescr is a queue description that would run script and make
// markup if the console put it in the page as HTML. Queue names allow
// only A-Z a-z 0-9 . _ / %, so the description is the user's text that
// reaches the queue table.
const hostileDescr = `<script>window.pwned=1</script><img src=x onerror=pwned=2>`

// TestConsoleInBrowser drives headless Chromium against a real group:
// the console loads without console errors, shows the members and
// queues, escapes a hostile description, shows a queue's depth change
// after a put, shows a SIGKILLed member as dead, then recovered (with
// the recovery in the peer recoveries), then active again after a
// restart; its filter works; a screenshot is not blank.
func TestConsoleInBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process")
	}
	var chrome string
	testtool.Need(t, "chromium", "apt-get install chromium", func() (err error) {
		chrome, err = exec.LookPath("chromium")
		return err
	})
	g := startWebGroup(t)
	g.qmgr("mqsc", "-c", "DEFINE QLOCAL(Q.WEB) DESCR('"+hostileDescr+"')")
	g.qmgr("mqsc", "-c", "DEFINE QLOCAL(Q.OTHER)")

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chrome), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.WindowSize(1280, 1000), chromedp.UserDataDir(t.TempDir()))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	b := &browser{t: t, ctx: ctx}
	b.collectConsole()
	if err := chromedp.Do(ctx, chromedp.Navigate(g.url+"/")); err != nil {
		t.Fatal(err)
	}

	// The members and the queues.
	b.waitFor("members and queues shown", `document.querySelector('#members tr[data-member="QM1"][data-state="active"]') !== null &&
		document.querySelector('#members tr[data-member="QM2"][data-state="active"]') !== null &&
		document.querySelector('#queues tr[data-queue="Q.WEB"]') !== null && document.querySelector('#queues tr[data-queue="Q.OTHER"]') !== null &&
		document.querySelector('#structures tr[data-structure="APPL1"] .fill') !== null &&
		Array.from(document.querySelectorAll('#backups tbody tr')).some(r => r.cells[0].textContent === "APPL1")`)
	if got := b.text(`#member`); got != "QM1" {
		t.Fatalf("the console says it is served by %q", got)
	}

	// The hostile description is text: no script ran, no element made.
	b.waitFor("the description shown", `document.querySelector('#queues tr[data-queue="Q.WEB"] td.descr').textContent !== ""`)
	if got := b.text(`#queues tr[data-queue="Q.WEB"] td.descr`); got != hostileDescr {
		t.Fatalf("description shown as %q, want the text %q", got, hostileDescr)
	}
	if n := b.eval(`String(document.querySelectorAll('#queues script, #queues img').length) + (typeof window.pwned)`); n != "0undefined" {
		t.Fatalf("the description became markup or ran: %s", n)
	}

	// The depth follows a put.
	b.waitFor("depth 0", `document.querySelector('#queues tr[data-queue="Q.WEB"] td.depth').textContent === "0"`)
	g.qmgr("put", "--queue", "Q.WEB", "--count", "7")
	b.waitFor("depth 7 after the put", `document.querySelector('#queues tr[data-queue="Q.WEB"] td.depth').textContent === "7"`)
	// The puts per second (from the queue's counters, over ten seconds)
	// show the put, and no get has been made.
	b.waitFor("puts per second after the put", `(() => { const r = document.querySelector('#queues tr[data-queue="Q.WEB"]');
		return parseFloat(r.cells[3].textContent) > 0 && r.cells[4].textContent === "0.0"; })()`)

	// The filter keeps the queues it matches.
	b.eval(`(() => { const f = document.getElementById('queue-filter'); f.value = 'web'; f.dispatchEvent(new Event('input')); return ""; })()`)
	b.waitFor("the filter", `document.querySelectorAll('#queues tbody tr').length === 1 && document.querySelector('#queues tr[data-queue="Q.WEB"]') !== null`)
	b.eval(`(() => { const f = document.getElementById('queue-filter'); f.value = ''; f.dispatchEvent(new Event('input')); return ""; })()`)
	b.waitFor("no filter", `document.querySelector('#queues tr[data-queue="Q.OTHER"]') !== null`)

	// Sorting: by depth, twice for the deepest first.
	b.eval(`(() => { const h = document.querySelector('#queues th[data-key="depth"]'); h.click(); h.click(); return ""; })()`)
	b.waitFor("sorted by depth, deepest first", `document.querySelector('#queues tbody tr').dataset.queue === "Q.WEB" &&
		document.querySelector('#queues th[data-key="depth"]').classList.contains('sorted-desc')`)
	b.eval(`(() => { document.querySelector('#queues th[data-key="name"]').click(); return ""; })()`)
	b.waitFor("sorted by name", `document.querySelector('#queues tbody tr').dataset.queue === "Q.OTHER"`)

	// A member SIGKILLed: dead (QM1's recovery of it is slowed by a crash
	// point), then recovered, then active again once restarted.
	g.procs.Kill("QM2")
	seen := b.watchState("QM2", "recovered", 30*time.Second)
	dead := false
	for _, s := range seen {
		if s == "failed" || s == "recovering" {
			dead = true
		}
	}
	t.Logf("QM2's states shown after its SIGKILL: %q", seen)
	if !dead {
		t.Fatalf("QM2's states shown after its SIGKILL: %q; want failed or recovering before recovered", seen)
	}
	b.waitFor("the peer recovery listed", `Array.from(document.querySelectorAll('#recoveries tbody tr')).some(r => r.cells[1].textContent === "QM2")`)
	var recs struct {
		Recoveries []struct {
			Peer string
			Took time.Duration `json:"took_ns"`
		}
	}
	if err := json.Unmarshal(g.get("/api/recoveries"), &recs); err != nil || len(recs.Recoveries) != 1 || recs.Recoveries[0].Peer != "QM2" || recs.Recoveries[0].Took < recoverySlowedBy {
		t.Fatalf("QM1's recoveries (one of QM2, slowed by %v): %+v %v", recoverySlowedBy, recs, err)
	}
	if _, err := g.procs.Start("QM2"); err != nil {
		t.Fatal(err)
	}
	b.waitFor("QM2 active again", `document.querySelector('#members tr[data-member="QM2"][data-state="active"]') !== null`)

	b.screenshot()
	b.noConsoleErrors()
}

// browser is a Chromium tab and the console messages it wrote.
type browser struct {
	t   *testing.T
	ctx context.Context

	mu      sync.Mutex
	console []chromedp.ConsoleMessage
}

// collectConsole records the tab's console messages from now on.
func (b *browser) collectConsole() {
	msgs := chromedp.Console(b.ctx)
	go func() {
		for m, err := range msgs {
			if err != nil {
				return
			}
			b.mu.Lock()
			b.console = append(b.console, m)
			b.mu.Unlock()
		}
	}()
}

// noConsoleErrors fails on an error or an exception in the console.
func (b *browser) noConsoleErrors() {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, m := range b.console {
		b.t.Logf("console: %s", m)
		if m.Type == chromedp.ConsoleError || m.IsException() {
			b.t.Errorf("console error: %s (%s:%d)", m, m.URL, m.Line)
		}
	}
}

func (b *browser) eval(expr string) string {
	b.t.Helper()
	v, err := chromedp.Run(b.ctx, chromedp.Evaluate[string](expr))
	if err != nil {
		b.t.Fatalf("%s: %v", expr, err)
	}
	return v
}

func (b *browser) text(sel string) string {
	b.t.Helper()
	v, err := chromedp.Run(b.ctx, chromedp.Evaluate[string](`document.querySelector(`+jsString(sel)+`).textContent`))
	if err != nil {
		b.t.Fatalf("%s: %v", sel, err)
	}
	return v
}

func jsString(s string) string {
	q, _ := json.Marshal(s)
	return string(q)
}

// waitFor waits until expr is true in the page (the console polls every
// second); after a minute it fails with the page's text.
func (b *browser) waitFor(what, expr string) {
	b.t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		ok, err := chromedp.Run(b.ctx, chromedp.Evaluate[bool](expr))
		if err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("%s: not in the page after a minute (%v):\n%s", what, err, b.eval(`document.body.innerText`))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// watchState records the states the console shows for member until it
// shows want, and returns them in order.
func (b *browser) watchState(member, want string, within time.Duration) []string {
	b.t.Helper()
	var seen []string
	deadline := time.Now().Add(within)
	for {
		s, err := chromedp.Run(b.ctx, chromedp.Evaluate[string](`(document.querySelector('#members tr[data-member=`+jsString(member)+`]') || {dataset: {state: ""}}).dataset.state`))
		if err != nil {
			b.t.Fatal(err)
		}
		if len(seen) == 0 || seen[len(seen)-1] != s {
			seen = append(seen, s)
		}
		if s == want {
			return seen
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("%s not %s after %v: states shown %q", member, want, within, seen)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// screenshot saves the page as a PNG in the test's temp dir and checks it
// is not blank: many colours. QMGR_CONSOLE_SCREENSHOT=file keeps a copy.
func (b *browser) screenshot() {
	b.t.Helper()
	buf, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Fatal(err)
	}
	path := filepath.Join(b.t.TempDir(), "console.png")
	if err := os.WriteFile(path, buf, 0o644); err != nil {
		b.t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(buf))
	if err != nil {
		b.t.Fatalf("screenshot %s: %v", path, err)
	}
	colours := map[[4]uint32]bool{}
	r := img.Bounds()
	for y := r.Min.Y; y < r.Max.Y; y += 3 {
		for x := r.Min.X; x < r.Max.X; x += 3 {
			cr, cg, cb, ca := img.At(x, y).RGBA()
			colours[[4]uint32{cr, cg, cb, ca}] = true
		}
	}
	if r.Dx() < 400 || r.Dy() < 300 || len(colours) < 20 {
		b.t.Fatalf("screenshot %s looks blank: %v, %d colours", path, r, len(colours))
	}
	b.t.Logf("screenshot %s: %v, %d colours", path, r, len(colours))
	if keep := os.Getenv("QMGR_CONSOLE_SCREENSHOT"); keep != "" {
		os.WriteFile(keep, buf, 0o644) // to look at it (the temp dir goes)
	}
}
