package metrics_test

import (
	"testing"

	"github.com/qmgr/qmgr/group"
	"github.com/qmgr/qmgr/metrics"
)

// TestScrapeSurvivesNonUTF8Names: the names the collector puts in label
// values come from shared memory (the peer table, the channel status
// table, a structure's queue table), which another process writes. A
// peer record whose name is not UTF-8 must neither crash the member (the
// registry collects in goroutines of its own: a panic there ends the
// process) nor lose the scrape.
func TestScrapeSurvivesNonUTF8Names(t *testing.T) {
	m, _ := startMember(t, "QM1")
	g := m.Group()
	o, err := g.Admin().Register()
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	const slot = group.PeerSlots - 1
	ok, err := g.UpdatePeer(o, slot, func(p *group.Peer) bool {
		p.Name, p.State = "QM\xff\xfe", group.PeerStopped
		return true
	})
	if err != nil || !ok {
		t.Fatalf("write the peer record: %v %v", ok, err)
	}
	mfs := scrape(t, metrics.Handler(metrics.NewRegistry(m), nil))
	if got := value(t, mfs, "qmgr_peer_state", map[string]string{"peer": "QM1", "state": "active"}); got != 1 {
		t.Errorf("QM1 active: %v", got)
	}
	// Its invalid bytes read as one U+FFFD (strings.ToValidUTF8).
	if got := value(t, mfs, "qmgr_peer_state", map[string]string{"peer": "QM\ufffd", "state": "stopped"}); got != 1 {
		t.Errorf("the peer whose name is not UTF-8, stopped: %v", got)
	}
}
