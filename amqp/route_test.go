package amqp

import (
	"strings"
	"testing"
)

func TestTopicMatch(t *testing.T) {
	for _, c := range []struct {
		binding, routing string
		want             bool
	}{
		{"a.b.c", "a.b.c", true},
		{"a.b.c", "a.b", false},
		{"a.*.c", "a.b.c", true},
		{"a.*.c", "a.c", false},
		{"a.#", "a", true},
		{"a.#", "a.b.c", true},
		{"#", "", true},
		{"#", "a.b", true},
		{"*", "", false},
		{"*", "a", true},
		{"*", "a.b", false},
		{"#.c", "c", true},
		{"#.c", "a.b.c", true},
		{"#.c", "a.b.c.d", false},
		{"a.#.d", "a.d", true},
		{"a.#.d", "a.b.c.d", true},
		{"a.#.d", "a.b.c", false},
		{"*.#", "", false},
		{"#.*", "a", true},
		{"#.#", "", true},
		{"a.b", "a.bb", false},
		{"", "", true},
		{"", "a", false},
		{"a..b", "a..b", true}, // an empty word is a word
		{"a.*.b", "a..b", true},
	} {
		if got := TopicMatch(c.binding, c.routing); got != c.want {
			t.Errorf("TopicMatch(%q, %q) = %v, want %v", c.binding, c.routing, got, c.want)
		}
	}
}

// TestTopicMatchHostileKey: a binding key of many '#' and a long routing
// key match in polynomial time (a backtracking matcher takes forever).
func TestTopicMatchHostileKey(t *testing.T) {
	binding := strings.Repeat("#.", 100) + "x"
	routing := strings.Repeat("a.", 1000) + "y"
	if TopicMatch(binding, routing) {
		t.Fatal("matched a key that does not end with x")
	}
}

func TestHeadersMatch(t *testing.T) {
	h := Table{"format": "pdf", "type": "report", "n": int32(1)}
	for _, c := range []struct {
		name string
		args Table
		want bool
	}{
		{"all by default", Table{"format": "pdf", "type": "report"}, true},
		{"all, one differs", Table{"x-match": "all", "format": "pdf", "type": "log"}, false},
		{"any, one matches", Table{"x-match": "any", "format": "zip", "type": "report"}, true},
		{"any, none matches", Table{"x-match": "any", "format": "zip"}, false},
		{"void matches presence", Table{"format": nil}, true},
		{"void, absent", Table{"missing": nil}, false},
		{"type matters", Table{"n": int64(1)}, false},
		{"same type", Table{"n": int32(1)}, true},
		{"x- arguments take no part", Table{"format": "pdf", "x-other": "q"}, true},
		{"all-with-x counts them", Table{"x-match": "all-with-x", "format": "pdf", "x-other": "q"}, false},
		{"no arguments: all", Table{}, true},
		{"no arguments: any", Table{"x-match": "any"}, false},
	} {
		if got := HeadersMatch(c.args, h); got != c.want {
			t.Errorf("%s: HeadersMatch(%v) = %v, want %v", c.name, c.args, got, c.want)
		}
	}
}

// FuzzTopicMatch: any keys: no panic, and a key always matches itself
// when it has no wildcard.
func FuzzTopicMatch(f *testing.F) {
	f.Add("a.#.d", "a.b.c.d")
	f.Add("*.*", "")
	f.Fuzz(func(t *testing.T, binding, routing string) {
		TopicMatch(binding, routing)
		if !strings.ContainsAny(routing, "*#") && !TopicMatch(routing, routing) {
			t.Fatalf("%q does not match itself", routing)
		}
		if !TopicMatch("#", routing) {
			t.Fatalf("# does not match %q", routing)
		}
	})
}
