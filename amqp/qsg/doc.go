// Package qsg is the AMQP broker of a queue-sharing group: it implements
// amqp.Broker on the group's shared queues (package mq) and shared
// definitions (package defs), so that an AMQP client of any member reaches
// the same queues as every other member's clients and every mq
// application. A member's AMQP listener (package amqp/listen, a child
// process of the member) runs one Broker connected through its member.
//
// # Mapping
//
//   - An AMQP queue is a shared local queue (QLOCAL) whose definition has
//     an AMQP part (defs.QueueAMQP); DISPLAY QLOCAL shows it and qmgr
//     put/get reach it. Exchanges and bindings are defs objects, seen by
//     every member; the broker routes from a cache of them that it reloads
//     when the group's definitions counter moves (routes.go).
//   - A message keeps what AMQP says of it (exchange, routing key, every
//     property) in its mq properties (message.go has the layout), so it
//     comes out unchanged through mq, qmgr get and channels.
//   - The channels of an AMQP connection that publish or get outside a
//     transaction share one mq connection, made when first needed (see
//     Publishing); a transactional channel has one of its own (a unit of
//     work is per connection in mq), and so does each consumer, used by
//     its goroutine alone (an mq connection is used by one goroutine at a
//     time). The group has group.MaxConnections in all, so a broker and
//     each client connection hold at most Config.MaxConns and
//     MaxConnsPerConnection.
//
// # Delivery and acknowledgement
//
// A consumer gets messages as views held outside syncpoint (up to its
// prefetch), writes a batch of them with one write, and keeps them until
// the client settles them: an ack removes one (a persistent one once its
// removal is logged), a nack or reject with requeue, basic.recover, the
// channel's close or the consumer's end gives it back where it was with
// its backout count raised (redelivered=true), a reject without requeue
// dead-letters it. The reader goroutine hands settlements to the
// consumer's goroutine, which wakes once per burst of them (chanHandler's
// Idle) and is interrupted in its waiting get only when it is in one
// (mq.Interrupter). When a client, its listener or its member dies, the
// group gives the views back the same way.
//
// # Publishing
//
// The channels of one AMQP connection that are not transactional share
// one mq connection (sharedUnit, unit.go): one group connection slot for
// all of them, since they all run on the connection's reader goroutine. A
// publish to one queue that needs a log write (persistent) or a confirm is
// put in its unit of work; the unit is committed when the reader has
// handled every frame it has read (amqp.Idler), before any other method
// runs, or when it holds maxBatch publishes, with one log write; every
// channel with publishes in it is told how it ended, and each sends its
// confirms as one basic.ack with multiple. A publish to several queues is
// one unit of work of its own. A transactional channel (tx.select) has an
// mq connection of its own, whose unit of work is the client's.
//
// # Flow control and lifetimes
//
// A watcher samples the use of the queues' structures (lockfree
// Structure.Fill); above Config.HighWater every connection is told
// connection.blocked and publishes are held unread until use falls under
// LowWater (flow.go). A reaper deletes exclusive queues whose connection
// can no longer exist and x-expires queues unused that long (reaper.go);
// auto-delete queues go with their last consumer.
package qsg
