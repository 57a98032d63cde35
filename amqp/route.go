package amqp

import (
	"bytes"
	"strings"
)

// TopicMatch reports whether a topic exchange's binding key matches a
// routing key. Both are words separated by '.'; in the binding key '*'
// stands for exactly one word and '#' for zero or more. An empty key has
// no words. The match is a dynamic program over the two word lists
// (O(binding words x routing words)): a hostile binding key of many '#'
// costs no more than any other.
func TopicMatch(binding, routing string) bool {
	b, r := words(binding), words(routing)
	// at[j]: the first i binding words match the first j routing words.
	at := make([]bool, len(r)+1)
	at[0] = true
	for _, w := range b {
		next := make([]bool, len(r)+1)
		for j := range next {
			switch {
			case w == "#":
				// Zero words (at[j]) or one more (next[j-1]).
				next[j] = at[j] || j > 0 && next[j-1]
			case j > 0:
				next[j] = at[j-1] && (w == "*" || w == r[j-1])
			}
		}
		at = next
	}
	return at[len(r)]
}

func words(key string) []string {
	if key == "" {
		return nil
	}
	return strings.Split(key, ".")
}

// HeadersMatch reports whether a headers exchange's binding arguments
// match a message's headers, as RabbitMQ does: x-match "all" (the
// default) needs every binding argument, "any" at least one; arguments
// whose names start with "x-" take no part, unless x-match is
// "all-with-x" or "any-with-x". A binding argument of no value (void)
// matches a header of that name with any value; otherwise the header must
// have the same type and value.
func HeadersMatch(args, headers Table) bool {
	mode, _ := args["x-match"].(string)
	withX := strings.HasSuffix(mode, "-with-x")
	anyOf := strings.HasPrefix(mode, "any")
	for k, want := range args {
		if k == "x-match" || !withX && strings.HasPrefix(k, "x-") {
			continue
		}
		got, ok := headers[k]
		hit := ok && (want == nil || sameField(want, got))
		if anyOf && hit {
			return true
		}
		if !anyOf && !hit {
			return false
		}
	}
	return !anyOf
}

// sameField compares two field values by their encodings (type and value).
func sameField(a, b any) bool {
	var ea, eb encoder
	errA, errB := ea.field(a, 1), eb.field(b, 1)
	return errA == nil && errB == nil && bytes.Equal(ea.b, eb.b)
}
