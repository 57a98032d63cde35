package access

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/crypto/argon2"
)

// Sentinel errors.
var (
	// ErrRefused is a login with an unknown user, a user without a
	// password, or a wrong password: the caller cannot tell which.
	ErrRefused = errors.New("access: login refused (unknown user or wrong password)")
	// ErrLoopbackOnly is a LoopbackOnly user logging in from an address
	// that is not loopback.
	ErrLoopbackOnly = errors.New("access: user may log in only from a loopback address")
	// ErrBadHash is a stored password hash that is not a PHC string this
	// package reads, or has parameters beyond MaxParams.
	ErrBadHash = errors.New("access: stored password hash unreadable")
)

// Params are argon2id's parameters.
type Params struct {
	Memory  uint32 // KiB
	Time    uint32 // passes
	Threads uint8  // lanes
	SaltLen int    // bytes of salt
	KeyLen  int    // bytes of key
}

// DefaultParams are what HashPassword uses (see the package doc for why):
// 19 MiB, 2 passes, 1 lane, a 16-byte salt, a 32-byte key.
var DefaultParams = Params{Memory: 19 * 1024, Time: 2, Threads: 1, SaltLen: 16, KeyLen: 32}

// MinParams and MaxParams bound what ParseHash accepts.
var (
	MinParams = Params{Memory: 8, Time: 1, Threads: 1, SaltLen: 8, KeyLen: 16}
	MaxParams = Params{Memory: 256 * 1024, Time: 16, Threads: 16, SaltLen: 64, KeyLen: 64}
)

// argon2Version is the only version ParseHash reads (0x13, RFC 9106).
const argon2Version = argon2.Version

// b64 is the PHC format's base64: standard alphabet, no padding.
var b64 = base64.RawStdEncoding

// Validate checks p against MinParams and MaxParams.
func (p Params) Validate() error {
	switch {
	case p.Memory < MinParams.Memory || p.Memory > MaxParams.Memory:
		return fmt.Errorf("%w: m=%d KiB not in %d..%d", ErrBadHash, p.Memory, MinParams.Memory, MaxParams.Memory)
	case p.Memory < 8*uint32(p.Threads):
		return fmt.Errorf("%w: m=%d KiB is less than 8 KiB a lane (p=%d)", ErrBadHash, p.Memory, p.Threads)
	case p.Time < MinParams.Time || p.Time > MaxParams.Time:
		return fmt.Errorf("%w: t=%d not in %d..%d", ErrBadHash, p.Time, MinParams.Time, MaxParams.Time)
	case p.Threads < MinParams.Threads || p.Threads > MaxParams.Threads:
		return fmt.Errorf("%w: p=%d not in %d..%d", ErrBadHash, p.Threads, MinParams.Threads, MaxParams.Threads)
	case p.SaltLen < MinParams.SaltLen || p.SaltLen > MaxParams.SaltLen:
		return fmt.Errorf("%w: salt of %d bytes not in %d..%d", ErrBadHash, p.SaltLen, MinParams.SaltLen, MaxParams.SaltLen)
	case p.KeyLen < MinParams.KeyLen || p.KeyLen > MaxParams.KeyLen:
		return fmt.Errorf("%w: key of %d bytes not in %d..%d", ErrBadHash, p.KeyLen, MinParams.KeyLen, MaxParams.KeyLen)
	}
	return nil
}

// Hash is a parsed PHC string.
type Hash struct {
	Params
	Salt []byte
	Key  []byte
}

// String is h as a PHC string.
func (h Hash) String() string {
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2Version, h.Memory, h.Time, h.Threads,
		b64.EncodeToString(h.Salt), b64.EncodeToString(h.Key))
}

// HashPassword hashes password with DefaultParams and a random salt, as a
// PHC string.
func HashPassword(password string) (string, error) {
	return HashPasswordWith(DefaultParams, password)
}

