// Package reuseport opens the TCP listeners of qmgr's inbound ports: a
// member's own port, which one process holds, and a group's generic port,
// which every member's listener holds at once with SO_REUSEPORT so that
// the kernel spreads new connections over the live ones, and a client
// whose member died reconnects to the same address and lands on a
// survivor.
//
// The channel initiator (package channel: the channels' local and generic
// portals) and the AMQP listener (package amqp/listen) both listen
// through Listen. Every listener sets SO_REUSEADDR, so a port whose last
// connections are in TIME_WAIT (a restarted member or child) can be
// listened on again at once.
//
// SO_REUSEPORT lets only processes of the same effective user share a
// port (Linux refuses a listener of another user), so a generic port
// cannot be taken over by a stranger's process.
package reuseport
