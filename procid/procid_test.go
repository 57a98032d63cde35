package procid

import (
	"os/exec"
	"testing"
)

func TestSelfAlive(t *testing.T) {
	id := Self()
	if !Alive(id) {
		t.Fatal("self not alive")
	}
	if Alive(ID{Pid: id.Pid, Start: id.Start + 1}) {
		t.Fatal("a different start time must not count as the same process")
	}
}

func TestDeadChild(t *testing.T) {
	cmd := exec.Command("sleep", "10")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	id, err := Of(cmd.Process.Pid)
	if err != nil || !Alive(id) {
		t.Fatalf("child: %v", err)
	}
	cmd.Process.Kill()
	// Before the wait the child is a zombie: it must already count as gone.
	for i := 0; i < 1000 && Alive(id); i++ {
		exec.Command("true").Run()
	}
	if Alive(id) {
		t.Fatal("killed child (zombie) still alive")
	}
	cmd.Wait()
	if Alive(id) {
		t.Fatal("reaped child still alive")
	}
}

func TestParseStat(t *testing.T) {
	line := []byte("123 (we ird) name)) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 777 19 20")
	st, start, err := parseStat(line)
	if err != nil || st != 'S' || start != 777 {
		t.Fatalf("%c %d %v", st, start, err)
	}
	for _, bad := range []string{"", "1 (x", "1 (x) S 1"} {
		if _, _, err := parseStat([]byte(bad)); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}
