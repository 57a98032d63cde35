// Package channel is the group's shared channels: the channel
// initiator every member runs as a child process, sender and receiver
// agents, the wire protocol, the shared channel status table and the shared
// sync queue.
//
// # One instance per channel
//
// A channel's state lives in its entry of the shared channel status table
// (Table, in the admin structure), changed only by compare-and-swap of the
// whole 256-byte entry (before-image to after-image). The entry is also the
// channel's lock, and so the transmission queue's: it names the admin
// connection of the instance that runs it, and the lock is held while that
// connection is registered. A dead instance's connection is recovered
// (its unit of work backed out) by its member, or by the survivors when the
// member died; from then on the lock is free and any channel initiator may
// take the channel by compare-and-swap. Exactly one wins, so there is one
// start per channel, and a START of a running channel is refused with the
// owner's name.
//
// A channel initiator maps the application structures when it starts, and
// its instances' connections are siblings of its own (mq.Conn.Sibling:
// the mappings are shared), so an instance starts in milliseconds.
//
// Every channel initiator reads the table every PollInterval (10ms): the
// entries it knows, and every slot each FullScanInterval (100ms; a slot
// costs a cache miss, and only a channel's first START or inbound
// connection makes an entry). It starts sender channels that are requested (START CHANNEL: STARTING with
// no lock), retrying and due (comms failure), running with a free lock (their
// instance died: channel initiator or member failure), or triggered (their
// transmission queue has TRIGGER and messages). The least busy initiator
// claims first: each waits 2ms per channel it runs before claiming one that
// appeared. Explicitly stopped channels (STOPPED) are never started but by
// START CHANNEL. Receiver entries whose instance is gone are set inactive
// (freed, as if deleted), so the remote sender reconnects to any member.
//
// # Batches and resynchronisation
//
// A sender gets up to BATCHSZ messages from the transmission queue in its
// unit of work as zero-copy views (their bodies stay in the mapping and go
// to the socket in one vectored write; adjacent data elements are one
// piece; a body offloaded to a shared message data set is one piece of the
// data set's mapping, its checksum checked before the get returns it, so a
// damaged body backs the batch out instead of being sent), records the batch in the shared sync queue (SyncQueue,
// outside the unit of work: batch id and the transmission queue's message
// ids), sends the messages and END_BATCH, and on CONFIRM commits the gets
// together with the removal of the record. The receiver puts the batch's
// messages (a large body straight from its frame buffer: to its member's
// data set when the target queue's structure offloads it; see
// docs/design/smds.md 11a) and replaces its own sync record (the last batch id) in one
// unit of work, commits, and confirms. It opens the queues a batch puts
// to as the batch needs them and closes them before it commits, so that
// between batches it holds no queue open: DELETE QLOCAL of one is not
// refused because a channel once put to it. An open and a close cost 0.6
// to 1.5 us on the 2-core test machine, against 50 to 70 us of both
// groups' processor time per batch even at BATCHSZ(1) (chanbench's
// channel.send.64B.cpu): alternating runs showed no change beyond their
// noise.
//
// Four batches are in flight (numLanes): a sender instance has four
// connections (lanes), each with its own unit of work and sync record,
// and sends the next batches on the other lanes while the partner commits
// the oldest (stop-and-wait leaves each side idle while the other works).
// The partner commits batches in order, so CONFIRMs come in order and the
// lanes take turns; a lane sends again only after its previous batch is
// committed, so at most four records exist and their ids are consecutive.
// Every lane's connection is in the status entry (Conn and Lanes): the
// channel's lock is held until all are recovered, so no new instance
// resolves a batch that a dead one still holds.
//
// Whenever a channel starts, on whichever member, HELLO carries the
// sender's latest in-doubt batch (records left in the sync queue) and
// HELLO_ACK the receiver's last committed batch. For each record:
// committed (its id at most the receiver's last), the sender removes the
// recorded messages (they went back to the transmission queue, in their
// places, when the old instance's units of work were backed out) and the
// record, in one unit of work; not committed, it drops the record and
// sends them again. Both sides' records are in shared queues, so nothing
// is lost, nothing arrives twice and order is kept per channel, whichever
// member fails. A sender with nothing in doubt takes the receiver's last
// batch as its own.
//
// The receiver's record is persistent when its batch carries a persistent
// message, and whenever it replaces a persistent record: a non-persistent
// one would go with the CF, and the record recovered from the logs would
// then be none at all (the removal of the one it replaced is logged), so
// the receiver would answer a batch behind those the sender saw it commit.
// The price: once a channel carried a persistent message, each later
// batch's commit at the receiver logs the record and waits for the log.
//
// # The partner lost its state: RESOLVE and RESET CHANNEL
//
// Batches are confirmed in order and a lane sends again only once its
// batch is confirmed, so the receiver's last batch is at least the oldest
// in doubt minus one, and at most the latest in doubt. Outside that range
// resynchronisation cannot succeed: the receiver lost its state (its sync
// record was non-persistent and its CF was lost, or the channel was
// deleted or reset there alone), or this side did. The sender then stops
// the channel (STOPPED, not RETRYING: no retry can settle it), sends the
// partner a CLOSE saying why, logs "channel stopped: partner lost its
// state" (or "sequence mismatch" when the partner is ahead) with the
// commands that settle it, and its status entry says so (REASON and
// INDOUBT in DISPLAY CHSTATUS). The operator decides, as with MQ:
//
//   - RESOLVE CHANNEL(name) ACTION(COMMIT|BACKOUT), on a sender that does
//     not run and has batches in doubt: COMMIT takes them as delivered
//     (their messages are removed from the transmission queue: exactly once
//     if the partner had committed them, lost if not); BACKOUT sends them
//     again (at least once: twice if the partner had committed them). The
//     sync records go in the same unit of work. Refused while the channel
//     runs, when nothing is in doubt, and on a receiver.
//   - RESET CHANNEL(name) SEQNUM(n) (default 1): on a sender that does not
//     run and has nothing in doubt (RESOLVE first), its next instance's
//     HELLO asks the receiver to take n-1 as its last batch (persistently)
//     before it answers, so both sides number the next batch n; on a
//     receiver, its own record is set at once and its partner is not told.
//   - DELETE CHANNEL(name): refused while the channel runs and, for a
//     sender, while batches are in doubt; removes the receiver's sync
//     record and the status entry, so that the channel defined again starts
//     as new, from batch 1.
//
// Each holds the channel's lock (its status entry) through the command's
// own connection while it works, so no instance starts meanwhile; if the
// member dies, the connection's recovery backs the command's work out and
// frees the lock.
//
// # Failures
//
//   - Comms failure: the instance backs out, unlocks and leaves the entry
//     RETRYING: at once after an instance that moved a batch (one that
//     fails before any does, e.g. refused by its partner, does not spin),
//     then every SHORTTMR
//     seconds SHORTRTY times, then every LONGTMR seconds LONGRTY times,
//     then STOPPED. Any member's channel initiator takes the retry.
//   - Status table unavailable (an error from the admin structure; tests
//     inject it with the crash point channel.status.unavailable): the
//     instance ends as for a comms failure; if the entry cannot be updated
//     either, its lock still frees when the instance's connection ends, and
//     any channel initiator restarts the channel.
//   - Channel initiator failure: its member restarts it; its connections,
//     which belong to the member, are recovered, so its channels' locks
//     free and some initiator restarts them.
//   - Member failure: its channel initiator dies with it (parent-death
//     signal, and its connections are revoked); the survivors recover the
//     connections and their initiators take the channels.
//   - Inbound: a remote sender that loses its member reconnects (to the
//     generic port, SO_REUSEPORT) and lands on a survivor, which waits for
//     the dead instance's connection to be recovered and resynchronises
//     from the sync queue. A live instance that still holds the channel
//     (its partner vanished without a FIN) is adopted: asked to end at
//     once, then replaced; only for a partner that authenticated (below).
//
// # Partner authentication
//
// Before the receiver touches the channel's status entry (its lock, so
// before any adoption), its sync record or a queue, the partner
// authenticates: by the channel's secret (AUTHKEY, a challenge-response
// in the HELLO exchange in which both sides prove it; see auth.go), or by
// TLS with a client certificate that chains to SSLCA and matches SSLPEER.
// The TLS configuration is the channel's own: the sender names the
// channel in the TLS server name (ServerName), and the receiver's
// GetConfigForClient takes that channel's certificate, CA and client
// certificate requirement; the HELLO must then name the same channel.
// RQMNAME binds a receiver to its partner's queue manager or group. A
// channel with neither AUTHKEY nor TLS with SSLPEER runs only with
// AUTH(OPTIONAL). A partner that fails any check gets a CLOSE saying only
// "not authorised" (ReasonNotAuthorized); the receiver logs why, with the
// peer's address, and counts it (Chinit.Refusals). The sender checks the
// receiver likewise: its proof in HELLO_ACK, its certificate against
// SSLCA and SSLPEER.
//
// An authenticated partner's messages may not go to SYSTEM.QSG.* (the
// sync queue: only the receiver writes its record), nor, unless the
// receiver has INQUEUES(ALL), to other SYSTEM.* queues or transmission
// queues: they are dead-lettered with RCNotAuthorized.
//
// # Wire protocol (version 2, little-endian)
//
// Every frame has an 8-byte header: magic "QC", protocol version (2; a
// version 1 HELLO is answered with a version 1 CLOSE saying why), frame
// type, payload length (at most the negotiated MAXMSGL + 64 KiB; 4 KiB
// before the handshake). Names in payloads are NUL padded, printable
// ASCII. The header and every fixed payload are tables directly above
// their offset constants in wire.go (TestLayoutTables checks them):
//
//	HELLO (1), sender to receiver, 200 bytes: channel, sending queue
//	  manager and group, batch size, max message length, heartbeat
//	  interval, NPMSPEED, lowest and highest version, flags (bit 0 reset),
//	  latest in-doubt batch id (0: none) -- the resynchronisation
//	  question; with the reset flag, the next batch's id (1 to MaxSeqNum)
//	  after RESET CHANNEL: the receiver takes one less as its last batch
//	  (a sender resets only with nothing in doubt) -- and the sender nonce
//	  (crypto/rand, fresh for each HELLO)
//	CHALLENGE (8), receiver to sender, answering HELLO, 80 bytes:
//	  receiving queue manager, receiver nonce
//	AUTH (9), sender to receiver, answering CHALLENGE, 40 bytes: flags
//	  (bit 0: a proof follows), the sender's proof (zero without the flag)
//	HELLO_ACK (2), answering AUTH, 104 bytes: receiving queue manager,
//	  batch size, max message length, heartbeat interval, version, flags
//	  (bit 0: a proof follows), last committed batch id (the
//	  resynchronisation answer), the receiver's proof
//	MSG (3): a transmission header, properties and body (package xmit),
//	  sent from the transmission queue's message as stored; bodies of 1 KiB
//	  and more go to the socket without a copy (vectored write)
//	END_BATCH (4), 16 bytes: batch id, message count
//	CONFIRM (5), 8 bytes: batch id
//	HEARTBEAT (6), empty: answered with a HEARTBEAT
//	CLOSE (7): reason (ReasonNormal...), text length n, n text (<= 512)
//
// MSG, END_BATCH, CONFIRM and HEARTBEAT come only after HELLO_ACK.
//
// A proof is HMAC-SHA256(AUTHKEY, "qmgr channel auth v2" 0 role |
// channel | sending queue manager | sending group | receiving queue
// manager | sender nonce | receiver nonce), names NUL padded to 48 bytes,
// role 'S' or 'R'.
//
// A malformed frame, or one the protocol does not expect, ends that
// connection with a CLOSE and a logged reason; it never touches a queue
// (the receiver's unit of work is backed out). A receiver accepts only
// channels it has a RCVR definition for, with an authenticated partner.
//
// A partner cannot hold an unbounded unit of work in the receiver: a batch
// of more MSG frames than the batch size agreed in HELLO_ACK ends the
// instance with a CLOSE (protocol error, naming BATCHSZ) and its puts are
// backed out; the heartbeat interval agreed is the larger of the two
// sides' HBINT, as with MQ, but at most Config.MaxHeartbeat (300 s by
// default, `qmgr start --channel-max-hbint`; a sender clamps the answer it
// gets too), and a partner from which no frame arrived for twice that
// plus Config.SilenceGrace (a minute by default), in a batch or between
// batches, is cut off and its batch backed out (a frame counts once it
// has arrived whole: one that takes longer than that to cross the network
// ends the channel too). A batch of no messages is refused (it would
// only move the receiver's sync record): a sender whose batch was all
// dead-lettered (not transmission messages) commits that alone and sends
// nothing.
//
// # Sync records (messages on SyncQueue, correlation id kind + name)
//
// The correlation id is a kind byte and the channel name, NUL padded to
// 24 bytes: 'R' for the receiver's record, 'S' + lane ('S' to 'V' with
// four lanes; a starting instance resolves the records of up to
// MaxLanes+1 lanes, so a version with more lanes leaves none behind) for
// a sender lane's. The receiver's record ("QSR1", last committed batch
// id) is persistent if the batch was, or the record it replaced; a
// sender's ("QSS1", batch id, count n, n message ids) names its batch in
// doubt. Both are tables directly above their offset constants in
// sync.go.
//
// # Status entry
//
// See the layout beside Status in status.go.
//
// # Listeners
//
// Both listeners (Config.Port, Config.GenericPort) bind Inbound.Bind,
// loopback unless the operator names another address (`qmgr start
// --bind`). Each holds at most Inbound.MaxConns connections at once (256
// by default): one over the cap is closed as soon as it is accepted,
// before a byte is read. A connection has Inbound.HelloTimeout (10 s by
// default) from when it is accepted to complete its TLS handshake and
// HELLO; then it is closed. Both refusals are counted in the group's
// counters (group.CounterInboundRefused and CounterInboundTimedOut:
// DISPLAY QMGR INREFUSED and INTIMEOUT) and logged, at most one line a
// second each.
//
// # TLS
//
// A channel with SSLCERT and SSLKEY runs over TLS (1.2 or later); SSLCA
// names the CA the partner's certificate must chain to (a receiver with
// SSLCA requires client certificates), SSLPEER the pattern its subject
// must match. A receiver tells TLS from plain frames by the first byte,
// and takes the configuration of the channel the TLS server name names.
//
// # Counts for the member's metrics
//
// The initiator counts per channel, from its start, the MSG payload bytes
// its instances sent and received, the batches they committed on both
// sides and their messages, and the sender channels it took over from an
// instance that died (counts.go): each instance holds its channel's
// counters and adds to them with atomic adds once per committed batch
// (nothing per message beyond a plain add to the batch's byte total).
// With Config.WriteFigures (qmgr chinit) it writes them once a second to
// stats/chinit-<member>.json in the data directory for its member's
// /metrics (package channel/chanstats).
package channel
