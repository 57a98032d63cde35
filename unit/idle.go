package unit

import "fmt"

// idle is a primary's step when its batch found no input. Besides the
// heartbeat (publish), it catches up with what a secondary sender
// committed since the primary's last batch: it drops those outputs from
// its resend queue (dropSent; else they stay there, published and counted
// against RESENDMB, until the next input) and trims the log up to them
// (else the last batches stay logged, and would be dead-lettered as
// "unit state lost" if every replica then died, their outputs sent).
// The trim is its own unit of work, made only when the bound has moved
// since the last one, so an idle primary commits nothing most polls.
//
// Not while a resting snapshot this primary restored (or inherited) is
// still on SNAP: its first batch removes it (rest.go), and nothing is
// logged in this generation before that batch anyway.
func (r *replica) idle() error {
	r.dropSent()
	if r.resting == nil {
		t, _, _ := r.trimBound()
		if b := min(t, r.lsnOut); b > r.idleTrimmed {
			if err := r.trimSent(r.lsnOut); err != nil {
				return err
			}
			if err := r.c.Commit(); err != nil {
				return fmt.Errorf("commit of the idle trim to LSN %d: %w", b, err)
			}
			r.idleTrimmed = b
		}
	}
	return r.publish()
}
