package main

import (
	"net"
	"os"
	"os/exec"
	"strconv"
	"testing"
)

func TestPercentileNearestRank(t *testing.T) {
	v := []float64{1, 2, 3, 4, 5}
	for _, c := range []struct {
		p    int
		want float64
	}{{50, 3}, {99, 5}, {100, 5}, {20, 1}, {21, 2}, {0, 1}} {
		if got := percentile(v, c.p); got != c.want {
			t.Errorf("p%d of %v = %v, want %v", c.p, v, got, c.want)
		}
	}
	if got := percentile([]float64{7}, 99); got != 7 {
		t.Errorf("p99 of one value = %v, want 7", got)
	}
}

func TestMedian(t *testing.T) {
	rate := func(s sample) float64 { return s.rate }
	for _, c := range []struct {
		rates []float64
		want  float64
	}{{[]float64{3, 1, 2}, 2}, {[]float64{4, 1, 3, 2}, 2.5}, {[]float64{5}, 5}, {nil, 0}} {
		var ss []sample
		for _, r := range c.rates {
			ss = append(ss, sample{rate: r})
		}
		if got := median(ss, rate); got != c.want {
			t.Errorf("median of %v = %v, want %v", c.rates, got, c.want)
		}
	}
}

// The process listening on a port is found through /proc: this test's own
// listener is this process's.
func TestPidListening(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	pid, err := pidListening(port)
	if err != nil || pid != os.Getpid() {
		t.Fatalf("pidListening(%d) = %d, %v; want this process %d", port, pid, err, os.Getpid())
	}
	ln.Close()
	if pid, err := pidListening(port); err == nil {
		t.Fatalf("pidListening(%d) after close = %d, want an error", port, pid)
	}
}

func TestMemOf(t *testing.T) {
	m, err := memOf(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if m.rss <= 0 || m.anon <= 0 || m.anon > m.rss {
		t.Fatalf("memOf(self) = %+v: want 0 < anon <= rss", m)
	}
}

func TestRabbitTargetNeedsAListener(t *testing.T) {
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rabbitTarget("amqp://guest:guest@127.0.0.1/"); err == nil {
		t.Error("a URL without a port was taken")
	}
	if _, err := rabbitTarget("amqp://guest:guest@127.0.0.1:" + strconv.Itoa(port) + "/"); err == nil {
		t.Errorf("port %d, where nothing listens, was taken", port)
	}
}

// A socket held by a parent and its child is the child's: the process
// that serves on it.
func TestPidListeningPrefersTheChild(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	f, err := ln.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	child := exec.Command("sleep", "30")
	child.ExtraFiles = []*os.File{f}
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { child.Process.Kill(); child.Wait() }()
	port := ln.Addr().(*net.TCPAddr).Port
	if pid, err := pidListening(port); err != nil || pid != child.Process.Pid {
		t.Fatalf("pidListening(%d) = %d, %v; want the child %d (this process %d holds it too)", port, pid, err, child.Process.Pid, os.Getpid())
	}
}
