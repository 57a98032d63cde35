// Package amqpprobe tells whether an AMQP 0-9-1 server answers on a
// connection: the listener tests (package amqp/listen, the cli's process
// tests) probe a member's ports with it.
package amqpprobe
