package mq

import (
	"testing"

	"github.com/qmgr/qmgr/defs"
)

// TestOffloadRules: which bodies go to a data set, by size, by what the
// structure can hold and by how full its data elements are (the default
// rules: 32K from 70%, 4K from 80%, everything above the inline size from
// 90%).
func TestOffloadRules(t *testing.T) {
	def := defs.CFStruct{Name: "S", Offload: defs.OffloadSMDS, OffldSz: 100 << 10}
	fill := 0.0
	p := &offloadPolicy{def: def, rules: def.Rules(), minSz: 0, maxVar: 1 << 20, fill: func() float64 { return fill }}
	cases := []struct {
		fill    float64
		n, v    int
		offload bool
	}{
		{0, 100, 0, false},             // inline
		{95, 100, 0, false},            // inline, however full
		{0, 99 << 10, 0, false},        // below OFFLDSZ
		{0, 100 << 10, 0, true},        // OFFLDSZ
		{0, 1<<20 - 10, 100, true},     // more than the structure holds
		{69.9, 32 << 10, 0, false},     // rule 1 not yet
		{70, 32 << 10, 0, true},        // rule 1
		{70, 32<<10 - 1, 0, false},     //
		{80, 4 << 10, 0, true},         // rule 2
		{80, 4<<10 - 1, 0, false},      //
		{90, 121, 0, true},             // rule 3: anything not inline
		{90, 100, 30, true},            // names and properties push it out of the entry
		{89.9, 4<<10 - 1, 0, false},    //
		{100, 200, 0, true},            //
		{50, 99 << 10, 1 << 10, false}, //
	}
	for _, c := range cases {
		fill = c.fill
		if got := p.offloads(c.n, c.v); got != c.offload {
			t.Errorf("fill %.1f%%, body %d, names and properties %d: offloads %v, want %v", c.fill, c.n, c.v, got, c.offload)
		}
	}
	p.def.Offload = ""
	if p.offloads(10<<20, 0) {
		t.Error("OFFLOAD(NONE) offloads")
	}
}
