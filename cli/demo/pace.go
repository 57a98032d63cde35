package demo

import "time"

// pacer spaces a stream of messages at a rate a second from its start.
type pacer struct {
	t0   time.Time
	rate int // 0: unpaced
}

func newPacer(rate int) pacer { return pacer{t0: time.Now(), rate: rate} }

// wait sleeps until message n (counted from 0) is due.
func (p pacer) wait(n int) {
	if p.rate <= 0 {
		return
	}
	if ahead := time.Duration(float64(n)/float64(p.rate)*float64(time.Second)) - time.Since(p.t0); ahead > 0 {
		time.Sleep(ahead)
	}
}
