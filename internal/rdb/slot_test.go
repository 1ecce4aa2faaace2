package rdb

import (
	"strings"
	"testing"
)

func TestSlot(t *testing.T) {
	for _, tc := range []struct {
		key  string
		want uint16
	}{
		{"123456789", 0x31C3 % SlotCount}, // the CRC16/XMODEM check value
		{"foo", 12182},
		{"{foo}:bar", 12182},
		{"x{foo}y{bar}", 12182},
		{"{}foo", Slot("{}foo")}, // empty tag: the whole key
	} {
		if got := Slot(tc.key); got != tc.want {
			t.Errorf("Slot(%q) = %d, want %d", tc.key, got, tc.want)
		}
	}
	if Slot("{}foo") == Slot("foo") {
		t.Error("an empty tag must hash the whole key")
	}
}

func TestPartitionedKeys(t *testing.T) {
	one := NewPartitionedKeys("hyvve", false, 1, 0)
	if one.Partitions() != 1 || one.WritePartitions() != 1 || one.SharedPartition() != 0 {
		t.Fatalf("one partition: %d/%d/%d", one.Partitions(), one.WritePartitions(), one.SharedPartition())
	}
	if got := one.Partition(0).Main(); got != "hyvve:events:main" {
		t.Errorf("partition 0 main = %q", got)
	}
	if got := one.Partition(0).DLQ(); got != one.DLQ() {
		t.Errorf("partition 0 DLQ = %q, want the shared %q", got, one.DLQ())
	}
	for _, tc := range []struct {
		cluster        bool
		n, prev        int
		parts, write   int
		shared         int
		wantPartitions []string
	}{
		{false, 4, 0, 5, 4, 4, []string{"hyvve:p0:events:main", "hyvve:p3:events:main", "hyvve:events:main"}},
		{false, 8, 4, 9, 8, 8, []string{"hyvve:p7:events:main", "hyvve:p0:events:main"}}, // single node: p0-p3 are the same names in both layouts
		{false, 4, 1, 5, 4, 4, nil}, // previous layout of 1 = the shared partition
		{false, 4, 4, 5, 4, 4, nil},
		{true, 8, 0, 9, 8, 8, []string{"{hyvve}:events:main"}},
	} {
		k := NewPartitionedKeys("hyvve", tc.cluster, tc.n, tc.prev)
		if k.Partitions() != tc.parts || k.WritePartitions() != tc.write || k.SharedPartition() != tc.shared {
			t.Errorf("%+v: %d/%d/%d", tc, k.Partitions(), k.WritePartitions(), k.SharedPartition())
		}
		names := map[string]int{}
		for p := range k.Partitions() {
			pk := k.Partition(p)
			names[pk.Main()] = p
			if got, ok := k.PartitionOf(pk.Retries("g")); !ok || got != p {
				t.Errorf("PartitionOf(%s) = %d %v", pk.Retries("g"), got, ok)
			}
			if tc.cluster {
				for _, key := range []string{pk.Retries("g"), pk.RetrySchedule("g"), pk.RetryData("g"), pk.Status("g", "x"), pk.Idempotency("t", "e"), pk.DLQ(), pk.DLQIndex(), pk.DLQCounters(), pk.Replay()} {
					if Slot(key) != Slot(pk.Main()) {
						t.Errorf("%s not in the slot of %s", key, pk.Main())
					}
				}
			}
		}
		for _, want := range tc.wantPartitions {
			if _, ok := names[want]; !ok {
				t.Errorf("%+v: no partition %s in %v", tc, want, names)
			}
		}
		if len(names) != k.Partitions() {
			t.Errorf("partition names not distinct: %v", names)
		}
	}
}

// TestPartitionsSpreadOverSlots checks that partition p's slot lies in the
// p-th of n slices of the slot space, so that equal slot ranges per
// master get equal numbers of partitions.
func TestPartitionsSpreadOverSlots(t *testing.T) {
	for _, n := range []int{2, 3, 4, 8, 16, 64, MaxPartitions} {
		k := NewPartitionedKeys("hyvve", true, n, 0)
		for p := range n {
			s := int(Slot(k.Partition(p).Main()))
			if s < p*SlotCount/n || s >= (p+1)*SlotCount/n {
				t.Errorf("n=%d: partition %d in slot %d", n, p, s)
			}
			if !strings.HasPrefix(k.Partition(p).Main(), "{hyvve:p") {
				t.Errorf("n=%d: partition %d named %s", n, p, k.Partition(p).Main())
			}
		}
	}
}
