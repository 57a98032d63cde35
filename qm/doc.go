// Package qm is a queue manager: one member of the queue-sharing group,
// running as its own process.
//
// A member claims its slot in the group's peer table (group), recovers
// whatever dead members left behind, and serves: it stores a heartbeat,
// watches every peer and every connection registered under it with a
// pidfd (procid.Watcher), and runs the group's periodic work when it holds
// the lease for it (the expiry scan).
//
// # Starting
//
// Start claims the member's peer slot, opens its recovery log, and makes
// every defined application structure ready before anything else
// (readyStructure): a structure whose file is missing (an empty CF
// directory: a reboot, or the directory removed) is created out of
// service, recording the creator as its recoverer (pid and start time,
// lockfree.Structure.Service), and filled from the newest backup and every
// member's log before it is put in service. Whoever creates or recovers a
// structure holds its recovery lock (an flock in the structure's backup
// directory) from before the file is created until it is in service, so
// members started together, in any number and order, create and recover
// each structure once: the others find the lock held and wait, for at most
// Config.StructureWait, and then attach the structure in service. A
// structure out of service whose lock is free is nobody's to finish (its
// recoverer died, or its recovery failed): the member recovers it again.
// A running member does the same within a second for any structure in the
// CF directory left recovering by a dead recoverer (checkStructures), and
// while it waits for another member's recovery its commands go on
// (DISPLAY CFSTATUS shows RECOVERING and the recoverer).
// Only then does the member recover dead members, create missing queues,
// define the system queues and become active.
//
// Every directory and file a member creates (the data directory, its log,
// backups and their lock files, the CF directory and structures) is 0770
// or 0660 whatever the umask, and one it finds that another user planted
// (not the user's or its group's, open to others, or a symbolic link)
// stops the start or the operation with an error naming the path, the
// owner and the mode (package internal/ownedfs). A structure file renamed
// away, replaced, given to another user or opened to others while mapped
// is a failed structure to checkStructures.
//
// # Goroutines
//
//   - The heartbeat goroutine starts as soon as the slot is claimed and
//     stores a tick every HeartbeatInterval; nothing else runs on it, so a
//     busy member never looks hung.
//   - The run loop (run.go) never blocks: it polls the watcher, judges
//     heartbeats, scans connections, and hands every recovery and the
//     expiry scan to goroutines of their own. A recovery may wait for a
//     live application to finish the operation it is in (see below), as
//     long as that takes; meanwhile the member keeps watching everyone else.
//   - Recoveries are deduplicated per member by a busy set keyed by what is
//     recovered (a member, a connection slot, an orphan owner).
//   - Commands (admin.go) and the expiry scan hold cmdMu; the member's own
//     owners (admin and application structures) are reached through withOwn
//     under ownMu.
//
// # Heartbeats
//
// A member judges another's heartbeat by its own monotonic clock: the time
// it last saw the heartbeat change. If its own heartbeat tick is late by more
// than half the timeout (the member was stopped, or the host suspended), it
// forgets what it saw and starts again, so a whole group stopped and resumed
// takes nobody for hung. A peer whose heartbeat stops while its process lives
// is hung: it is killed first, so it cannot touch the CF again.
//
// # Recovery
//
// When one of its applications dies, the member repairs the connection's
// slot in every structure: its unit of work is backed out (or, when it had
// recorded a commit decision, committed). When a member dies, the survivors
// race to claim its peer record by compare-and-swap; the winner recovers
// each of the member's connections concurrently (a live application then
// sees "connection broken"); if the winner dies too, another survivor takes
// over. Connections are labelled with their member's slot and incarnation
// (group.ConnLabel), so a connection left from an earlier incarnation is a
// straggler that watchConnections recovers on its own.
//
// A connection is recovered in this order (recoverConn):
//
//  1. Its admin slot is fenced (lockfree.Structure.Fence). The fence waits
//     for the operation in flight to end; from then on the connection can
//     neither record a commit decision nor register in another structure
//     (mq.Conn checks its admin slot after registering anywhere).
//  2. The decision is read from the admin slot: commit if the connection
//     had recorded one, otherwise each structure's own record decides.
//     A connection that had marked its commit record logged without
//     deciding (mq.Conn.Commit: the durable commit record is the
//     decision, and it died or was revoked before it knew the record
//     durable) is backed out, and its unit of work is first recorded as
//     aborted in the repository, so that a rebuild from the logs skips
//     the record.
//  3. Its slot in every application structure is revoked (alive) or
//     repaired (dead) with that outcome.
//  4. The admin slot is repaired last, so that a recoverer that dies half
//     way leaves the decision for the one that takes over.
//
// A unit of work is therefore never half committed: either every structure
// sees the commit decision or none does.
//
// Orphans, owners in an application structure whose admin slot is free or
// held by another process (an application killed between registering and
// checking), are found by a sweep every few ticks and at start.
//
// # Child processes
//
// A member runs two optional children of the same binary, each a child
// service (child.go): the channel initiator (Config.ChinitCommand;
// chinit.go) and the AMQP listener (Config.AMQPCommand, configured by
// Config.AMQP; amqp.go). Each is started once the member is active,
// restarted with a backoff when it dies (100ms doubling to 5s), killed by
// the kernel when the member dies (Pdeathsig), and independent of the
// other: STOP CHINIT stops the channel initiator alone. Their connections
// are registered under the member, so the member recovers them when a
// child dies, and the survivors with the member's when the member dies.
// DISPLAY QMGR shows their states (Member.Children).
//
// # Operability
//
// Ready says whether the member serves (active, every defined structure
// attached and in service; a member's /readyz), and PeerRecoveries lists
// the recoveries of dead members it performed since it started (the last
// 64, each with its duration from the claim of the peer record to the
// end). Both serve package httpd, which reads the group only through
// Observe: it runs a reader while the member holds its group and
// definitions, and refuses once a stop has released them, so no request
// reads an unmapped structure.
//
// # Stopping
//
// An orderly stop (Stop, SIGTERM) marks the member stopping, stops its
// child processes (SIGTERM, together), refuses new commands, closes its listener and the admin connections it accepted, gives
// its connections StopGrace to end, breaks the rest, waits for the
// recoveries in flight, closes its log and its owners in application
// structures while it still says "stopping" (its heartbeat running, so
// peers leave it alone however long its log takes to sync), and only then
// says "stopped" and closes its admin owner. If a recovery is still waiting for
// an application when StopGrace runs out, the member stops anyway: a repair
// whose repairer is gone is taken over by a survivor (or the next member to
// start).
//
// # Logs
//
// Every event an operator acts on is one line of the member's slog logger
// with an "event" key and its figures (README, "Logs"): member_starting
// (with the version, Config.Version, which the member also stores in its
// peer record for DISPLAY GROUP), member_active, peer_killed,
// peer_recovered and connection_recovered (messages committed and backed
// out, from the repairs' reports; took_over_from_pid when the recoverer
// before died), application_killed, structure_failed,
// structure_left_failed, structure_recovered and structure_recovery_failed
// (createLocked: one line per rebuild), backup_taken and backup_failed
// (backupStructure), connection_refused (the command socket).
package qm
