package main

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// freePort is a loopback TCP port nobody listens on now (another process
// may take it before the caller does; the caller's listen then fails).
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// waitAccepting waits until something accepts TCP connections on addr.
func waitAccepting(addr string, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("nothing accepts on %s within %v: %w", addr, within, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// pidListening is the process that listens on TCP port on loopback or any
// address: the socket's inode from /proc/net/tcp{,6}, then the process
// holding a descriptor for it. When several do (a parent that handed the
// socket to its child and kept it), the child: a holder whose parent
// holds it too.
func pidListening(port int) (int, error) {
	inodes := listeningInodes(port)
	if len(inodes) == 0 {
		return 0, fmt.Errorf("no process listens on port %d", port)
	}
	holders := map[int]bool{}
	fds, _ := filepath.Glob("/proc/[0-9]*/fd/*")
	for _, fd := range fds {
		if l, err := os.Readlink(fd); err == nil && inodes[l] {
			pid, _ := strconv.Atoi(strings.Split(fd, "/")[2])
			holders[pid] = true
		}
	}
	pick := 0
	for pid := range holders {
		if pick == 0 || holders[parentOf(pid)] {
			pick = pid
		}
	}
	if pick == 0 {
		return 0, fmt.Errorf("the socket listening on port %d belongs to no process we can see", port)
	}
	return pick, nil
}

// listeningInodes are the inodes ("socket:[N]", as a descriptor's link
// reads) of the sockets listening on TCP port.
func listeningInodes(port int) map[string]bool {
	inodes := map[string]bool{}
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(bytes.NewReader(b))
		sc.Scan() // header
		for sc.Scan() {
			// sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
			fs := strings.Fields(sc.Text())
			if len(fs) < 10 || fs[3] != "0A" { // 0A: LISTEN
				continue
			}
			i := strings.LastIndexByte(fs[1], ':')
			p, err := strconv.ParseUint(fs[1][i+1:], 16, 16)
			if err == nil && int(p) == port {
				inodes["socket:["+fs[9]+"]"] = true
			}
		}
	}
	return inodes
}

// parentOf is process pid's parent (0 if unknown).
func parentOf(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// pid (comm) state ppid ...: comm may hold spaces and parentheses.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0
	}
	fs := bytes.Fields(b[i+1:])
	if len(fs) < 2 {
		return 0
	}
	ppid, _ := strconv.Atoi(string(fs[1]))
	return ppid
}

// memUse is a process's resident memory in KiB.
type memUse struct {
	rss  float64 // VmRSS: all of it, shared mappings (qmgr's CF structures) included
	anon float64 // RssAnon: its private memory (heap, stacks)
}

// memOf is process pid's resident memory (/proc/PID/status).
func memOf(pid int) (memUse, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return memUse{}, err
	}
	var m memUse
	var found int
	for _, l := range strings.Split(string(b), "\n") {
		name, rest, _ := strings.Cut(l, ":")
		fs := strings.Fields(rest) // "1234 kB"
		if len(fs) != 2 || fs[1] != "kB" {
			continue
		}
		v, err := strconv.ParseFloat(fs[0], 64)
		if err != nil {
			continue
		}
		switch name {
		case "VmRSS":
			m.rss = v
			found++
		case "RssAnon":
			m.anon = v
			found++
		}
	}
	if found != 2 {
		return m, fmt.Errorf("no VmRSS and RssAnon in /proc/%d/status", pid)
	}
	return m, nil
}
