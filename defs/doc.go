// Package defs is the group's shared definitions repository: local and
// remote queues, channels, coupling-facility structures and group-wide
// queue manager attributes, in SQLite (modernc.org/sqlite, no cgo) in the
// group's data directory.
//
// Every member and application opens the same database at once. It runs in
// WAL mode with a busy timeout, so readers never block and writers queue;
// every change is one transaction (Update; nothing writes outside one but
// the idempotent schema creation at open). Every connection runs with
// synchronous=FULL: a commit syncs the WAL before it returns, so a change
// a command reported made survives a power cut. (With NORMAL a power cut
// could drop a recent DEFINE, and structure recovery would then discard
// the persistent messages of a queue it no longer knows.) After a change the caller bumps the
// definitions counter in the admin structure (group.CounterDefs) so that
// processes caching definitions refresh them.
//
// # Schema (defs.db)
//
//	CREATE TABLE objects (
//	    type    TEXT NOT NULL,   -- QLOCAL, QREMOTE, CHANNEL, CFSTRUCT, QMGR, EXCHANGE, BINDING, AMQPUSER...
//	    name    TEXT NOT NULL,
//	    def     TEXT NOT NULL,   -- the object as JSON, keys are MQSC attribute names
//	    created INTEGER NOT NULL, -- Unix ns
//	    altered INTEGER NOT NULL,
//	    PRIMARY KEY (type, name))
//	CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)  -- schema_version,
//	    -- amqp_guest_created (the default AMQP user was made once: EnsureGuest),
//	    -- cfstruct_made:NAME and cfstruct_failed:NAME (Unix ns: StructState)
//
// An AMQPUSER object holds a PHC string of the user's salted argon2id
// password hash (package amqp/access), never the password.
//
// The database file and its WAL and shared-memory files are created with
// mode 0660 in a 0770 directory: owner and group only, whatever the
// umask. An existing database file or data directory that another user
// planted (not the user's or the group's, open to others, or a symbolic
// link) is refused with ErrPermission naming its owner and mode (package
// internal/ownedfs).
package defs
