package mq

import (
	"testing"

	"github.com/qmgr/qmgr/lockfree"
)

// TestTokenOfStructures: a non-persistent message's token is unique in its
// structure (tokenMix is a bijection for one structure) and differs from
// another structure's message in the same entry (the first message of two
// fresh structures); a persistent one's is its key.
func TestTokenOfStructures(t *testing.T) {
	seen := map[uint64]bool{}
	for idx := uint64(0); idx < 1<<12; idx++ {
		for gen := uint64(0); gen < 4; gen++ {
			lm := lockfree.Message{Token: (idx+1)<<24 | gen}
			tok := tokenOf(&lm, "APPL1")
			if tok>>63 != 1 || seen[tok] {
				t.Fatalf("entry %d gen %d: token %x (seen %v)", idx, gen, tok, seen[tok])
			}
			seen[tok] = true
			if other := tokenOf(&lm, "APPL2"); other == tok {
				t.Fatalf("entry %d gen %d: the same token %x in APPL1 and APPL2", idx, gen, tok)
			}
		}
	}
	lm := lockfree.Message{Key: 42, Token: 1 << 24}
	if tok := tokenOf(&lm, "APPL1"); tok != 42 {
		t.Fatalf("a persistent message's token %d, want its key 42", tok)
	}
}
