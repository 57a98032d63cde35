// Package mqsc parses and runs MQSC-style admin commands against a member
// of the group (Env, which qm.Member implements; channel commands also
// need ChannelEnv; DISPLAY QMGR shows the member's child processes, the
// channel initiator and the AMQP listener, through ChildEnv):
//
//	QLOCAL (QUEUE)  DEFINE, ALTER, DELETE [PURGE], CLEAR, DISPLAY  queue.go
//	QSTATUS         DISPLAY                                        queue.go
//	QREMOTE         DEFINE, ALTER, DELETE, DISPLAY                 qremote.go
//	CFSTRUCT        DEFINE, ALTER, DISPLAY, BACKUP, RECOVER        cfstruct.go
//	CFSTATUS        DISPLAY [TYPE(SUMMARY|BACKUP)]                 cfstruct.go
//	SVSTATUS        DISPLAY (each replica: role, member, pid, LSNs) svstatus.go
//	CHANNEL         DEFINE, ALTER, DELETE, DISPLAY, START, STOP,   channel.go
//	                RESET [SEQNUM(n)], RESOLVE ACTION(COMMIT|BACKOUT)
//	CHSTATUS        DISPLAY                                        channel.go
//	CHINIT          START, STOP [SHARED(RESTART|STOP)]             channel.go
//	QMGR            ALTER, DISPLAY                                 qmgr.go
//	GROUP, CONN     DISPLAY                                        group.go
//	AMQPUSER        SET, DELETE, DISPLAY                           amqpuser.go
//	AMQPPERM        SET, DELETE, DISPLAY                           amqpuser.go
//	EXCHANGE        DEFINE, DELETE, DISPLAY                        exchange.go
//	BINDING         DISPLAY                                        exchange.go
//	REQUESTS        DISPLAY [REQUESTS(id-pattern)]                 requests.go
//	REQUEST         CANCEL REQUEST(id)                             requests.go
//
// (see package channel for what the channel commands do to a channel's
// sync records and status).
//
// # Syntax
//
// Syntax follows MQSC (parse.go): keywords and unquoted values are
// case-insensitive and folded to upper case; 'quoted' values keep their
// case (” is a quote); a line ending in + or - continues on the next; a
// line starting with * is a comment. Generic names end in *. Run stops at
// the first command that fails.
//
// AMQP's names are case-sensitive and mostly lower case: the names of
// AMQPUSER, AMQPPERM, EXCHANGE and BINDING keep their case as written,
// quoted or not, and so do the values these commands take as text
// (PASSWORD, TAGS, VHOST, the permission patterns; Attr.Raw), while
// keywords and YES/NO, EXTYPE values are case-insensitive.
//
// # AMQP users, permissions, exchanges
//
// SET AMQPUSER creates or changes a user (package amqp/access has what a
// login checks): PASSWORD is hashed (argon2id) before the transaction and
// only the hash is stored; a new user has no password unless given one,
// and no permissions. SET AMQPPERM sets a user's configure, write and
// read patterns in VHOST (only "/"), each checked as a Go regular
// expression when set. DEFINE EXCHANGE makes an exchange that AMQP
// clients then see; the built-in ones (defs.BuiltinExchanges) and any
// other name starting amq. cannot be defined nor deleted. DELETE
// EXCHANGE and DELETE QLOCAL delete the bindings that name the exchange
// (as source or destination) or the queue, in the same transaction.
// DISPLAY QLOCAL shows the AMQP attributes of queues declared through
// AMQP (set by queue.declare, never by MQSC; DEFINE ... REPLACE keeps
// them).
//
// # Attribute tables
//
// Each object type has one attribute table (table.go; the tables sit in
// the object type's file): the attributes in DISPLAY order, the identity
// first, each with how DEFINE and ALTER set it and how DISPLAY shows it.
// The table is the whole of the type's attribute handling: an attribute
// DEFINE or ALTER does not find in it (or finds without a setter) is an
// error naming it; DISPLAY takes ALL or attribute names (never values),
// shows the identity and the selected attributes in the table's order,
// and without either shows the identity alone for QLOCAL (as MQ) and
// every attribute for the other types; the JSON keys are the table's
// names. DISPLAY of a name without * that matches nothing is an
// ErrNotFound (CONN excepted: no connection is an empty answer).
// DISPLAY CHSTATUS shows an inactive channel only with ALL.
//
// Secrets: an attribute the tables mark secret (AUTHKEY of a channel,
// PASSWORD of an AMQP user) is shown as SET or NOTSET, never its value, and its value is withheld from
// logs: Redact replaces it in command text, and NamesSecret tells when a
// command's error text, which quotes what the parser refused, is not fit
// for a log either (redact.go).
//
// # Changes
//
// A command that fails changes nothing: definitions change in one SQLite
// transaction that also creates, alters or deletes the queue in the CF, and
// is rolled back when that fails. Errors wrap ErrSyntax, ErrValue,
// ErrNotFound, ErrExists, ErrInUse or ErrNotEmpty and name the offending
// token.
//
// # Output
//
// Results render as MQSC text, two attributes a line (Text), or as one
// JSON object per result with the MQSC attribute names as keys (JSON);
// render.go.
//
// # Tests
//
// The scripts in testdata/*.mqsc hold whole commands with their whole
// expected output, errors included, run against a member of their own by
// TestGolden (golden_test.go; go test ./mqsc -run TestGolden -rewrite
// regenerates them, volatile values masked).
package mqsc
