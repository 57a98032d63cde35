package audit_test

import "testing"

// The unit-to-unit scenarios with LOGGING(EARLY) (unit/early.go): the
// primary gets a batch's inputs and logs them before it processes any,
// so it judges duplicates and early inputs by its source table as the
// batch's inputs, not yet processed, leave it (unit/early.go
// expectedNext); several inputs of one source in a batch must each be
// taken in sequence, not moved to EARLY as if the first were missing.

// TestLoggingEarlyTwoUnits: TestTwoUnits with both units LOGGING(EARLY).
func TestLoggingEarlyTwoUnits(t *testing.T) { twoUnitsWith(t, false, "LOGGING(EARLY)") }

// TestLoggingEarlyDisorderlyRoute: TestTwoUnitsDisorderlyRoute with both
// units LOGGING(EARLY).
func TestLoggingEarlyDisorderlyRoute(t *testing.T) { twoUnitsWith(t, true, "LOGGING(EARLY)") }

// TestLoggingEarlyAndDuplicates: TestEarlyAndDuplicates with AUDIT
// LOGGING(EARLY): one batch holds seq 1, 2, a duplicate of each, and
// early ones.
func TestLoggingEarlyAndDuplicates(t *testing.T) { earlyAndDuplicates(t, "LOGGING(EARLY)") }
