package defs

import (
	"errors"
	"strings"
	"testing"
)

func TestAMQPUserValidate(t *testing.T) {
	ok := AMQPUser{Name: "alice@example.com", Hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$a2V5", Tags: []string{"administrator"},
		Perms: map[string]Perm{"/": {Configure: "^app\\.", Write: ".*", Read: ""}}}
	if err := ok.Validate(); err != nil {
		t.Fatalf("valid user: %v", err)
	}
	for _, c := range []struct {
		what string
		f    func(u *AMQPUser)
		want error
		msg  string
	}{
		{"empty name", func(u *AMQPUser) { u.Name = "" }, ErrBadName, "user name"},
		{"name with *", func(u *AMQPUser) { u.Name = "al*" }, ErrBadName, "user name"},
		{"name with a control character", func(u *AMQPUser) { u.Name = "al\nice" }, ErrBadName, "user name"},
		{"name with a blank at the end", func(u *AMQPUser) { u.Name = "alice " }, ErrBadName, "user name"},
		{"name not UTF-8", func(u *AMQPUser) { u.Name = "al\xffice" }, ErrBadName, "user name"},
		{"name too long", func(u *AMQPUser) { u.Name = strings.Repeat("a", 256) }, ErrBadName, "user name"},
		{"not argon2id", func(u *AMQPUser) { u.Hash = "$2a$10$abc" }, ErrBadValue, "argon2id"},
		{"hash too long", func(u *AMQPUser) { u.Hash = "$argon2id$" + strings.Repeat("a", 600) }, ErrBadValue, "hash of"},
		{"bad tag", func(u *AMQPUser) { u.Tags = []string{"a b"} }, ErrBadValue, "tag"},
		{"other vhost", func(u *AMQPUser) { u.Perms = map[string]Perm{"prod": FullPerm} }, ErrBadValue, "virtual host"},
		{"bad pattern", func(u *AMQPUser) { u.Perms = map[string]Perm{"/": {Configure: "(", Write: ".*", Read: ".*"}} }, ErrBadValue, "pattern"},
		{"PCRE-only pattern", func(u *AMQPUser) { u.Perms = map[string]Perm{"/": {Read: "(?!amq\\.)"}} }, ErrBadValue, "pattern"},
		{"pattern too long", func(u *AMQPUser) { u.Perms = map[string]Perm{"/": {Write: strings.Repeat("a", 1025)}} }, ErrBadValue, "1024"},
	} {
		u := ok
		u.Perms = map[string]Perm{"/": FullPerm}
		c.f(&u)
		err := u.Validate()
		if !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("%s: %v, want %v saying %q", c.what, err, c.want, c.msg)
		}
	}
	noHash := AMQPUser{Name: "nopw"}
	if err := noHash.Validate(); err != nil {
		t.Errorf("user without a password: %v", err)
	}
}

func TestAMQPUserSaveLoad(t *testing.T) {
	r, err := Open(t.TempDir(), true)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	u := AMQPUser{Name: "bob", Hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$a2V5", Perms: map[string]Perm{"/": FullPerm}}
	if err := r.Update(func(tx *Tx) error { _, err := tx.Save(TypeAMQPUser, u.Name, u, Create); return err }); err != nil {
		t.Fatal(err)
	}
	err = r.View(func(tx *Tx) error {
		got, err := tx.AMQPUser("bob")
		if err != nil {
			return err
		}
		if got.Hash != u.Hash || got.Perms["/"] != FullPerm || got.Created.IsZero() {
			t.Errorf("loaded %+v, saved %+v", got, u)
		}
		all, err := tx.AMQPUsers("b*")
		if err != nil || len(all) != 1 || all[0].Name != "bob" {
			t.Errorf("AMQPUsers(b*) = %v, %v", all, err)
		}
		if _, err := tx.AMQPUser("BOB"); !errors.Is(err, ErrNotFound) {
			t.Errorf("user names are case-sensitive: AMQPUser(BOB) = %v", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestEnsureGuest: guest is made once; deleted by the administrator, it
// does not come back.
func TestEnsureGuest(t *testing.T) {
	r, err := Open(t.TempDir(), true)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	hashes := 0
	hash := func() (string, error) { hashes++; return "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$a2V5", nil }
	ensure := func() bool {
		t.Helper()
		var made bool
		if err := r.Update(func(tx *Tx) error { var err error; made, err = tx.EnsureGuest(hash); return err }); err != nil {
			t.Fatal(err)
		}
		return made
	}
	if !ensure() {
		t.Fatal("guest not made in a new repository")
	}
	r.View(func(tx *Tx) error {
		g, err := tx.AMQPUser(GuestUser)
		if err != nil || !g.LoopbackOnly || g.Perms[DefaultVHost] != FullPerm {
			t.Errorf("guest = %+v, %v; want LoopbackOnly with full permissions on /", g, err)
		}
		return nil
	})
	if ensure() {
		t.Error("guest made twice")
	}
	if err := r.Update(func(tx *Tx) error { return tx.Delete(TypeAMQPUser, GuestUser) }); err != nil {
		t.Fatal(err)
	}
	if ensure() {
		t.Error("guest came back after its deletion")
	}
	r.View(func(tx *Tx) error {
		if _, err := tx.AMQPUser(GuestUser); !errors.Is(err, ErrNotFound) {
			t.Errorf("guest after deletion and a restart: %v", err)
		}
		return nil
	})
	if hashes != 1 {
		t.Errorf("hashed guest's password %d times, want once", hashes)
	}
}
