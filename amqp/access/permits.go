package access

import (
	"regexp"
	"sync"
	"sync/atomic"

	"github.com/qmgr/qmgr/defs"
)

// Kinds of access Permits checks.
const (
	Configure = "configure" // declare, delete; the destination of a bind
	Write     = "write"     // publish to; the source of a bind
	Read      = "read"      // consume from, get, purge
)

// DefaultExchangeResource is the name the default exchange ("") is
// checked as, as RabbitMQ.
const DefaultExchangeResource = "amq.default"

// MayOpen reports whether user u may open virtual host vhost
// (connection.open): whether it has permissions there, as RabbitMQ (a
// refusal is NOT_ALLOWED, 530).
func MayOpen(u defs.AMQPUser, vhost string) bool {
	_, ok := u.Perms[vhost]
	return ok
}

// Permits reports whether user u may have access (Configure, Write or
// Read) to the queue or exchange named resource in vhost. See the package
// doc for how the patterns match; an unknown access, a vhost the user has
// no permissions in, and a pattern that does not compile (a definition
// written by something else than SET AMQPPERM) are refusals.
func Permits(u defs.AMQPUser, vhost, access, resource string) bool {
	p, ok := u.Perms[vhost]
	if !ok {
		return false
	}
	var pattern string
	switch access {
	case Configure:
		pattern = p.Configure
	case Write:
		pattern = p.Write
	case Read:
		pattern = p.Read
	default:
		return false
	}
	if pattern == "" {
		pattern = "^$" // RabbitMQ's reading of an empty pattern
	}
	if resource == "" {
		resource = DefaultExchangeResource
	}
	re := compiled(pattern)
	return re != nil && re.MatchString(resource)
}

// patterns are the compiled permission patterns (*regexp.Regexp), by
// source; a pattern that does not compile is kept as a nil one. Reads
// take no lock (Permits runs on every publish and consume). At most
// about maxPatterns: past that the cache starts again (patterns are few,
// one a user, vhost and access).
var (
	patterns     sync.Map
	patternCount atomic.Int64
)

const maxPatterns = 4096

// compiled is pattern compiled, or nil when it does not compile.
func compiled(pattern string) *regexp.Regexp {
	if re, ok := patterns.Load(pattern); ok {
		return re.(*regexp.Regexp)
	}
	var re *regexp.Regexp
	if len(pattern) <= defs.MaxPermPattern {
		re, _ = regexp.Compile(pattern)
	}
	if patternCount.Add(1) > maxPatterns {
		patterns.Clear()
		patternCount.Store(1)
	}
	patterns.Store(pattern, re)
	return re
}
