package access

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/qmgr/qmgr/defs"
)

func TestHashVerify(t *testing.T) {
	h1, err := HashPassword("s3cret")
	if err != nil {
		t.Fatal(err)
	}
	h2, _ := HashPassword("s3cret")
	if h1 == h2 {
		t.Error("two hashes of one password are equal: the salt is not random")
	}
	if !strings.HasPrefix(h1, "$argon2id$v=19$m=19456,t=2,p=1$") || strings.Contains(h1, "s3cret") {
		t.Errorf("hash %q: want a PHC string with the parameters, without the password", h1)
	}
	for _, c := range []struct {
		pw   string
		want bool
	}{{"s3cret", true}, {"s3cret ", false}, {"S3cret", false}, {"", false}} {
		if ok, err := VerifyPassword(h1, c.pw); ok != c.want || err != nil {
			t.Errorf("VerifyPassword(%q) = %v, %v; want %v", c.pw, ok, err, c.want)
		}
	}
	if NeedsRehash(h1) {
		t.Error("a hash with the default parameters needs a rehash")
	}
	cheap := Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}
	h3, err := HashPasswordWith(cheap, "s3cret")
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := VerifyPassword(h3, "s3cret"); !ok || err != nil {
		t.Errorf("a hash with other parameters does not verify with its own: %v, %v", ok, err)
	}
	if !NeedsRehash(h3) {
		t.Error("a hash with other parameters does not need a rehash")
	}
}

// TestGuestHash: the default user's stored hash is of "guest", with the
// current parameters.
func TestGuestHash(t *testing.T) {
	if ok, err := VerifyPassword(GuestHash, "guest"); !ok || err != nil {
		t.Fatalf("GuestHash does not verify guest: %v, %v", ok, err)
	}
	if ok, _ := VerifyPassword(GuestHash, "Guest"); ok {
		t.Fatal("GuestHash verifies Guest")
	}
	if NeedsRehash(GuestHash) {
		t.Fatal("GuestHash was not made with DefaultParams: make it again")
	}
}

func TestParseHashRefuses(t *testing.T) {
	good, _ := HashPasswordWith(Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}, "pw")
	if h, err := ParseHash(good); err != nil || h.String() != good {
		t.Fatalf("ParseHash(%q) = %v, %v", good, h, err)
	}
	f := strings.Split(good, "$")
	with := func(i int, v string) string { g := append([]string(nil), f...); g[i] = v; return strings.Join(g, "$") }
	for _, s := range []string{
		"", "$", "plain", "$2a$10$abcdefghijklmnopqrstuv",
		with(1, "argon2i"), with(2, "v=16"), with(2, "v=019"),
		with(3, "m=64,t=1"), with(3, "t=1,m=64,p=1"), with(3, "m=64,t=1,p=1,x=2"),
		with(3, "m=4294967295,t=1,p=1"), // 4 TiB: refused, never allocated
		with(3, "m=64,t=0,p=1"), with(3, "m=64,t=1,p=0"), with(3, "m=64,t=1,p=256"), with(3, "m=8,t=1,p=2"),
		with(3, "m=+64,t=1,p=1"), with(3, "m=,t=1,p=1"),
		with(4, "!!!"), with(4, "c2FsdA=="), with(4, "YQ"), // bad base64, padding, too short a salt
		with(5, ""), with(5, "a2V5"), // no key, too short a key
		good + "$extra",
	} {
		if _, err := ParseHash(s); !errors.Is(err, ErrBadHash) {
			t.Errorf("ParseHash(%q) = %v, want ErrBadHash", s, err)
		}
		if ok, err := VerifyPassword(s, "pw"); ok || err == nil {
			t.Errorf("VerifyPassword(%q) = %v, %v", s, ok, err)
		}
	}
}

