// Package chanstats carries a member's channel figures from its channel
// initiator, a child process of its own (package channel, started by
// cmd qmgr chinit), to the member, which exports them on /metrics
// (package metrics, qmgr_channel_*_total).
//
// The channel initiator counts, per channel and from its own start, the
// bytes its instances sent and received, the batches and messages they
// committed, and the channels it took over from a dead instance (see
// Channel). It writes them (Figures) once a second to a file of the data
// directory, stats/chinit-<member>.json, and the member reads them at
// scrape time (Read), taking figures older than MaxAge, or written by a
// process that is not the member's channel initiator now, as no figures
// (Current). How the file is written and read (a 0660 file renamed into
// place, read strictly: owner, mode, size, one object of known fields)
// is package internal/childstats; this package adds what the figures are,
// and refuses channel names that are not valid, twice, or too many.
//
// These are one initiator's counts: a channel a group runs moves, over
// time, between the members' initiators (a takeover, a restart), so the
// group's figure for a channel is the sum over its members, unlike the
// shared channel status table's figures, which every member reads the
// same.
package chanstats