// HashPasswordWith hashes password with parameters p.
func HashPasswordWith(p Params, password string) (string, error) {
	if err := p.Validate(); err != nil {
		return "", fmt.Errorf("access: hash parameters: %w", err)
	}
	salt := make([]byte, p.SaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("access: salt: %w", err)
	}
	key := argon2.IDKey([]byte(password), salt, p.Time, p.Memory, p.Threads, uint32(p.KeyLen))
	return Hash{Params: p, Salt: salt, Key: key}.String(), nil
}

// ParseHash reads a PHC string of argon2id, version 19, with parameters
// within MinParams..MaxParams. It reads outside bytes (a definition any
// member of the group's OS group may have written): anything else is
// ErrBadHash, never a panic.
func ParseHash(s string) (Hash, error) {
	var h Hash
	f := strings.Split(s, "$")
	if len(f) != 6 || f[0] != "" || f[1] != "argon2id" {
		return h, fmt.Errorf("%w: not $argon2id$v=..$m=..,t=..,p=..$salt$key", ErrBadHash)
	}
	if v, ok := strings.CutPrefix(f[2], "v="); !ok || v != strconv.Itoa(argon2Version) {
		return h, fmt.Errorf("%w: version %q (only v=%d)", ErrBadHash, f[2], argon2Version)
	}
	if err := parseParams(f[3], &h.Params); err != nil {
		return h, err
	}
	var err error
	if h.Salt, err = b64.Strict().DecodeString(f[4]); err != nil {
		return h, fmt.Errorf("%w: salt: %v", ErrBadHash, err)
	}
	if h.Key, err = b64.Strict().DecodeString(f[5]); err != nil {
		return h, fmt.Errorf("%w: key: %v", ErrBadHash, err)
	}
	h.SaltLen, h.KeyLen = len(h.Salt), len(h.Key)
	return h, h.Params.Validate()
}

// parseParams reads "m=N,t=N,p=N", in that order (the PHC format's).
func parseParams(s string, p *Params) error {
	kv := strings.Split(s, ",")
	if len(kv) != 3 {
		return fmt.Errorf("%w: parameters %q (m=..,t=..,p=..)", ErrBadHash, s)
	}
	var vals [3]uint64
	for i, name := range []string{"m", "t", "p"} {
		v, ok := strings.CutPrefix(kv[i], name+"=")
		n, err := strconv.ParseUint(v, 10, 32)
		if !ok || err != nil || v != strconv.FormatUint(n, 10) {
			return fmt.Errorf("%w: parameter %q (want %s=<decimal>)", ErrBadHash, kv[i], name)
		}
		vals[i] = n
	}
	if vals[2] > 255 {
		return fmt.Errorf("%w: p=%d", ErrBadHash, vals[2])
	}
	p.Memory, p.Time, p.Threads = uint32(vals[0]), uint32(vals[1]), uint8(vals[2])
	return nil
}

// VerifyPassword reports whether password is the one hashed in the PHC
// string hash (constant-time comparison of the keys). An unreadable hash
// is ErrBadHash.
func VerifyPassword(hash, password string) (bool, error) {
	h, err := ParseHash(hash)
	if err != nil {
		return false, err
	}
	return verify(h, password), nil
}

func verify(h Hash, password string) bool {
	key := argon2.IDKey([]byte(password), h.Salt, h.Time, h.Memory, h.Threads, uint32(len(h.Key)))
	return subtle.ConstantTimeCompare(key, h.Key) == 1
}

// GuestHash is the PHC string of the default user's password, "guest",
// made once with DefaultParams (TestGuestHash checks it): a member that
// creates guest stores it instead of paying argon2 at its first start. Its
// salt is fixed and public, which costs nothing: the password is public
// too. SET AMQPUSER('guest') PASSWORD(...) stores a hash with a random
// salt.
const GuestHash = "$argon2id$v=19$m=19456,t=2,p=1$CYS7CASkPPjepLIyRvkkPA$302CeNhkJoZ37+48AS2syI8LWqpwx8TKljA0s6A0Ae0"

// NeedsRehash reports whether hash was not made with DefaultParams (the
// caller may store a new hash of the password at its next good login).
func NeedsRehash(hash string) bool {
	h, err := ParseHash(hash)
	return err != nil || h.Params != DefaultParams
}
