// Package qm is a queue manager: one member of the queue-sharing group,
// running as its own process.
//
// A member claims its slot in the group's peer table (group), recovers
// whatever dead members left behind, and serves: it stores a heartbeat,
// watches every peer and every connection registered under it with a
// pidfd (recovery.Watcher), and runs the group's periodic work when it holds
// the lease for it (the expiry scan).
//
// When one of its applications dies, the member repairs the connection's
// slot in every structure: its unit of work is backed out (or, when it had
// recorded a commit decision, committed). When a member dies, the
// survivors race to claim its peer record by compare-and-swap; the winner
// revokes each of its connections (a live application then sees "connection
// broken") and repairs its own owners; if the winner dies too, another
// survivor takes over. A peer whose heartbeat stops while its process
// lives is hung: it is killed first, so it cannot touch the CF again.
//
// An orderly stop (Stop, SIGTERM) marks the member stopping, gives its
// connections StopGrace to end, breaks the rest, and deregisters.
package qm
