package demo_test

import (
	"bytes"
	"strings"
	"testing"

	"github.com/qmgr/qmgr/cli/demo"
)

// TestUnitsDemo: the recovery units' demo (qmgr demo --part units),
// small: the ledger's primary replica SIGKILLed under load; the secondary
// is promoted, a replacement joins, every transfer is confirmed exactly
// once and in order, both replicas' balances equal the reference, and
// the checker is clean.
func TestUnitsDemo(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process")
	}
	var out bytes.Buffer
	c := demo.UnitsConfig{Dir: t.TempDir(), Transfers: 1500, Rate: 1000}
	if err := demo.RunUnits(c, &out); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	for _, want := range []string{"SIGKILL the primary", "promoted to primary", "starts a replacement", "the replacement joined",
		"all 1500 transfers confirmed", "ok    every transfer confirmed exactly once", "ok    in order",
		"ok    the reference ledger", "the replacement) equals the reference", "checker: every structure clean"} {
		if !strings.Contains(out.String(), want) {
			t.Fatalf("demo output lacks %q:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String(), "FAIL") {
		t.Fatalf("a check failed:\n%s", out.String())
	}
	t.Log(out.String())
}

// TestUnitsDemoMemberKilled: the same with the member hosting the primary
// replica SIGKILLed (issue 16's "the member supervising a replica
// killed"): the replica dies with its member, the other member recovers
// the dead one and its replica's connection, promotes the secondary and
// starts the replacement itself; every transfer confirmed exactly once
// and in order, both replicas' states the reference's, the checker clean.
func TestUnitsDemoMemberKilled(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process")
	}
	var out bytes.Buffer
	c := demo.UnitsConfig{Dir: t.TempDir(), Transfers: 1500, Rate: 1000, KillMember: true}
	if err := demo.RunUnits(c, &out); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	for _, want := range []string{"which hosts the primary", "promoted to primary", "starts a replacement", "the replacement joined",
		"all 1500 transfers confirmed", "ok    every transfer confirmed exactly once", "ok    in order",
		"ok    the reference ledger", "the replacement) equals the reference", "checker: every structure clean"} {
		if !strings.Contains(out.String(), want) {
			t.Fatalf("demo output lacks %q:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String(), "FAIL") {
		t.Fatalf("a check failed:\n%s", out.String())
	}
	t.Log(out.String())
}

func TestUnitsDemoConfig(t *testing.T) {
	for _, c := range []demo.UnitsConfig{{Transfers: 10}, {Transfers: 2_000_000}, {Rate: 5}, {Rate: 1_000_000}} {
		if err := c.Validate(); err == nil {
			t.Errorf("%+v accepted", c)
		}
	}
	if d := (demo.UnitsConfig{}).WithDefaults(); d.Transfers != 3000 || d.Rate != 1000 {
		t.Errorf("defaults %+v", d)
	}
}
