package qsg_test

import (
	"testing"

	"github.com/qmgr/qmgr/amqp"
	"github.com/qmgr/qmgr/lockfree"
)

// TestQueueDeleteAfterAnotherChannelsPublish: channel 1 publishes to a
// queue and, in the same burst, channel 2 of the same connection deletes
// it. The publish, gathered in the connection's shared unit of work, must
// be committed before the delete (which then removes it with the queue),
// not after: a delete that finds the queue holding an uncommitted put
// leaves it in its structure, and the commit then puts the message in a
// queue that is no longer defined, out of every client's reach, holding
// its structure's space until the name is declared again (which empties
// it) or the member restarts; and delete-ok counted a message that was
// then not deleted.
func TestQueueDeleteAfterAnotherChannelsPublish(t *testing.T) {
	e := newEnv(t)
	declare(t, e.channel(), "unit.del", nil)
	s, err := lockfree.Attach(e.g.Cfg.CFDir, "APPL1")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	r := dialRawAMQP(t, e.ln.Addr().String())
	r.send(2, &amqp.ChannelOpen{})
	r.expect("channel.open-ok")
	r.send(1, &amqp.ConfirmSelect{})
	r.expect("confirm.select-ok")
	burst := appendPublishOn(t, nil, 1, "", "unit.del", []byte("m"))
	if burst, err = amqp.AppendMethodFrame(burst, 2, &amqp.QueueDelete{Queue: "unit.del"}); err != nil {
		t.Fatal(err)
	}
	r.write(burst)
	deleted, acked := false, false
	for !deleted || !acked {
		switch m := r.recvOn().(type) {
		case onChannel[*amqp.BasicAck]:
			acked = true
		case onChannel[*amqp.BasicNack]:
			t.Fatalf("publish %d nacked", m.m.DeliveryTag)
		case *amqp.QueueDeleteOk:
			deleted = true
		case *amqp.ChannelClose:
			t.Fatalf("channel closed: %d %s", m.ReplyCode, m.ReplyText)
		}
	}
	if id, err := s.LookupQueue("unit.del"); err == nil {
		info, _ := s.QueueInfo(id)
		t.Fatalf("queue unit.del, deleted after channel 1's publish, is still in structure APPL1: depth %d, uncommitted %d", info.Depth, info.Uncom)
	}
}
