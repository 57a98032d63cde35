package lockfree

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/qmgr/qmgr/crashpoint"
	"github.com/qmgr/qmgr/internal/testproc"
)

// poolBody is a message that needs data elements (3 of 64 bytes), so that
// both the entry and the element pools are exercised.
var poolBody = strings.Repeat("b", 130)

var poolParams = Params{Owners: 16, Queues: 2, Entries: 1024, Elements: 2048, ElementSize: 64}

// idleConsumerChild (child role idleconsumer) gets LF_N messages from Q,
// which fills its caches with the freed entries and elements, says
// "ready" and goes idle: it makes no call into the structure until told.
// On "work" it puts and gets 200 messages through queue W (with whatever
// its caches still hold) and says "done"; at the end of its input it
// closes its owner.
func idleConsumerChild(s *Structure) error {
	o, err := s.Register()
	if err != nil {
		return err
	}
	q, err := s.LookupQueue("Q")
	if err != nil {
		return err
	}
	var m Message
	for i := 0; i < envInt("LF_N", 120); i++ {
		if err := o.Get(q, GetOptions{Wait: 10 * time.Second}, &m); err != nil {
			return fmt.Errorf("get %d: %w", i, err)
		}
	}
	fmt.Println("ready")
	in := bufio.NewReader(os.Stdin)
	for {
		line, err := in.ReadString('\n')
		if err == io.EOF {
			return o.Close()
		}
		if err != nil {
			return err
		}
		if line != "work\n" {
			return fmt.Errorf("command %q", line)
		}
		w, err := s.LookupQueue("W")
		if err != nil {
			return err
		}
		for i := 0; i < 200; i++ {
			if err := o.Put(w, &Message{Body: []byte(poolBody)}, PutOptions{Syncpoint: i%2 == 0}); err != nil {
				return fmt.Errorf("work put %d: %w", i, err)
			}
			if err := o.Commit(); err != nil {
				return err
			}
			if err := o.Get(w, GetOptions{}, &m); err != nil || string(m.Body) != poolBody {
				return fmt.Errorf("work get %d: %q %v", i, m.Body, err)
			}
		}
		fmt.Println("done")
	}
}

type idleConsumer struct {
	cmd *testproc.Proc
	in  io.WriteCloser
	out *bufio.Reader
}

func (c *idleConsumer) expect(t *testing.T, want string) {
	t.Helper()
	if line, err := c.out.ReadString('\n'); line != want+"\n" {
		t.Fatalf("consumer said %q (%v), want %q", line, err, want)
	}
}

// startIdleConsumers starts n consumers one after the other; for each the
// producer puts per messages, which the consumer gets, leaving their
// entries and elements in its caches. The queue is empty at the end.
func startIdleConsumers(t *testing.T, dir string, s *Structure, p *Owner, q QueueID, n, per int) []*idleConsumer {
	t.Helper()
	var cs []*idleConsumer
	for i := 0; i < n; i++ {
		cmd := spawn(t, dir, "idleconsumer", fmt.Sprintf("LF_N=%d", per))
		in, err := cmd.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		c := &idleConsumer{cmd: cmd, in: in, out: bufio.NewReader(out)}
		for k := 0; k < per; k++ {
			if err := p.Put(q, &Message{Body: []byte(poolBody)}, PutOptions{}); err != nil {
				t.Fatalf("consumer %d: put %d: %v", i, k, err)
			}
		}
		c.expect(t, "ready")
		cs = append(cs, c)
	}
	if d := s.Depth(q); d != 0 {
		t.Fatalf("depth %d after the consumers got everything", d)
	}
	return cs
}

