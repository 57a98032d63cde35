// Package metrics exports a running member's figures in the Prometheus
// text format through github.com/prometheus/client_golang (nothing here
// writes the exposition by hand).
//
// # Wiring
//
// The member's HTTP server mounts one handler:
//
//	mux.Handle("/metrics", metrics.Handler(metrics.NewRegistry(member), logger))
//
// NewRegistry holds this package's collector (labelled group and member)
// and the Go runtime's and process's standard collectors; Register adds
// the collector to a registry of the caller's instead.
//
// # Dependencies
//
// metrics imports qm (and lockfree, group, channel, defs); nothing in the
// member imports metrics or the Prometheus client. What the member counts
// itself it keeps in plain atomics and in internal/histogram histograms
// (qm.Member.Stats), which this package turns into Prometheus metrics at
// scrape time. Source is the small interface the collector reads, which
// *qm.Member satisfies.
//
// # Where the figures come from, and what they cost
//
// The collector keeps no state: every scrape computes every metric from
// what exists already (a custom prometheus.Collector with const metrics),
// so nothing is added to the data path except the queue counters below.
//
//   - Queues (depth, uncommitted, open handles, MAXDEPTH): the per
//     connection count cells of the structure (lockfree.QueueInfo), summed
//     at scrape time. Oldest message age: lockfree.Structure.OldestPutTime,
//     a read-only walk from each priority's head to its first live message.
//   - Queue put and get counts and bytes live in shared memory, in the
//     structure, so they are the group's, whichever process put or got:
//     each connection counts in its own (connection, queue) cell, a cache
//     line it writes on that put or get anyway (its depth word), with plain
//     stores; the scrape sums the cells (lockfree.QueueCounts). Backouts
//     and expiries, rare, are atomic adds on the queue record. A queue
//     created again in a slot starts from zero. They are statistics: a
//     connection killed between making a message final and counting it
//     leaves that message uncounted, and work a recovery finishes for a
//     dead connection is not counted.
//   - Structures: lockfree.Structure.Usage (a scan of the entry and
//     element words: a few milliseconds for a large structure, once per
//     scrape), the service word, the units of work committed and backed
//     out (per connection slot words, summed: lockfree.UOWCounts), and
//     from the repository its recorded backups and recovery estimate.
//   - Peers: the peer table (state, heartbeat; the age by this member's
//     wall clock). Connections of this member: the admin structure's
//     owners labelled with its slot and incarnation, by holder (its
//     channel initiator's pid, its AMQP listener's, or an application).
//   - Channels: the shared channel status table (state, owner, messages of
//     the instance, last batch, in doubt, retries), the same from every
//     member.
//   - Channel counts (qmgr_channel_*_total): the member's channel
//     initiator is a child process; it counts per channel, from its own
//     start, the bytes its instances sent and received (MSG frame
//     payloads: each message's transmission header, properties and body),
//     the batches they committed and their messages, and the sender
//     channels it took over from an instance that died, and writes them
//     once a second to a file the collector reads at scrape time (package
//     channel/chanstats), exported only when they are the running
//     initiator's and recent. They are this member's initiator's counts:
//     a channel moves between the members' initiators (a takeover, a
//     restart), so the group's figure is the sum over members.
//   - The member itself (qm.Member.Stats, as seen by this member): peer
//     and connection recoveries it performed (with a duration histogram),
//     structure failures it found and rebuilds it did, backups it took
//     (count, duration histogram, last end), and its recovery log's
//     records, writes, syncs, bytes, failures, sync latency and records
//     per sync (histograms recorded by the log's writer goroutine, after
//     each sync).
//   - AMQP (qmgr_amqp_*): the member's AMQP listener is a child process;
//     it writes its figures (connections, channels, consumers, group
//     connections, publishes, deliveries, refused logins, blocked) once a
//     second to a file the collector reads at scrape time (package
//     amqp/stats), exported only when they are the running listener's and
//     recent.
//   - Recovery units (qmgr_unit_*): each SERVICE's role record and its
//     positions' progress records, read from the unit's structure at
//     scrape time (unit/role.Read), with DISPLAY SVSTATUS's names.
//
// Queue, structure, peer, channel status and unit figures are the group's:
// every member exports the same values (aggregate them with max, not
// sum); member, log, backup, channel count (qmgr_channel_*_total) and
// AMQP figures are the member's own (sum channel counts over members).
//
// Not exported: units of work per member (they are per structure, since
// an application's connection commits in the structure, not through the
// member).
package metrics
