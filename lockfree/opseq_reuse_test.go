package lockfree

import (
	"bufio"
	"os"
	"testing"
	"time"
)

// midOpChild registers slot 0, begins an operation and waits to be killed
// in it (child role midop).
func midOpChild(s *Structure) error {
	o, err := s.RegisterSlot(0)
	if err != nil {
		return err
	}
	o.SetRevocable(true)
	o.begin()
	os.Stdout.WriteString("ready\n")
	time.Sleep(time.Hour)
	return nil
}

// TestSlotReusedAfterOwnerKilledInOperation: an owner killed in the middle
// of an operation leaves its slot's operation counter odd. After repair, a
// live, idle owner registered in the same slot must still be fenceable at
// once (a fence waits only for an operation in flight).
func TestSlotReusedAfterOwnerKilledInOperation(t *testing.T) {
	dir := t.TempDir()
	s, _, err := Create(CreateOptions{Dir: dir, Name: "APPL1", Params: smallParams})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	cmd := spawn(t, dir, "midop")
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, _ := bufio.NewReader(out).ReadString('\n')
	if line != "ready\n" {
		t.Fatalf("child: %q", line)
	}
	cmd.Process.Kill()
	cmd.Wait()
	if _, err := s.RepairDead(); err != nil {
		t.Fatal(err)
	}
	o, err := s.RegisterSlot(0)
	if err != nil {
		t.Fatal(err)
	}
	o.SetRevocable(true) // a live, idle connection
	done := make(chan error, 1)
	go func() { done <- s.Fence(o.Tag()) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("fence of an idle live owner still waiting after 5s (opSeq %d)", s.load(s.ownerOff(0)+ownOpSeq))
	}
}
