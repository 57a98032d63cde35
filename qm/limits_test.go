package qm

import (
	"errors"
	"testing"

	"github.com/qmgr/qmgr/group"
	"github.com/qmgr/qmgr/mq"
)

// TestConnectionTableFull: a connect that finds every connection slot of
// the group taken fails with MQRC 2025 (MQRC_MAX_CONNS_LIMIT_REACHED), not
// 2059 (queue manager not available: the member is running), and works
// again once a slot is free.
func TestConnectionTableFull(t *testing.T) {
	cfg := testConfig(t, "QM1")
	startMember(t, cfg)
	first := connect(t, cfg, "QM1")
	conns := []*mq.Conn{first}
	defer func() {
		for i := len(conns) - 1; i >= 0; i-- {
			conns[i].Disconnect()
		}
	}()
	var err error
	for len(conns) <= group.MaxConnections {
		var c *mq.Conn
		if c, err = first.Sibling(); err != nil {
			break
		}
		conns = append(conns, c)
	}
	if err == nil {
		t.Fatalf("%d connections made in a group of %d connection slots", len(conns), group.MaxConnections)
	}
	if r := mq.ReasonOf(err); r != mq.RCMaxConnsLimitReached {
		t.Fatalf("connect with a full connection table (%d connections): %v, want MQRC 2025", len(conns), r)
	}
	if !errors.Is(err, mq.ErrMaxConns) {
		t.Fatalf("errors.Is(%v, mq.ErrMaxConns) is false", err)
	}
	t.Logf("connection %d refused: %v", len(conns)+1, err)
	// A slot given back is used again.
	last := conns[len(conns)-1]
	conns = conns[:len(conns)-1]
	if err := last.Disconnect(); err != nil {
		t.Fatal(err)
	}
	c, err := first.Sibling()
	if err != nil {
		t.Fatalf("connect after a disconnect: %v", err)
	}
	conns = append(conns, c)
}
