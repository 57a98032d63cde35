package access

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/qmgr/qmgr/defs"
)

// CacheSize is the most successful verifications the login cache holds.
const CacheSize = 4096

// Authenticate logs user in with password from address remote (nil or a
// Unix socket's address counts as loopback): the user's definition, or
// ErrRefused itself (unknown user, no password, wrong password: the same
// value, so that no caller can tell them apart), ErrRefused wrapped with
// the reason when the stored hash cannot be read (ErrBadHash), ErrLoopbackOnly
// (a LoopbackOnly user with the right password from elsewhere), or an
// error reading the definitions. Compare with errors.Is; answer all of
// them with ACCESS_REFUSED.
func Authenticate(repo *defs.Repo, user, password string, remote net.Addr) (defs.AMQPUser, error) {
	var u defs.AMQPUser
	err := repo.View(func(tx *defs.Tx) error { var err error; u, err = tx.AMQPUser(user); return err })
	switch {
	case errors.Is(err, defs.ErrNotFound):
		dummyVerify(password)
		return defs.AMQPUser{}, ErrRefused
	case err != nil:
		return defs.AMQPUser{}, fmt.Errorf("access: load user: %w", err)
	case u.Hash == "":
		dummyVerify(password)
		return defs.AMQPUser{}, ErrRefused
	}
	ok, err := logins.verify(u.Name, password, u.Hash)
	if err != nil {
		// The stored hash is unreadable: refused, with the reason for
		// the member's log (the client is told only ACCESS_REFUSED).
		return defs.AMQPUser{}, fmt.Errorf("%w: user %q: %w", ErrRefused, u.Name, err)
	}
	if !ok {
		return defs.AMQPUser{}, ErrRefused
	}
	if u.LoopbackOnly && !IsLoopback(remote) {
		return defs.AMQPUser{}, ErrLoopbackOnly
	}
	return u, nil
}

// IsLoopback reports whether addr is a loopback address: 127.0.0.0/8,
// ::1, an IPv4-mapped 127.x address, a Unix socket, or nil (an in-process
// connection).
func IsLoopback(addr net.Addr) bool {
	switch a := addr.(type) {
	case nil:
		return true
	case *net.TCPAddr:
		return a != nil && a.IP.IsLoopback()
	case *net.UDPAddr:
		return a != nil && a.IP.IsLoopback()
	case *net.IPAddr:
		return a != nil && a.IP.IsLoopback()
	case *net.UnixAddr:
		return true
	}
	host, _, err := net.SplitHostPort(addr.String())
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// dummy is a hash of no one's password, verified for unknown users so
// that they take as long as known ones.
var dummy = sync.OnceValue(func() Hash {
	salt := make([]byte, DefaultParams.SaltLen)
	rand.Read(salt)
	return Hash{Params: DefaultParams, Salt: salt, Key: make([]byte, DefaultParams.KeyLen)}
})

func dummyVerify(password string) {
	logins.slots <- struct{}{}
	defer func() { <-logins.slots }()
	verify(dummy(), password)
}

// verifier runs argon2 verifications: at most cap(slots) at once, each
// (user, password, hash) once however many logins ask at the same time,
// and remembers the ones that succeeded.
type verifier struct {
	mac   []byte        // the process's random HMAC key
	slots chan struct{} // a verification holds one

	// runs counts the argon2 verifications run (not answered from the
	// cache nor by another login's): tests read it.
	runs atomic.Int64

	mu       sync.Mutex
	ok       map[[sha256.Size]byte]struct{} // successful verifications; at most CacheSize
	inflight map[[sha256.Size]byte]*flight
}

// flight is a verification under way; done closes when ok and err are
// set.
type flight struct {
	done chan struct{}
	ok   bool
	err  error
}

var logins = newVerifier()

func newVerifier() *verifier {
	mac := make([]byte, 32)
	if _, err := rand.Read(mac); err != nil {
		panic(fmt.Sprintf("access: no randomness for the login cache key: %v", err)) // crypto/rand never fails on Linux
	}
	return &verifier{mac: mac, slots: make(chan struct{}, runtime.GOMAXPROCS(0)),
		ok: map[[sha256.Size]byte]struct{}{}, inflight: map[[sha256.Size]byte]*flight{}}
}

// key is the cache key of a verification: HMAC-SHA256 of the three
// strings, each preceded by its length (so that no two triples give the
// same input).
func (v *verifier) key(user, password, hash string) [sha256.Size]byte {
	m := hmac.New(sha256.New, v.mac)
	var n [8]byte
	for _, s := range []string{user, password, hash} {
		binary.BigEndian.PutUint64(n[:], uint64(len(s)))
		m.Write(n[:])
		m.Write([]byte(s))
	}
	var k [sha256.Size]byte
	m.Sum(k[:0])
	return k
}

// verify reports whether password is the one hashed in hash, from the
// cache when it can.
func (v *verifier) verify(user, password, hash string) (bool, error) {
	k := v.key(user, password, hash)
	v.mu.Lock()
	if _, ok := v.ok[k]; ok {
		v.mu.Unlock()
		return true, nil
	}
	if f := v.inflight[k]; f != nil {
		v.mu.Unlock()
		<-f.done
		return f.ok, f.err
	}
	f := &flight{done: make(chan struct{})}
	v.inflight[k] = f
	v.mu.Unlock()

	v.slots <- struct{}{}
	v.runs.Add(1)
	f.ok, f.err = VerifyPassword(hash, password)
	<-v.slots

	v.mu.Lock()
	delete(v.inflight, k)
	if f.ok {
		v.remember(k)
	}
	v.mu.Unlock()
	close(f.done)
	return f.ok, f.err
}

// remember adds k to the cache, evicting a random entry (Go's map order)
// when it is full. Callers hold mu.
func (v *verifier) remember(k [sha256.Size]byte) {
	if len(v.ok) >= CacheSize {
		for old := range v.ok {
			delete(v.ok, old)
			break
		}
	}
	v.ok[k] = struct{}{}
}

// cached reports whether the verification of (user, password, hash) is in
// the cache (for tests).
func (v *verifier) cached(user, password, hash string) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	_, ok := v.ok[v.key(user, password, hash)]
	return ok
}
