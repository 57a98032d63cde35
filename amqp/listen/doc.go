// Package listen is a member's AMQP listener: it accepts AMQP 0-9-1
// clients on the member's own port and on the group's generic port and
// runs each connection (amqp.Serve) against the group's broker
// (amqp/qsg).
//
// # Where it runs, and why
//
// The listener runs in a child process of each member of its own: the
// qmgr binary's hidden "amqp-listener" command, started and supervised by
// the member (qm.Config.AMQPCommand, qm's child services), like the
// channel initiator but not inside it. Not in the member: network-facing
// code serving thousands of connections from clients of any quality (a
// parser bug, a leak, memory pressure, a file-descriptor limit reached)
// must not take down the process whose heartbeat, peer watching,
// recoveries and expiry lease the whole group relies on. Not in the
// channel initiator: STOP CHINIT must not stop AMQP, and a channel
// initiator restart must not drop every AMQP client (nor the reverse).
//
// What dies with what, and who recovers it:
//
//   - The listener child dies (a crash, SIGKILL): its clients' sockets
//     close, so they reconnect (to the member's port once the child is
//     back, or to the generic port, where another member's listener
//     answers at once). Its CF connections are registered under its
//     member (mq.Connect with the member as QMgr), which watches them with
//     a pidfd as it watches any application: it backs out their units of
//     work, so unacknowledged deliveries come back with redelivered=true.
//     The member restarts the child (100ms backoff doubling to 5s).
//   - The member dies: the kernel kills the child (Pdeathsig SIGKILL, set
//     when the member starts it), so no orphan holds the member's port or
//     serves clients for a dead member; the survivors recover the child's
//     connections with the member's (they carry the member's label).
//     Clients reconnect through the generic port to a survivor.
//   - The member stops in order: it stops the child with SIGTERM first
//     (Run closes the listeners and every connection and waits for them,
//     which ends their units of work), then stops itself.
//
// # Run
//
// Run listens on Config.Addr (the member's port) and Config.GenericAddr
// (shared by every member with SO_REUSEPORT, through package
// internal/reuseport, as the channels' generic port is), and accepts
// until its context ends:
//
//   - An accept error (EMFILE when the process runs out of descriptors,
//     ENFILE, ENOBUFS...) does not end the loop: it is logged and
//     retried after a backoff (5ms doubling to 1s, reset by the next
//     success).
//   - At most Config.MaxConnections connections are held, over both
//     ports; one over is refused by closing its socket at once, with a
//     log line (at most one a second, with the count refused since).
//   - Each connection gets a goroutine of its own: with TLS (Config
//     TLSCertFile, TLSKeyFile) the handshake runs there, bounded by the
//     AMQP handshake timeout (amqp.Config.HandshakeTimeout), so a client
//     that connects and sends nothing never holds the accept loop, and is
//     closed when the time is up; then amqp.Serve runs it (which bounds
//     the AMQP handshake by the same timeout).
//   - When the context ends, Run closes the listeners and every
//     connection, waits for every connection's goroutine, and returns.
package listen
