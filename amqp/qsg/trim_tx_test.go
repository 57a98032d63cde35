package qsg_test

import (
	"context"
	"testing"

	rmq "github.com/rabbitmq/amqp091-go"
)

// TestTxRefusedPublishKeepsEarlierTrims: in a transaction, two publishes
// to a drop-head queue (x-max-length 1) and then one to a full
// reject-publish queue, which refuses it; at tx.commit the drop-head queue
// must be brought back to its length. The refused publish must forget only
// its own drop-head queues, not those of the transaction's earlier
// publishes, which are committed.
func TestTxRefusedPublishKeepsEarlierTrims(t *testing.T) {
	e := newEnv(t)
	ch := e.channel()
	declare(t, ch, "trim.dh", rmq.Table{"x-max-length": int32(1)})
	declare(t, ch, "trim.full", rmq.Table{"x-max-length": int32(0), "x-overflow": "reject-publish"})
	if err := ch.Tx(); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, q := range []string{"trim.dh", "trim.dh", "trim.full"} {
		if err := ch.PublishWithContext(ctx, "", q, false, false, rmq.Publishing{Body: []byte(q)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := ch.TxCommit(); err != nil {
		t.Fatal(err)
	}
	if got := depth(t, e, "trim.dh"); got != 1 {
		t.Fatalf("trim.dh (x-max-length 1, drop-head): depth %d after the commit, want 1", got)
	}
}
