package access

import (
	"errors"
	"testing"
)

// FuzzParseHash: ParseHash reads stored definitions: it never panics,
// refuses with ErrBadHash, and what it accepts is canonical (written
// back, it is the same string) and within MaxParams.
func FuzzParseHash(f *testing.F) {
	for _, s := range []string{
		"$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0c2FsdA$a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2U",
		"$argon2id$v=19$m=64,t=1,p=1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
		"$argon2id$v=19$m=4294967295,t=1,p=1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAA",
		"$argon2i$v=19$m=64,t=1,p=1$AAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAA",
		"$argon2id$v=19$m=64,t=1,p=1$$",
		"$2a$10$abcdefghijklmnopqrstuv",
		"", "$$$$$", "$argon2id$v=19$m=,t=,p=$=$=",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		h, err := ParseHash(s)
		if err != nil {
			if !errors.Is(err, ErrBadHash) {
				t.Fatalf("ParseHash(%q): %v is not ErrBadHash", s, err)
			}
			return
		}
		if h.String() != s {
			t.Fatalf("ParseHash(%q) accepted a non-canonical form: %q", s, h.String())
		}
		if err := h.Params.Validate(); err != nil || h.Memory > MaxParams.Memory {
			t.Fatalf("ParseHash(%q) accepted parameters %+v: %v", s, h.Params, err)
		}
	})
}
