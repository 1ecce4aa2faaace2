package backoff

import (
	"testing"
	"time"
)

func TestBackoffBounds(t *testing.T) {
	b := Backoff{Min: 100 * time.Millisecond, Max: 2 * time.Second}
	wantCaps := []time.Duration{100, 200, 400, 800, 1600, 2000, 2000, 2000}
	for i, c := range wantCaps {
		capD := c * time.Millisecond
		d := b.Next()
		if d < capD/2 || d > capD {
			t.Fatalf("step %d: delay %v outside [%v, %v]", i, d, capD/2, capD)
		}
	}
	b.Reset()
	if d := b.Next(); d > 100*time.Millisecond {
		t.Fatalf("after reset: %v, want <= 100ms", d)
	}
}

func TestBackoffSleepStops(t *testing.T) {
	b := Backoff{Min: time.Hour, Max: time.Hour}
	done := make(chan struct{})
	close(done)
	if b.Sleep(done) {
		t.Fatal("Sleep reported a full delay after done was closed")
	}
}
