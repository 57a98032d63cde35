// Package childstats carries a member's figures from one of its child
// processes (the AMQP listener, the channel initiator) to the member,
// which exports them on /metrics (package metrics). Package amqp/stats
// and package channel/chanstats define what each child writes; this
// package is how it is written and read.
//
// The child writes its figures once every WriteInterval (Keep) to a file
// of the data directory (stats/<child>-<member>.json), by writing a new
// file (mode 0660, package internal/ownedfs) and renaming it over the old
// one, so a reader sees a whole file or the previous one. The member
// reads it at scrape time (Format.Read): the file is outside bytes
// (another process wrote it, and it may be damaged or planted), so Read
// opens it with ownedfs.Open (no symbolic link, the group's owner or Unix
// group, no permission for others; a regular file: the open does not
// wait, so a planted FIFO is refused, not waited on), reads at most
// Format.MaxSize bytes,
// decodes exactly one JSON object of known fields, and refuses a file
// without the writer's pid and time or whose values the figures' own
// Check refuses. A reader takes figures older than MaxAge, or written by
// a process that is not the running child now, as no figures
// (Stamp.Current).
//
// Why a file and not shared memory or a socket: the figures change every
// message, but a scrape needs them once every few seconds; a file written
// once a second costs the child one small write, adds no layout to the
// CF, and survives neither process's death in a way that matters (the
// member checks the writer's pid and the file's age).
package childstats
