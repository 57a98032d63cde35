package chaos

import (
	"errors"
	"fmt"
	"hash/crc32"
	"strconv"
	"strings"
)

// A message body names its message and checks itself:
//
//	CHAOS1|<producer>|<seq>|<crc32 of everything after the fourth bar, hex>|<padding>
//
// The key of the message is "<producer>:<seq>"; the padding (a length the
// producer chooses, so some messages span several data elements) is a
// pattern derived from the key, and the checksum covers it, so a body that
// comes back changed in any byte is told apart from one that came back
// whole.
const bodyMagic = "CHAOS1"

// Key is the name of message seq of producer proc.
func Key(proc string, seq int64) string { return proc + ":" + strconv.FormatInt(seq, 10) }

// ParseKey splits a key into its producer and sequence number.
func ParseKey(key string) (proc string, seq int64, err error) {
	i := strings.LastIndexByte(key, ':')
	if i <= 0 {
		return "", 0, fmt.Errorf("chaos: bad message key %q", key)
	}
	seq, err = strconv.ParseInt(key[i+1:], 10, 64)
	if err != nil {
		return "", 0, fmt.Errorf("chaos: bad message key %q", key)
	}
	return key[:i], seq, nil
}

// EncodeBody is the body of message seq of producer proc with n bytes of
// padding.
func EncodeBody(proc string, seq int64, n int) []byte {
	pad := make([]byte, n)
	for i := range pad {
		pad[i] = 'a' + byte((int64(i)+seq)%26)
	}
	sum := crc32.ChecksumIEEE(pad)
	head := fmt.Sprintf("%s|%s|%d|%08x|", bodyMagic, proc, seq, sum)
	return append([]byte(head), pad...)
}

// ErrBadBody is a body that is not one a producer of the harness wrote,
// or one that was changed.
var ErrBadBody = errors.New("chaos: not a harness message body, or a damaged one")

// DecodeBody returns the key of a body EncodeBody made, checking it.
func DecodeBody(b []byte) (string, error) {
	parts := strings.SplitN(string(b), "|", 5)
	if len(parts) != 5 || parts[0] != bodyMagic || parts[1] == "" {
		return "", fmt.Errorf("%w: %q", ErrBadBody, truncate(b, 60))
	}
	seq, err := strconv.ParseInt(parts[2], 10, 64)
	if err != nil {
		return "", fmt.Errorf("%w: sequence %q", ErrBadBody, parts[2])
	}
	sum, err := strconv.ParseUint(parts[3], 16, 32)
	if err != nil || uint32(sum) != crc32.ChecksumIEEE([]byte(parts[4])) {
		return "", fmt.Errorf("%w: checksum of %s:%d does not match its %d bytes of padding", ErrBadBody, parts[1], seq, len(parts[4]))
	}
	return Key(parts[1], seq), nil
}

func truncate(b []byte, n int) string {
	if len(b) > n {
		return string(b[:n]) + "..."
	}
	return string(b)
}
