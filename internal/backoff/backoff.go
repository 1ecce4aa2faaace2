// Package backoff computes capped exponential delays with full jitter.
package backoff

import (
	"math/rand/v2"
	"time"
)

// Backoff yields delays that double from Min up to Max, each drawn
// uniformly from [d/2, d] so that many processes do not retry in step.
// The zero value is not usable; set Min and Max.
type Backoff struct {
	Min, Max time.Duration
	attempt  int
}

// Next returns the delay before the next try and advances.
func (b *Backoff) Next() time.Duration {
	d := b.Min << b.attempt
	if d <= 0 || d > b.Max {
		d = b.Max
	} else {
		b.attempt++
	}
	half := d / 2
	return half + rand.N(d-half+1)
}

// Reset starts again from Min.
func (b *Backoff) Reset() { b.attempt = 0 }

// Sleep waits for the next delay or until done is closed; it reports
// whether the full delay passed.
func (b *Backoff) Sleep(done <-chan struct{}) bool {
	t := time.NewTimer(b.Next())
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-done:
		return false
	}
}
