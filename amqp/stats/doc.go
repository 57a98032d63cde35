// Package stats carries a member's AMQP figures from its listener, a child
// process of its own (package amqp/listen), to the member, which exports
// them on /metrics (package metrics).
//
// The listener writes its figures (Figures) once a second to a file of the
// data directory, stats/amqp-<member>.json, by writing a new file (mode
// 0660, package internal/ownedfs) and renaming it over the old one, so a
// reader sees a whole file or the previous one. The member reads it at
// scrape time (Read): the file is outside bytes (another process wrote it,
// and it may be damaged or planted), so Read checks its size, its owner
// and mode (ownedfs.Open), decodes strictly and refuses negative or absurd
// values, and a reader takes figures older than MaxAge, or written by a
// process that is not the member's listener now, as no figures.
//
// Why a file and not shared memory or a socket: the figures change every
// message, but a scrape needs them once every few seconds; a file written
// once a second costs the listener one small write, adds no layout to the
// CF, and survives neither process's death in a way that matters (the
// member checks the writer's pid and the file's age).
package stats
