package rdb

import (
	"testing"
	"time"
)

// TestBrowseIDHelpers: the time bounds of a browse and cursor validation.
func TestBrowseIDHelpers(t *testing.T) {
	at := time.UnixMilli(1700000000123).Add(456 * time.Microsecond)
	if got := FirstIDAt(at); got != "1700000000123-0" {
		t.Errorf("FirstIDAt = %s", got)
	}
	if got := LastIDAt(at); got != "1700000000123-18446744073709551615" {
		t.Errorf("LastIDAt = %s", got)
	}
	if got := LastIDAt(time.Unix(-5, 0)); got != "0-0" {
		t.Errorf("LastIDAt(before 1970) = %s", got)
	}
	for _, id := range []string{"0-0", "1700000000123-7", MaxID} {
		if !ValidID(id) {
			t.Errorf("ValidID(%q) = false", id)
		}
	}
	for _, id := range []string{"", "-", "+", "1", "1-", "-1", "a-1", "1-b", "+1-1", "1--1", "18446744073709551616-0", "(1-1"} {
		if ValidID(id) {
			t.Errorf("ValidID(%q) = true", id)
		}
	}
}
