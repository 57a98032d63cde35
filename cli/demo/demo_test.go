package demo_test

import (
	"bytes"
	"os"
	"strings"
	"testing"

	"github.com/qmgr/qmgr/cli"
	"github.com/qmgr/qmgr/cli/demo"
	"github.com/qmgr/qmgr/internal/testproc"
)

// The demos re-execute their own binary as members and workers: in tests
// that binary is the test binary, so it dispatches qmgr's commands here.
func TestMain(m *testing.M) {
	testproc.RegisterCommand(func(args []string) int { return cli.Main(args, os.Stdout, os.Stderr) },
		"start", "chinit", demo.CFWorkerName, demo.GroupWorkerName, demo.RequestWorkerName, demo.UnitWorkerName)
	testproc.Main(m)
}

func TestDemo(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process")
	}
	var out bytes.Buffer
	c := demo.CFConfig{Dir: t.TempDir(), Producers: 2, Consumers: 2, Messages: 20000, Rate: 50000}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if err := demo.RunCF(c, &out); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	for _, want := range []string{"SIGKILL consumer", "repaired owner", "all 40000 messages arrived exactly once", "no broken invariant"} {
		if !strings.Contains(out.String(), want) {
			t.Fatalf("demo output lacks %q:\n%s", want, out.String())
		}
	}
}

func TestDemoConfig(t *testing.T) {
	for _, c := range []demo.CFConfig{{Consumers: 1}, {Producers: 99}, {Messages: 5}, {Batch: -1}, {KillAt: 2}, {Rate: -1}} {
		if err := c.Validate(); err == nil {
			t.Errorf("%+v accepted", c)
		}
	}
}

// TestGroupDemo: the group demo (three members, a member SIGKILLed) ends
// with every message arrived exactly once and a clean checker.
func TestGroupDemo(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process")
	}
	var out bytes.Buffer
	c := demo.GroupConfig{Dir: t.TempDir(), Messages: 3000, Rate: 20000}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if err := demo.RunGroup(c, &out); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	for _, want := range []string{"SIGKILL QM2", "all 6000 messages arrived exactly once", "checker: every structure clean"} {
		if !strings.Contains(out.String(), want) {
			t.Fatalf("demo output lacks %q:\n%s", want, out.String())
		}
	}
}

// TestDemoConfigDefaults: WithDefaults fills the documented defaults and
// Validate changes nothing.
func TestDemoConfigDefaults(t *testing.T) {
	var c demo.CFConfig
	if err := c.Validate(); err != nil || c != (demo.CFConfig{}) {
		t.Fatalf("Validate: %v, changed its receiver to %+v", err, c)
	}
	if d := c.WithDefaults(); d.Producers != 2 || d.Consumers != 2 || d.Messages != 500_000 || d.Batch != 50 || d.KillAt != 0.4 || d.Rate != 0 {
		t.Fatalf("CF defaults %+v", d)
	}
	var g demo.GroupConfig
	if err := g.Validate(); err != nil || g != (demo.GroupConfig{}) {
		t.Fatalf("Validate: %v, changed its receiver to %+v", err, g)
	}
	if d := g.WithDefaults(); d.Producers != 2 || d.Consumers != 2 || d.Messages != 100_000 || d.Batch != 50 || d.KillAt != 0.4 || d.Rate != 0 {
		t.Fatalf("group defaults %+v", d)
	}
}