// newRepo is a repository with alice (password "alice-pw") and guest
// (password "guest", LoopbackOnly).
func newRepo(t *testing.T) *defs.Repo {
	t.Helper()
	r, err := defs.Open(t.TempDir(), true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	setUser(t, r, defs.AMQPUser{Name: "alice", Perms: map[string]defs.Perm{"/": defs.FullPerm}}, "alice-pw")
	err = r.Update(func(tx *defs.Tx) error {
		_, err := tx.EnsureGuest(func() (string, error) { return GuestHash, nil })
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// setUser stores u with password pw (none when empty) and returns its
// hash.
func setUser(t *testing.T, r *defs.Repo, u defs.AMQPUser, pw string) string {
	t.Helper()
	if pw != "" {
		var err error
		if u.Hash, err = HashPassword(pw); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.Update(func(tx *defs.Tx) error { _, err := tx.Save(defs.TypeAMQPUser, u.Name, u, defs.Replace); return err }); err != nil {
		t.Fatal(err)
	}
	return u.Hash
}

// freshCache gives the test a login cache of its own.
func freshCache(t *testing.T) *verifier {
	old := logins
	logins = newVerifier()
	t.Cleanup(func() { logins = old })
	return logins
}

func TestAuthenticate(t *testing.T) {
	r := newRepo(t)
	freshCache(t)
	setUser(t, r, defs.AMQPUser{Name: "nopw"}, "")
	local4 := &net.TCPAddr{IP: net.ParseIP("127.0.0.1"), Port: 40000}
	local6 := &net.TCPAddr{IP: net.ParseIP("::1"), Port: 40000}
	mapped := &net.TCPAddr{IP: net.ParseIP("::ffff:127.0.0.2"), Port: 40000}
	remote := &net.TCPAddr{IP: net.ParseIP("10.0.0.1"), Port: 40000}
	remote6 := &net.TCPAddr{IP: net.ParseIP("2001:db8::1"), Port: 40000}
	for _, c := range []struct {
		user, pw string
		from     net.Addr
		want     error
	}{
		{"alice", "alice-pw", remote, nil},
		{"alice", "alice-pw", remote6, nil},
		{"alice", "wrong", remote, ErrRefused},
		{"alice", "", local4, ErrRefused},
		{"ALICE", "alice-pw", remote, ErrRefused}, // names are case-sensitive
		{"mallory", "alice-pw", remote, ErrRefused},
		{"nopw", "", local4, ErrRefused},
		{"guest", "guest", local4, nil},
		{"guest", "guest", local6, nil},
		{"guest", "guest", mapped, nil},
		{"guest", "guest", &net.UnixAddr{Name: "/tmp/s", Net: "unix"}, nil},
		{"guest", "guest", remote, ErrLoopbackOnly},
		{"guest", "guest", remote6, ErrLoopbackOnly},
		{"guest", "wrong", remote, ErrRefused},
	} {
		u, err := Authenticate(r, c.user, c.pw, c.from)
		if err != c.want { // the sentinels themselves, not wrapped: the caller compares
			t.Errorf("Authenticate(%s, %q, %v) = %v, want %v", c.user, c.pw, c.from, err, c.want)
			continue
		}
		if err == nil && u.Name != c.user {
			t.Errorf("Authenticate(%s) gave user %q", c.user, u.Name)
		}
		if err != nil && u.Name != "" {
			t.Errorf("a refused login gave user %+v", u)
		}
	}
}

// TestAuthenticateCache: concurrent logins of one user run argon2 once,
// later ones none; a changed password misses the cache and the old one
// is refused.
func TestAuthenticateCache(t *testing.T) {
	r := newRepo(t)
	v := freshCache(t)
	login := func(pw string) error { _, err := Authenticate(r, "alice", pw, nil); return err }

	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for i := 0; i < 100; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); errs <- login("alice-pw") }()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("login: %v", err)
		}
	}
	if n := v.runs.Load(); n != 1 {
		t.Errorf("100 concurrent logins ran argon2 %d times, want 1", n)
	}
	if err := login("alice-pw"); err != nil || v.runs.Load() != 1 {
		t.Errorf("a cached login: %v, argon2 runs %d (want 1)", err, v.runs.Load())
	}

	newHash := setUser(t, r, defs.AMQPUser{Name: "alice", Perms: map[string]defs.Perm{"/": defs.FullPerm}}, "new-pw")
	if err := login("alice-pw"); err != ErrRefused {
		t.Errorf("the old password after a change: %v, want ErrRefused", err)
	}
	if err := login("new-pw"); err != nil {
		t.Errorf("the new password: %v", err)
	}
	if !v.cached("alice", "new-pw", newHash) {
		t.Error("the new password's verification is not cached")
	}
	before := v.runs.Load()
	// The same password set again gets a new salt: the cache misses.
	setUser(t, r, defs.AMQPUser{Name: "alice", Perms: map[string]defs.Perm{"/": defs.FullPerm}}, "new-pw")
	if err := login("new-pw"); err != nil || v.runs.Load() != before+1 {
		t.Errorf("login after a new hash: %v, argon2 runs %d (want %d)", err, v.runs.Load(), before+1)
	}
	// A wrong password is never cached: each try pays.
	before = v.runs.Load()
	login("guess")
	login("guess")
	if v.runs.Load() != before+2 {
		t.Errorf("two wrong tries ran argon2 %d times, want 2", v.runs.Load()-before)
	}
}

// TestAuthenticateBadHash: a stored hash that cannot be read refuses the
// login, saying why (for the log), still as ErrRefused.
func TestAuthenticateBadHash(t *testing.T) {
	r := newRepo(t)
	freshCache(t)
	setUser(t, r, defs.AMQPUser{Name: "huge", Hash: "$argon2id$v=19$m=4194304,t=1,p=1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}, "")
	_, err := Authenticate(r, "huge", "pw", nil)
	if !errors.Is(err, ErrRefused) || !errors.Is(err, ErrBadHash) || !strings.Contains(err.Error(), "huge") {
		t.Fatalf("a 4 GiB hash: %v, want ErrRefused wrapping ErrBadHash and naming the user", err)
	}
}

func TestCacheBounded(t *testing.T) {
	v := newVerifier()
	v.mu.Lock()
	for i := 0; i < CacheSize+100; i++ {
		v.remember(v.key("u", fmt.Sprint(i), "h"))
	}
	n := len(v.ok)
	v.mu.Unlock()
	if n != CacheSize {
		t.Errorf("cache holds %d entries, want at most %d", n, CacheSize)
	}
	if !v.cached("u", fmt.Sprint(CacheSize+99), "h") {
		t.Error("the newest entry was evicted")
	}
}

func TestCacheKeyUnambiguous(t *testing.T) {
	v := newVerifier()
	if v.key("ab", "c", "h") == v.key("a", "bc", "h") {
		t.Error("(ab, c) and (a, bc) have one cache key")
	}
	if newVerifier().key("a", "b", "h") == v.key("a", "b", "h") {
		t.Error("two processes' cache keys are equal: the HMAC key is not random")
	}
}

func TestPermits(t *testing.T) {
	u := defs.AMQPUser{Name: "app", Perms: map[string]defs.Perm{"/": {
		Configure: "^app\\.",
		Write:     "app|amq\\.default",
		Read:      "",
	}}}
	for _, c := range []struct {
		vhost, access, resource string
		want                    bool
	}{
		{"/", Configure, "app.q1", true},
		{"/", Configure, "myapp.q1", false}, // anchored by the pattern's ^
		{"/", Write, "myapp.q1", true},      // not anchored: found anywhere, as RabbitMQ
		{"/", Write, "", true},              // the default exchange is amq.default
		{"/", Write, "other", false},
		{"/", Read, "app.q1", false}, // an empty pattern matches nothing
		{"/", Read, "", false},
		{"other", Configure, "app.q1", false}, // no permissions in that vhost
		{"/", "delete", "app.q1", false},
	} {
		if got := Permits(u, c.vhost, c.access, c.resource); got != c.want {
			t.Errorf("Permits(%s, %s, %q) = %v, want %v", c.vhost, c.access, c.resource, got, c.want)
		}
	}
	full := defs.AMQPUser{Perms: map[string]defs.Perm{"/": defs.FullPerm}}
	for _, a := range []string{Configure, Write, Read} {
		if !Permits(full, "/", a, "amq.gen-xyz") || !Permits(full, "/", a, "") {
			t.Errorf("full permissions refuse %s", a)
		}
	}
	if !MayOpen(u, "/") || MayOpen(u, "other") || MayOpen(defs.AMQPUser{Name: "new"}, "/") {
		t.Error("MayOpen: want / only for a user with permissions there")
	}
	bad := defs.AMQPUser{Perms: map[string]defs.Perm{"/": {Configure: "(", Write: "(", Read: "("}}}
	if Permits(bad, "/", Read, "(") {
		t.Error("a pattern that does not compile permits")
	}
}
