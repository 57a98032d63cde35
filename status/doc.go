// Package status is what `qmgr status` shows and what a member's HTTP
// server serves at /api/status (package httpd): one computation behind
// both, so the two cannot disagree.
//
// Collect reads the group through an open group.Group: the peer table
// (each member's state, process, incarnation and heartbeat age; a running
// member whose process is gone shows as "failed"), each active member's
// recovery log status (its log buffer, logbuf.ReadStatus), every
// application structure (size, entries used, connections, and why it is
// not ACTIVE), every queue's depth, uncommitted messages and open handles,
// and the group's refused inbound connection counters. It changes nothing
// and may be called from any process that has the group open: the cli
// opens it read-only, a member passes its own.
//
// Report marshals to the JSON of `qmgr status --json`; WriteText writes
// the aligned text of `qmgr status`.
package status
