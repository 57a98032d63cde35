package qm

import (
	"fmt"
	"testing"
)

// TestUndefinedStructureInServiceIsNotAbandoned: a structure in the CF
// directory that is in service but has no definition (a DEFINE CFSTRUCT
// that created it and has not committed its definition yet, or failed) is
// no abandoned recovery. abandonedRecoveries used to go on to its
// definition check for it and take the last name off its list: a panic
// when the list was empty (a member crash the chaos run saw).
func TestUndefinedStructureInServiceIsNotAbandoned(t *testing.T) {
	cfg := testConfig(t, "QM1")
	m, err := Start(cfg) // the run loop is not running: it calls abandonedRecoveries too
	if err != nil {
		t.Fatal(err)
	}
	s, err := m.g.Structure("UNDEF", true) // created recovering, by this member
	if err != nil {
		t.Fatal(err)
	}
	s.PutInService()
	var got []string
	func() {
		defer func() {
			if r := recover(); r != nil {
				t.Fatalf("abandonedRecoveries panicked: %v", r)
			}
		}()
		got = m.abandonedRecoveries()
	}()
	if len(got) != 0 {
		t.Fatalf("abandoned recoveries %v, want none", fmt.Sprint(got))
	}
}
