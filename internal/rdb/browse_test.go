package rdb

import (
	"strings"
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

func TestPartitionNamesAndRefs(t *testing.T) {
	for _, tc := range []struct {
		cluster  bool
		n, prev  int
		wantName map[int]string
	}{
		{false, 1, 0, map[int]string{0: ""}},
		{true, 1, 0, map[int]string{0: ""}},
		{false, 8, 0, map[int]string{0: "p0", 7: "p7", 8: ""}},
		{false, 8, 4, map[int]string{3: "p3", 8: ""}}, // p0-p3 of 4 are p0-p3 of 8 on a single node
	} {
		k := NewPartitionedKeys("hy:ve", tc.cluster, tc.n, tc.prev)
		for p, want := range tc.wantName {
			if got := k.PartitionName(p); got != want {
				t.Errorf("%+v: name of %d = %q, want %q", tc, p, got, want)
			}
		}
		seen := map[string]bool{}
		for p := range k.Partitions() {
			name := k.PartitionName(p)
			if seen[name] {
				t.Errorf("%+v: name %q twice", tc, name)
			}
			seen[name] = true
			if q, ok := k.PartitionNamed(name); !ok || q != p {
				t.Errorf("%+v: PartitionNamed(%q) = %d %v", tc, name, q, ok)
			}
			ref := FormatRef(name, "12-3")
			if n, id, ok := ParseRef(ref); !ok || n != name || id != "12-3" {
				t.Errorf("ParseRef(%q) = %q %q %v", ref, n, id, ok)
			}
		}
	}
	k := NewPartitionedKeys("hy", true, 8, 0)
	for p := range 8 {
		name := k.PartitionName(p)
		if !strings.HasPrefix(name, "p") || strings.ContainsAny(name, "{}:") {
			t.Errorf("cluster name %q", name)
		}
	}
	for _, bad := range []string{"", "1", "a-1", "-1-1", "p1--1", "p:1-1-1", "1-1-1-1", "p1-1-x"} {
		if _, _, ok := ParseRef(bad); ok {
			t.Errorf("ParseRef(%q) accepted", bad)
		}
	}
	if CompareRefs("p1", "5-0", "", "5-0") <= 0 || CompareRefs("p1", "4-0", "", "5-0") >= 0 {
		t.Error("CompareRefs order")
	}
}
