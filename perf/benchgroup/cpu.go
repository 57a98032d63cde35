package benchgroup

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// clockTick is the unit of utime and stime in /proc/PID/stat (USER_HZ,
// 100 on Linux).
const clockTick = 10 * time.Millisecond

// CPU is the processor time (user and system) used so far by the group's
// members and their children (channel initiators): read before and after
// a run, it says what the run cost, which varies far less from run to run
// on a noisy machine than the rate does. Resolution 10 ms.
func (g *Group) CPU() time.Duration {
	roots := map[int]bool{}
	for _, n := range g.Names() {
		if m := g.Member(n); !m.Exited() {
			roots[m.Process.Pid] = true
		}
	}
	return TreeCPU(roots)
}

// TreeCPU sums the processor time of the processes in roots and their
// descendants.
func TreeCPU(roots map[int]bool) time.Duration {
	type proc struct {
		ppid  int
		ticks int64
	}
	procs := map[int]proc{}
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, f := range stats {
		b, err := os.ReadFile(f)
		if err != nil {
			continue // gone
		}
		// pid (comm) state ppid ... utime(14) stime(15): comm may hold
		// spaces, so fields are counted after its closing parenthesis.
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		fs := bytes.Fields(b[i+1:])
		if len(fs) < 13 {
			continue
		}
		pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(f)))
		ppid, _ := strconv.Atoi(string(fs[1]))
		ut, _ := strconv.ParseInt(string(fs[11]), 10, 64)
		st, _ := strconv.ParseInt(string(fs[12]), 10, 64)
		procs[pid] = proc{ppid, ut + st}
	}
	in := func(pid int) bool {
		for n := 0; pid > 1 && n < 64; n++ {
			if roots[pid] {
				return true
			}
			pid = procs[pid].ppid
		}
		return false
	}
	var ticks int64
	for pid, p := range procs {
		if in(pid) {
			ticks += p.ticks
		}
	}
	return time.Duration(ticks) * clockTick
}
