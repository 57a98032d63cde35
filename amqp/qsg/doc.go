// Package qsg is the AMQP broker of a queue-sharing group: it implements
// amqp.Broker on the group's shared queues (package mq) and shared
// definitions (package defs), so that an AMQP client of any member reaches
// the same queues as every other member's clients and every mq
// application.
//
// # Mapping
//
//   - An AMQP queue is a shared local queue (QLOCAL) whose definition has
//     an AMQP part (defs.QueueAMQP); DISPLAY QLOCAL shows it and qmgr
//     put/get reach it. Exchanges and bindings are defs objects, seen by
//     every member.
//   - Each AMQP channel has its own mq connection (a unit of work is per
//     connection in mq). Unacknowledged deliveries are messages got under
//     the channel's unit of work or held as views; when a client, its
//     listener or its member dies, the group gives them back at their
//     original position with the backout count raised (redelivered=true).
package qsg
