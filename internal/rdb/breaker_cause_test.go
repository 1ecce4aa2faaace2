package rdb

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// A refused caller learns why the breaker opened: the last failure's
// cause (a wrong password reads differently from a Redis that is down).
func TestBreakerRefusalNamesTheLastCause(t *testing.T) {
	b := newBreaker(2, time.Hour)
	if err := b.refusal(); !errors.Is(err, errBreakerOpen) || err.Error() != errBreakerOpen.Error() {
		t.Fatalf("refusal before any failure: %v", err)
	}
	b.fail(errors.New("dial tcp: connection refused"))
	b.fail(errors.New("WRONGPASS invalid username-password pair"))
	if ok, _ := b.allow(); ok {
		t.Fatal("breaker still closed after 2 failures")
	}
	err := b.refusal()
	if !errors.Is(err, errBreakerOpen) || !strings.Contains(err.Error(), "WRONGPASS") {
		t.Fatalf("refusal %q: want errBreakerOpen naming the last cause", err)
	}
	if !unavailable(wrapUnavailable(err)) {
		t.Error("a refusal must count as unavailable")
	}
}
