package mq

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// TestDataSetNumsExactNames: only the names dsMember makes are data sets
// (<structure>.M<n>.smds, n without leading zeros): a stray file such as
// OFF.M07.smds was taken for data set 7, whose file OFF.M7.smds does not
// exist, so a DISPLAY or a check created it and a recovery's rebuild of
// the structure's data sets failed on it.
func TestDataSetNumsExactNames(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{"OFF.M07.smds", "OFF.M3.smds", "OFF.M00.smds", "OFF.M65536.smds", "OFFX.M4.smds", ".OFF.M5.smds.1.a.tmp"} {
		if err := os.WriteFile(filepath.Join(dir, n), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	nums, err := dataSetNums(dir, "OFF")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(nums, []uint16{3}) {
		t.Fatalf("data sets of OFF: %v, want [3]", nums)
	}
}
