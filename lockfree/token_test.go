package lockfree

import "testing"

// TestToken: a message's token is the same when it is browsed, got, and
// got again after a backout; two messages put with the same id and bytes
// have different tokens.
func TestToken(t *testing.T) {
	s := newStructure(t, smallParams)
	o := register(t, s)
	q := mustQueue(t, o, "Q", QueueAttrs{})
	var id [idBytes]byte
	id[0] = 1
	for range 2 {
		if err := o.Put(q, &Message{MsgID: id, Body: []byte("same")}, PutOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	var b1, b2 Message
	cur := o.NewBrowseCursor(q)
	if err := o.BrowseNext(cur, GetOptions{}, &b1); err != nil {
		t.Fatal(err)
	}
	if err := o.BrowseNext(cur, GetOptions{}, &b2); err != nil {
		t.Fatal(err)
	}
	if b1.Token == 0 || b1.Token == b2.Token {
		t.Fatalf("tokens %x and %x of two messages", b1.Token, b2.Token)
	}
	var g Message
	if err := o.Get(q, GetOptions{Syncpoint: true}, &g); err != nil {
		t.Fatal(err)
	}
	if g.Token != b1.Token {
		t.Fatalf("got with token %x, browsed with %x", g.Token, b1.Token)
	}
	if err := o.Backout(); err != nil {
		t.Fatal(err)
	}
	var again Message
	if err := o.Get(q, GetOptions{Syncpoint: true}, &again); err != nil {
		t.Fatal(err)
	}
	if again.Token != b1.Token || again.BackoutCount != 1 {
		t.Fatalf("after a backout: token %x (backouts %d), want %x", again.Token, again.BackoutCount, b1.Token)
	}
	if err := o.Commit(); err != nil {
		t.Fatal(err)
	}
	checkOK(t, s)
}
