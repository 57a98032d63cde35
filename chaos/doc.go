// Package chaos is a fault-injection harness in the spirit of Jepsen: real
// processes run a workload against queue-sharing groups while a nemesis
// injects faults on a seeded schedule; every client records every
// operation it makes, with its invocation and its outcome, in a history of
// its own; after the faults are healed and everything is drained, a
// checker proves from the histories alone that the group kept its
// promises, or reports the anomalies with the history lines that show
// them.
//
//	go test -run TestChaos -v ./chaos          # 20 s of faults (CI)
//	TORTURE=30m scripts/chaos.sh               # a long run
//	CHAOS_SEED=42 CHAOS_DIR=/tmp/runs scripts/chaos.sh   # repeat a run's choices, keep its files
//
// # Processes
//
// Group A ("CHA") has three members, group B ("CHB") two; every member is
// a child process (the test binary re-executed as qmgr, so each member
// runs its channel initiator as a child of its own) supervised as systemd
// would: restarted whenever it exits. Group A's application structures
// are APPL1 and APPL2 (32 and 24 MiB), group B's APPL1. A sender channel
// A.TO.B moves messages from A's triggered transmission queue XQ to a
// receiver on B's generic port (every member of B listens on it), through
// a TCP proxy in the harness. Clients are child processes too (the test
// binary with "chaos-client" and a JSON ClientConfig), in bindings mode
// (package mq), each restarted as a new incarnation with a history of its
// own when it dies:
//
//	p1, p2   producers to CHAOS.Q (A, APPL1)
//	c1, c2   consumers of CHAOS.Q, mostly under syncpoint (c1) or mostly outside (c2)
//	s1, s2   producers racing for CHAOS.SMALL (A, APPL2, MAXDEPTH 4)
//	sc       a slow consumer of CHAOS.SMALL
//	r1       a producer to RQ (A: a remote queue for TARGET on B, through XQ and the channel)
//	rc       a consumer of TARGET (B)
//
// Producers put persistent and non-persistent messages, outside syncpoint
// or under it several to a unit of work, which they commit or (one time in
// seven) back out. Consumers get under syncpoint several to a unit of work
// (commit or backout) or outside syncpoint. Any error other than "queue
// full" or "no message" makes the client disconnect (backing out its unit
// of work) and connect again through the next member.
//
// # Histories
//
// A history is a file of JSON lines (Op), one write(2) per record: what
// was written survives SIGKILL of the process (it is in the kernel's page
// cache; CHAOS_FSYNC=1 also fsyncs each, which only a host crash would
// need). A client writes the invocation before it calls the API and the
// completion after the call returns, both stamped with CLOCK_MONOTONIC,
// which every process of the host shares. A completion is:
//
//   - ok: the call returned without error (a put under syncpoint is then
//     in its unit of work, not yet visible);
//   - fail: the call returned an error that guarantees it had no effect:
//     no message (2033), queue full (2053), structure full (2192), CF
//     structure failed (2373) and the like for puts and gets; for a commit
//     only "backed out" (2003), as with MQCMIT;
//   - info: any other error (connection broken, a log that failed, a
//     commit that says it is in doubt): the effect is unknown;
//   - none: the process died in the call (no completion record).
//
// A message's body is "CHAOS1|producer|seq|crc32|padding" (EncodeBody):
// the checker knows every message by its key "producer:seq" (the producer
// is an incarnation, "p1.3", so keys are unique), and a body changed in
// any byte fails its checksum. A put records the key, the persistence and
// the message id the API returned; a get records what it got: key,
// message id, persistence, priority and backout count. Units of work are
// numbered per process; puts and gets under syncpoint and the commit or
// backout carry the number.
//
// # Nemesis
//
// Every MeanInterval (400 ms) on average, chosen with the run's seed:
//
//	kill-member      SIGKILL a member; its supervisor starts it again 0-500 ms later
//	start-together   SIGKILL two or more members of a group; start them at the same instant
//	stop-member      SIGSTOP a member for 0.1-1 s, or past the heartbeat timeout (a peer must fence it)
//	kill-chinit      SIGKILL a member's channel initiator (its member restarts it)
//	stop-chinit      SIGSTOP a channel initiator for 0.1-2 s
//	kill-app         SIGKILL a client (a new incarnation starts at once)
//	stop-app         SIGSTOP a client for 0.1-3 s
//	cf-remove        remove an application structure's file
//	cf-truncate      truncate an application structure's file to a half to a ninth
//	cf-lost          SIGKILL every member of a group, remove its CF directory, start them together
//	logbuf-truncate  truncate a member's log buffer file
//	tcp-cut          reset every connection through the channel's proxy
//	partner-down     the proxy resets every connection, and every new one, for 0.3-3 s
//	chstatus-fail    restart a member of A with QMGR_CRASHPOINT=channel.status.unavailable:n:fail:k
//	                 (its channel initiator's status table updates fail k times from the n-th)
//	log-fsync        restart a member with QMGR_CRASHPOINT=rlog.sync:n:fail:k (its recovery
//	                 log's syncs fail with EIO k times from the n-th)
//	log-disk-full    restart a member with QMGR_CRASHPOINT=rlog.reserve:n:fail:k (its recovery
//	                 log cannot reserve segment space, ENOSPC, k times from the n-th)
//
// Every fault is recorded in the fault log (faults.jsonl: Event) with the
// time it began (taken before the action) and, for one that lasts, the
// time it was healed; a structure's loss ends when the structure is back
// in service. The harness also records what it observes on its own: a
// member or client that exited without being killed, a member fenced by a
// peer while the nemesis had it stopped.
//
// The seed fixes the nemesis's choices (which fault, which target, how
// long, when) and the clients' (which operations); the interleaving with
// the processes' own timing is not repeatable, as with any such harness.
//
// # End of a run
//
// After the faults: every stopped process gets SIGCONT, the proxy lets
// connections through, every member must be active and every structure in
// service again (60 s); the producers stop (SIGTERM: between operations);
// the channel must empty XQ (30 s without progress is "stuck", and XQ is
// then browsed, not drained); the consumers stop; every dead client's
// connection must be recovered; a drainer client gets every message left
// on every queue outside syncpoint (recorded like any client); and `qmgr
// check` must be clean in both groups.
//
// # Checker
//
// Check reads the histories and the fault log and reports each anomaly
// with the message keys, the history lines and the faults around it. The
// state of a message: acknowledged when its put outside syncpoint
// returned OK, or its put under syncpoint returned OK and its unit of
// work's commit returned OK; never when its put failed, or its unit of
// work was backed out (a backout call, a commit that returned 2003, or no
// commit at all: the process died, or disconnected, before committing);
// otherwise in doubt. A delivery is a get that returned the message; it
// consumed the message when the get was outside syncpoint or its unit of
// work's commit returned OK, and may have when the commit is in doubt.
//
//   - lost: an acknowledged persistent message nobody consumed (or may
//     have), not left on a transmission queue. lost-np: the same for a
//     non-persistent message, unless a structure on its path (A's APPL1
//     for CHAOS.Q and XQ, APPL2 for CHAOS.SMALL, B's APPL1 for TARGET) was
//     lost after its put began, or was lost before and not yet back in
//     service when its put began. A get outside syncpoint whose process
//     died in the call may have taken a message nobody saw: a queue with
//     no more missing messages than such gets counts them "unresolved"
//     instead.
//   - duplicate: a message consumed twice.
//   - uncommitted-read: a delivery of a message whose state is never, or
//     one that ended before its unit of work's commit was invoked.
//   - phantom: a message nobody put, or one got before its put began.
//   - corrupt: a body that fails its checksum; a message id, persistence
//     or queue not what its put said.
//   - order: MQ delivers a queue's messages by priority, then in arrival
//     order, and a producer's messages arrive in its order (one
//     connection, one call after the other; a unit of work's messages in
//     put order, all visible at its commit). So for messages a before b of
//     one producer, on one queue, at one priority: if a was acknowledged
//     and visible (its put or commit returned) before a get of b began,
//     and no get of a had begun before that get of b ended, the get of b
//     skipped a: an anomaly. Gets under syncpoint hold a message, and a
//     backout puts it back in its place with its backout count + 1, so a
//     held message is passed over legitimately: a recorded get of a
//     before b's get ended excuses it, and so does a backout count on a's
//     first recorded get (a get nobody recorded held it: a consumer killed
//     in the call). Through the channel, a's arrival at TARGET is unknown;
//     the rule is then: a committed before b was put, and no get of a
//     began before b's get ended.
//   - maxdepth: a message is certainly on its queue from the end of its
//     put (a put under syncpoint counts in the depth while uncommitted:
//     until the last call of its unit of work that returned OK, since a
//     connection is revoked only between calls and the next call then
//     fails) until a get of it begins; after a backout by the getter's own
//     call, again from that call's end to the next get; a non-persistent
//     one until a loss of its structure; one whose first recorded get has
//     a backout count too many, or that was never delivered, not at all.
//     More messages certainly on a queue at one instant than its MAXDEPTH
//     is an anomaly (the depth the broker samples, a sum of per-owner
//     cells read one after the other, may overstate: it is not used).
//
// The harness adds: structure-check (`qmgr check` failed), member-crash
// (a member exited without being killed, or could not be started; one
// anomaly per distinct reason), member-fenced (a peer SIGKILLed a member
// as hung though the nemesis had not stopped it: its heartbeat stood
// still for the heartbeat timeout, 3 s), client-crash, and stuck (not
// healed, a channel or a queue not drained, a client that would not
// stop).
package chaos
