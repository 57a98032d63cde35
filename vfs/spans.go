package vfs

import "sort"

// spans is a set of byte ranges [from, to), sorted and disjoint: the
// allocated bytes of a file in Mem.
type spans []span

type span struct{ from, to int64 }

// total is the number of bytes in the set.
func (s spans) total() int64 {
	var n int64
	for _, r := range s {
		n += r.to - r.from
	}
	return n
}

// missing is the number of bytes of [from, to) not in the set.
func (s spans) missing(from, to int64) int64 {
	n := to - from
	for _, r := range s {
		lo, hi := max(r.from, from), min(r.to, to)
		if lo < hi {
			n -= hi - lo
		}
	}
	return n
}

// fit returns the largest k <= to-from such that [from, from+k) misses
// at most budget bytes of the set.
func (s spans) fit(from, to, budget int64) int64 {
	at := from
	for _, r := range s {
		if r.to <= at {
			continue
		}
		if r.from >= to {
			break
		}
		if gap := min(r.from, to) - at; gap > 0 {
			if gap > budget {
				return at + budget - from
			}
			budget -= gap
		}
		at = max(at, min(r.to, to))
	}
	if gap := to - at; gap > budget {
		return at + budget - from
	}
	return to - from
}

// add returns the set with [from, to) in it.
func (s spans) add(from, to int64) spans {
	if from >= to {
		return s
	}
	out := make(spans, 0, len(s)+1)
	i := 0
	for ; i < len(s) && s[i].to < from; i++ {
		out = append(out, s[i])
	}
	for ; i < len(s) && s[i].from <= to; i++ {
		from, to = min(from, s[i].from), max(to, s[i].to)
	}
	out = append(out, span{from, to})
	return append(out, s[i:]...)
}

// cut returns the set without anything at or after size.
func (s spans) cut(size int64) spans {
	i := sort.Search(len(s), func(i int) bool { return s[i].to > size })
	out := append(spans(nil), s[:i]...)
	if i < len(s) && s[i].from < size {
		out = append(out, span{s[i].from, size})
	}
	return out
}
