// Package access is who may use the AMQP listener and what they may do:
// password hashing, login (Authenticate) and permission checks (Permits)
// against the users in the group's shared definitions (defs.AMQPUser,
// managed with SET/DELETE/DISPLAY AMQPUSER and SET AMQPPERM, package
// mqsc).
//
// # Passwords
//
// A password is stored only as a salted argon2id hash (RFC 9106, package
// golang.org/x/crypto/argon2) in the PHC string format, which carries its
// parameters so that they can change without invalidating stored hashes:
//
//	$argon2id$v=19$m=19456,t=2,p=1$<salt>$<key>
//
// salt (16 random bytes) and key (32 bytes) in unpadded standard base64.
// HashPassword uses DefaultParams: m=19 MiB, t=2, p=1, the first of the
// equivalent configurations the OWASP Password Storage Cheat Sheet
// recommends for argon2id. Of those it is the one with the least memory
// for the same strength: a broker verifies logins of many clients at
// once, and memory, not CPU, is what concurrent verifications pile up
// (Authenticate runs at most GOMAXPROCS of them at a time, so at most
// that many times 19 MiB). Hashes made with other parameters keep
// verifying with their own (NeedsRehash tells which are not the
// current ones). ParseHash refuses parameters beyond MaxParams, so that a
// damaged or planted definition cannot make a login allocate gigabytes.
// Keys are compared in constant time (crypto/subtle).
//
// # Login
//
// Authenticate loads the user from the definitions at every login (a
// deleted user or a changed password takes effect at the next login),
// and returns ErrRefused alike for an unknown user, a user without a
// password and a wrong password; for an unknown user it verifies against
// a dummy hash, so that the time taken does not tell which. A
// LoopbackOnly user (guest) whose right password comes from an address
// that is not loopback (127.0.0.0/8, ::1, ::ffff:127.0.0.0/104, or a
// Unix socket) gets ErrLoopbackOnly, checked after the password, as
// RabbitMQ does.
//
// Verifications that succeeded are cached, so that a thousand clients
// reconnecting after a member died do not each pay argon2: the cache key
// is HMAC-SHA256, under a key drawn at random when the process starts,
// of the user name, the password and the stored hash, so a changed
// password or a new hash misses it, and the cache holds nothing that
// would let someone who reads the process's memory recover a password
// without that key. It holds at most CacheSize entries (a random one is
// evicted when it is full). Concurrent logins with the same key wait for
// the first one's verification instead of each running their own.
//
// # Permissions
//
// MayOpen(u, vhost) says whether u may open vhost at all (it has
// permissions there; RabbitMQ answers NOT_ALLOWED otherwise).
// Permits(u, vhost, access, resource) says whether user u may
// configure, write or read the queue or exchange named resource in vhost,
// matching as RabbitMQ (rabbit_access_control, rabbit_auth_backend_internal):
//
//   - the user's pattern for that access in that vhost (none: refused)
//     is a regular expression searched for anywhere in the name, not
//     anchored: "app" permits "myapp.q"; anchor it with ^ and $
//     ("^app\\.") to mean a prefix or the whole name;
//   - an empty pattern matches nothing (RabbitMQ reads it as "^$", and
//     no resource name is empty);
//   - the default exchange, whose name is "", is checked as
//     "amq.default".
//
// Patterns are Go regular expressions (RE2), not PCRE as RabbitMQ's: the
// usual patterns (.*, ^prefix\., alternations) mean the same in both;
// back-references and look-arounds are refused when the pattern is set
// (defs.ValidatePattern). Each pattern is compiled once and kept.
package access
