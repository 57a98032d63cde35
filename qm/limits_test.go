package qm

import (
	"errors"
	"fmt"
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

// TestMoreLoggingConnectionsThanOldRings: every connection a member can
// have can hold persistent work at once. The log buffer once had 128
// rings against 1,024 connection slots: the 129th connection with a
// persistent unit of work open failed with MQRC 2102.
func TestMoreLoggingConnectionsThanOldRings(t *testing.T) {
	const n = 200 // more than the old 128 rings
	cfg := testConfig(t, "QM1")
	m := startMember(t, cfg)
	mustExec(t, m, "DEFINE QLOCAL(P) MAXDEPTH(1000)")
	first := connect(t, cfg, "QM1")
	conns := []*mq.Conn{first}
	defer func() {
		for i := len(conns) - 1; i >= 0; i-- {
			conns[i].Disconnect()
		}
	}()
	for len(conns) < n {
		c, err := first.Sibling()
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	// Every connection opens a persistent unit of work (each holds its
	// ring from its first persistent put to its commit), then all commit.
	for i, c := range conns {
		h, err := c.Open("P", mq.OpenOptions{Output: true})
		if err != nil {
			t.Fatal(err)
		}
		msg := &mq.Message{Body: []byte(fmt.Sprint(i)), Persistence: mq.Persistent}
		if err := h.Put(msg, mq.PutOptions{Syncpoint: true}); err != nil {
			t.Fatalf("persistent put under syncpoint by connection %d of %d: %v", i+1, n, err)
		}
	}
	for i, c := range conns {
		if err := c.Commit(); err != nil {
			t.Fatalf("commit of connection %d: %v", i+1, err)
		}
	}
	h, err := first.Open("P", mq.OpenOptions{Input: true})
	if err != nil {
		t.Fatal(err)
	}
	if got := len(drainBodies(t, h)); got != n {
		t.Fatalf("%d messages committed, %d on the queue", n, got)
	}
}
