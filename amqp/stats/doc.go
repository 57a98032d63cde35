// Package stats carries a member's AMQP figures from its listener, a child
// process of its own (package amqp/listen), to the member, which exports
// them on /metrics (package metrics).
//
// The listener writes its figures (Figures) once a second to a file of the
// data directory, stats/amqp-<member>.json, and the member reads them at
// scrape time (Read), taking figures older than MaxAge, or written by a
// process that is not the member's listener now, as no figures (Current).
// How the file is written and read (a 0660 file renamed into place, read
// strictly: owner, mode, size, one object of known fields) is package
// internal/childstats, shared with the channel initiator's figures
// (package channel/chanstats); this package adds what the figures are and
// refuses negative counts.
package stats
