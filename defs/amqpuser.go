package defs

import (
	"database/sql"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// TypeAMQPUser is the object type of the users AMQP clients log in as
// (package amqp/access checks their passwords and permissions).
const TypeAMQPUser Type = "AMQPUSER"

// AMQP user defaults and limits.
const (
	// DefaultVHost is the only virtual host: a connection.open naming
	// another is refused.
	DefaultVHost = "/"
	// GuestUser is the default user, created with password "guest", full
	// permissions on "/" and LoopbackOnly, once, when the group's
	// definitions are first created (EnsureGuest).
	GuestUser = "guest"
	// MaxAMQPUserName is the longest user name, in bytes (AMQP's
	// shortstr).
	MaxAMQPUserName = 255
	// MaxPermPattern is the longest permission pattern, in bytes.
	MaxPermPattern = 1024
	// MaxTags is the most tags a user has; MaxTag the longest tag.
	MaxTags = 16
	MaxTag  = 64
	// MaxHash is the longest stored password hash (a PHC string of
	// package amqp/access is about 100 bytes).
	MaxHash = 512
)

// Perm is what a user may do in one virtual host: each field is a
// regular expression (Go's RE2 syntax) that the names of the queues and
// exchanges the user configures (declares, deletes), writes (publishes
// to, binds from) or reads (consumes from, binds to) must match
// somewhere, as RabbitMQ's patterns (package amqp/access, Permits). An
// empty pattern matches nothing.
type Perm struct {
	Configure string `json:"CONFIGURE"`
	Write     string `json:"WRITE"`
	Read      string `json:"READ"`
}

// FullPerm is every permission (RabbitMQ's ".*" ".*" ".*").
var FullPerm = Perm{Configure: ".*", Write: ".*", Read: ".*"}

// AMQPUser is a user AMQP clients log in as. It never holds the
// password: Hash is a PHC string that package amqp/access makes and
// reads ($argon2id$v=19$m=...,t=...,p=...$salt$key); empty, the user
// cannot log in with any password.
type AMQPUser struct {
	Name string   `json:"AMQPUSER"`
	Hash string   `json:"HASH,omitempty"`
	Tags []string `json:"TAGS,omitempty"` // as RabbitMQ's (administrator, monitoring...): shown, not acted on
	// LoopbackOnly users log in only from a loopback address (127.0.0.0/8,
	// ::1), as RabbitMQ's loopback_users (guest by default).
	LoopbackOnly bool `json:"LOOPBACK"`
	// Perms are the user's permissions by virtual host; a user without
	// an entry for a virtual host may not open it.
	Perms   map[string]Perm `json:"PERMS,omitempty"`
	Created time.Time       `json:"-"`
	Altered time.Time       `json:"-"`
}

// ValidAMQPUserName reports whether s may name a user: 1 to 255 bytes of
// UTF-8 without control characters, blanks at either end, '*' (MQSC's
// generic-name character) or quotes.
func ValidAMQPUserName(s string) bool {
	if len(s) == 0 || len(s) > MaxAMQPUserName || !utf8.ValidString(s) || strings.TrimSpace(s) != s {
		return false
	}
	for _, r := range s {
		if unicode.IsControl(r) || r == '*' || r == '\'' || r == '"' {
			return false
		}
	}
	return true
}

// ValidTag reports whether s may be a user tag: 1 to 64 of A-Z a-z 0-9 _ -.
func ValidTag(s string) bool {
	if len(s) == 0 || len(s) > MaxTag {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// ValidatePattern checks a permission pattern: at most MaxPermPattern
// bytes of Go regular expression (RE2: no back-references nor
// look-arounds, which RabbitMQ's PCRE has).
func ValidatePattern(p string) error {
	if len(p) > MaxPermPattern {
		return fmt.Errorf("%w: permission pattern of %d bytes (at most %d)", ErrBadValue, len(p), MaxPermPattern)
	}
	if _, err := regexp.Compile(p); err != nil {
		return fmt.Errorf("%w: permission pattern %q: %v", ErrBadValue, p, err)
	}
	return nil
}

// Validate checks a user definition.
func (u AMQPUser) Validate() error {
	switch {
	case !ValidAMQPUserName(u.Name):
		return fmt.Errorf("%w: AMQP user name %q (1 to 255 bytes of UTF-8, no control characters, '*' or quotes, no blanks at the ends)", ErrBadName, u.Name)
	case len(u.Hash) > MaxHash:
		return fmt.Errorf("%w: password hash of %d bytes (at most %d)", ErrBadValue, len(u.Hash), MaxHash)
	case u.Hash != "" && !strings.HasPrefix(u.Hash, "$argon2id$"):
		return fmt.Errorf("%w: password hash is not an argon2id PHC string", ErrBadValue)
	case len(u.Tags) > MaxTags:
		return fmt.Errorf("%w: %d tags (at most %d)", ErrBadValue, len(u.Tags), MaxTags)
	}
	for _, t := range u.Tags {
		if !ValidTag(t) {
			return fmt.Errorf("%w: tag %q (1 to 64 of A-Z a-z 0-9 _ -)", ErrBadValue, t)
		}
	}
	for vhost, p := range u.Perms {
		if vhost != DefaultVHost {
			return fmt.Errorf("%w: virtual host %q (only %q exists)", ErrBadValue, vhost, DefaultVHost)
		}
		for _, pat := range []string{p.Configure, p.Write, p.Read} {
			if err := ValidatePattern(pat); err != nil {
				return err
			}
		}
	}
	return nil
}

// AMQPUser loads a user.
func (t *Tx) AMQPUser(name string) (AMQPUser, error) {
	u := AMQPUser{}
	c, a, err := t.Load(TypeAMQPUser, name, &u)
	u.Created, u.Altered = c, a
	return u, err
}

// AMQPUsers loads the users whose names match pattern (see Match).
func (t *Tx) AMQPUsers(pattern string) ([]AMQPUser, error) {
	return loadAll(t, TypeAMQPUser, pattern, t.AMQPUser)
}

// guestMetaKey marks in the meta table that the default user was made:
// a group whose administrator deleted guest does not get it back.
const guestMetaKey = "amqp_guest_created"

// EnsureGuest creates the default user guest (password "guest", whose
// PHC hash hash makes; LoopbackOnly; FullPerm on "/") the first time it
// runs in a repository, and never again: made is whether it did now.
// hash runs only then (hashing is slow on purpose). An existing user
// named guest is left as it is.
func (t *Tx) EnsureGuest(hash func() (string, error)) (made bool, err error) {
	var v string
	err = t.tx.QueryRow(`SELECT value FROM meta WHERE key=?`, guestMetaKey).Scan(&v)
	switch {
	case err == nil:
		return false, nil
	case !errors.Is(err, sql.ErrNoRows):
		return false, fmt.Errorf("defs: read %s: %w", guestMetaKey, err)
	}
	if _, err := t.AMQPUser(GuestUser); errors.Is(err, ErrNotFound) {
		h, err := hash()
		if err != nil {
			return false, fmt.Errorf("defs: hash the default user's password: %w", err)
		}
		u := AMQPUser{Name: GuestUser, Hash: h, Tags: []string{"administrator"}, LoopbackOnly: true,
			Perms: map[string]Perm{DefaultVHost: FullPerm}}
		if err := u.Validate(); err != nil {
			return false, err
		}
		if _, err := t.Save(TypeAMQPUser, u.Name, u, Create); err != nil {
			return false, err
		}
		made = true
	} else if err != nil {
		return false, err
	}
	if _, err := t.tx.Exec(`INSERT INTO meta(key, value) VALUES (?, ?)`, guestMetaKey, time.Now().UTC().Format(time.RFC3339)); err != nil {
		return false, fmt.Errorf("defs: write %s: %w", guestMetaKey, err)
	}
	return made, nil
}
