package mqsc

import (
	"strings"
	"testing"
)

// TestTextColumnsAligned: the second column of a display starts at the same
// place on every line of an object, after at least one blank, even when a
// value in the first column is wider than MQSC's 40 characters (a DESCR of
// 64 characters); with short values the layout is MQSC's (a 40-character
// first column after three blanks), and no line ends in blanks.
func TestTextColumnsAligned(t *testing.T) {
	long := strings.Repeat("d", 64)
	rs := []Result{
		{Header: "AMQ8409I: Display Queue details.", Attrs: []KV{{"QUEUE", "IN"}, {"TYPE", "QLOCAL"}, {"DESCR", long}, {"MAXDEPTH", int64(5000)}, {"CURDEPTH", int64(0)}}},
		{Header: "AMQ8409I: Display Queue details.", Attrs: []KV{{"QUEUE", "OUT"}, {"TYPE", "QLOCAL"}, {"CURDEPTH", int64(7)}}},
		{Header: "AMQ8409I: Display Queue details.", Attrs: []KV{{"QUEUE", "T"}, {"DESCR", "a\tb"}}},
	}
	got := Text(rs)
	want := "AMQ8409I: Display Queue details.\n" +
		"   QUEUE(IN)" + strings.Repeat(" ", 74-len("QUEUE(IN)")) + "TYPE(QLOCAL)\n" +
		"   DESCR('" + long + "') MAXDEPTH(5000)\n" +
		"   CURDEPTH(0)\n" +
		"AMQ8409I: Display Queue details.\n" +
		"   QUEUE(OUT)                              TYPE(QLOCAL)\n" +
		"   CURDEPTH(7)\n" +
		"AMQ8409I: Display Queue details.\n" +
		"   QUEUE(T)                                DESCR('a\tb')\n"
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	for _, l := range strings.Split(got, "\n") {
		if strings.HasSuffix(l, " ") {
			t.Errorf("line %q ends in blanks", l)
		}
	}
}

// TestTextKeepsEveryByte: a value is shown byte for byte, whatever bytes
// it holds (a DESCR is free text, not checked to be UTF-8; a member's name
// and version come from the peer table other processes write). A 0xff in
// it is text, not tabwriter's escape character: it is neither dropped nor
// allowed to shift the columns.
func TestTextKeepsEveryByte(t *testing.T) {
	rs := []Result{{Header: "AMQ8409I: Display Queue details.", Attrs: []KV{{"QUEUE", "Q"}, {"DESCR", "a\xffb\tc"}, {"CURDEPTH", int64(1)}, {"MAXDEPTH", int64(5)}}}}
	got := Text(rs)
	want := "AMQ8409I: Display Queue details.\n" +
		"   QUEUE(Q)                                DESCR('a\xffb\tc')\n" +
		"   CURDEPTH(1)                             MAXDEPTH(5)\n"
	if got != want {
		t.Errorf("got\n%q\nwant\n%q", got, want)
	}
}
