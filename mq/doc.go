// Package mq is the application API in bindings mode: an application
// process maps the group's CF structures itself and puts and gets through
// them directly, registered as a connection under one member of the group.
//
//	c, err := mq.Connect(mq.ConnectOptions{Group: "QSG1", QMgr: "QM1"})
//	q, err := c.Open("IN", mq.OpenOptions{Input: true, Output: true})
//	err = q.Put(&mq.Message{Body: []byte("hello")}, mq.PutOptions{Syncpoint: true})
//	err = c.Commit()
//	m, err := q.Get(mq.GetOptions{Syncpoint: true, Wait: time.Second})
//
// Errors are *Error values carrying an MQ reason code (ReasonOf); test them
// with errors.Is against the sentinels (ErrNoMessage, ErrQueueFull, ...).
//
// A connection is not safe for concurrent use. Its unit of work spans every
// queue it touches, in every structure; if the application dies its member
// backs the unit of work out, and if the member dies its peers do, after
// which every call on the connection fails with RCConnectionBroken. If a
// structure fails, the unit of work's puts and gets in it are lost, and
// the unit of work can only be backed out (whether or not the connection
// has used the recovered structure since): Commit backs out the rest and
// answers RCBackedOut (a persistent unit of work gets a backout record,
// never a commit record). A structure that fails while a commit of
// non-persistent work runs loses its share while the rest commits, and
// the commit answers RCCFStructFailed.
//
// Views (GetView, GetViewsInto) read the body in place in the mapping and
// carry the whole header. One got outside syncpoint ends with Release
// (removed) or Requeue (given back at its place, backout count + 1); views
// still held when the connection disconnects or its process dies are
// given back the same way. A persistent message's view is removed only
// once its get's log record is durable: Release waits once per message;
// Conn.ReleaseViews removes a batch of views, from any queues, with one
// durable wait (it adopts the persistent ones into the unit of work and
// commits it, see release.go), and View.Adopt moves one view into the unit
// of work, for its Commit to remove with the rest of its work.
//
// A waiting get given an Interrupter (GetOptions.Interrupt) is ended from
// another goroutine by Interrupt, failing with ErrInterrupted
// (RCCallInterrupted).
//
// Messages that reach a queue's backout threshold (BOTHRESH) are moved to
// its backout queue (BOQNAME), or to the group's dead-letter queue (DEADQ)
// behind a DLH (see dlh.go for the byte layout), instead of being returned.
package mq