// TestIdleCachesDoNotStrandThePool: eight consumers that got 120 messages
// each and went idle hold in their caches most of a structure of 1,024
// entries. A producer must still be able to fill the empty queue: the
// caches of idle owners go back to the pool when it runs low. The idle
// owners then work again with what their caches still hold, and close.
func TestIdleCachesDoNotStrandThePool(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process")
	}
	dir := t.TempDir()
	s := newStructureIn(t, dir, poolParams)
	p := register(t, s)
	q := mustQueue(t, p, "Q", QueueAttrs{})
	mustQueue(t, p, "W", QueueAttrs{})
	cs := startIdleConsumers(t, dir, s, p, q, 8, 120)
	u := s.Usage()
	t.Logf("idle consumers hold %d entries and %d elements of %d and %d; the queue is empty", u.EntriesUsed, u.ElementsUsed, s.p.Entries, s.p.Elements)
	const n = 600 // 600 entries of 1,024 and 1,800 elements of 2,048
	for i := 0; i < n; i++ {
		if err := p.Put(q, &Message{Body: []byte(poolBody)}, PutOptions{Syncpoint: i%3 == 0}); err != nil {
			t.Fatalf("put %d of %d to an empty queue: %v", i, n, err)
		}
	}
	if err := p.Commit(); err != nil {
		t.Fatal(err)
	}
	if r := s.Check(CheckOptions{}); !r.OK() {
		t.Fatalf("checker: %v", r)
	}
	var m Message
	for i := 0; i < n; i++ {
		if err := p.Get(q, GetOptions{}, &m); err != nil || string(m.Body) != poolBody {
			t.Fatalf("get %d: %q %v", i, m.Body, err)
		}
	}
	// The consumers' caches were taken: they work on with what is left.
	for _, c := range cs {
		c.in.Write([]byte("work\n"))
		c.expect(t, "done")
	}
	for _, c := range cs {
		c.in.Close()
		if err := c.cmd.Wait(); err != nil {
			t.Fatalf("consumer: %v", err)
		}
	}
	p.Close()
	checkOK(t, s)
	if u := s.Usage(); u.EntriesUsed != 0 || u.ElementsUsed != 0 {
		t.Fatalf("after everyone closed: %+v", u)
	}
}

// poolProducerChild (child role poolproducer) puts LF_N messages of
// poolBody to Q.
func poolProducerChild(s *Structure) error {
	o, err := s.Register()
	if err != nil {
		return err
	}
	q, err := s.LookupQueue("Q")
	if err != nil {
		return err
	}
	for i := 0; i < envInt("LF_N", 900); i++ {
		if err := o.Put(q, &Message{Body: []byte(poolBody)}, PutOptions{}); err != nil {
			return fmt.Errorf("put %d: %w", i, err)
		}
	}
	return o.Close()
}

// TestCachesGivenAndTakenSurviveKills: an owner killed while it gives a
// batch of its cache back, a producer killed at claims that take entries
// and elements from idle owners' caches, and an idle owner killed while
// they are taken from it: after repair nothing is leaked and the checker
// is clean.
func TestCachesGivenAndTakenSurviveKills(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process")
	}
	dir := t.TempDir()
	s := newStructureIn(t, dir, poolParams)
	p := register(t, s)
	q := mustQueue(t, p, "Q", QueueAttrs{})
	mustQueue(t, p, "W", QueueAttrs{})
	repairCheck := func(what string) {
		t.Helper()
		if _, err := s.RepairDead(); err != nil {
			t.Fatalf("%s: repair: %v", what, err)
		}
		if r := s.Check(CheckOptions{Quiescent: true}); !r.OK() {
			t.Fatalf("%s: checker: %v", what, r)
		}
	}
	// A consumer's element cache overflows half way through its 120 gets
	// (3 elements a message) and it gives 128 back: killed in the middle.
	cmd := spawn(t, dir, "idleconsumer", "LF_N=120", crashpoint.EnvVar+"=lockfree.free.released:50")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	for k := 0; k < 120; k++ {
		if err := p.Put(q, &Message{Body: []byte(poolBody)}, PutOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if err := cmd.Wait(); !killedBySIGKILL(err) {
		t.Fatalf("consumer not killed giving back: %v", err)
	}
	repairCheck("a kill in a give-back")
	var m Message
	for p.Get(q, GetOptions{}, &m) == nil {
	}
	cs := startIdleConsumers(t, dir, s, p, q, 8, 120)
	p.Close() // its cache back in the pool: the producers below take from the consumers
	for k := 1; k <= 40; k += 3 {
		claim := 60 + k*25
		cmd := spawn(t, dir, "poolproducer", "LF_N=900", fmt.Sprintf("%s=lockfree.alloc.claimed:%d", crashpoint.EnvVar, claim))
		cmd.Stderr = os.Stderr
		if err := cmd.Run(); !killedBySIGKILL(err) {
			t.Fatalf("producer not killed at claim %d: %v", claim, err)
		}
		if k == 19 { // an owner it takes from dies too
			cs[0].cmd.Process.Kill()
			cs[0].cmd.Wait()
			cs = cs[1:]
		}
		repairCheck(fmt.Sprintf("a kill at claim %d", claim))
		o := register(t, s)
		for o.Get(q, GetOptions{}, &m) == nil {
		}
		o.Close()
	}
	for _, c := range cs {
		c.in.Write([]byte("work\n"))
		c.expect(t, "done")
		c.in.Close()
		if err := c.cmd.Wait(); err != nil {
			t.Fatalf("consumer: %v", err)
		}
	}
	checkOK(t, s)
	if u := s.Usage(); u.EntriesUsed != 0 || u.ElementsUsed != 0 {
		t.Fatalf("after everyone closed: %+v", u)
	}
}
