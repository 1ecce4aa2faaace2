package rdb

import "testing"

// One partition, today's exact names: partition 0 is the main stream and
// its keys; there is no other partition.
func TestKeysHaveOnePartitionWithTodaysNames(t *testing.T) {
	for _, tc := range []struct {
		cluster bool
		base    string
	}{{false, "p"}, {true, "{p}"}} {
		k := NewKeys("p", tc.cluster)
		if n := k.Partitions(); n != 1 {
			t.Fatalf("Partitions() = %d, want 1", n)
		}
		pk := k.Partition(0)
		for _, c := range []struct{ got, want string }{
			{k.Main(), tc.base + ":events:main"},
			{k.MainPartition(0), tc.base + ":events:main"},
			{pk.Main(), tc.base + ":events:main"},
			{pk.Retries("g"), tc.base + ":events:retries:g"},
			{pk.RetrySchedule("g"), tc.base + ":events:retry-schedule:g"},
			{pk.RetryData("g"), tc.base + ":events:retry-data:g"},
			{pk.Status("g", ScopedID("t1", "e1")), tc.base + ":events:status:g:2:t1:e1"},
			{pk.Status("g", ReplayStatusID("j1", ScopedID("t1", "e1"))), tc.base + ":events:status:g:replay:j1:2:t1:e1"},
			{pk.Idempotency("t1", "e1"), tc.base + ":events:idem:2:t1:e1"},
			{k.DLQ(), tc.base + ":events:dlq"},
			{k.Audit(), tc.base + ":events:audit"},
			{k.Replay(), tc.base + ":events:replay"},
			{k.Consumers("g"), tc.base + ":events:consumers:g"},
		} {
			if c.got != c.want {
				t.Errorf("cluster=%v: key %q, want %q", tc.cluster, c.got, c.want)
			}
		}
		if pk.Index() != 0 {
			t.Errorf("Partition(0).Index() = %d", pk.Index())
		}
	}
	defer func() {
		if recover() == nil {
			t.Error("Partition(1) of 1 did not panic")
		}
	}()
	NewKeys("p", false).Partition(1)
}

func TestSchemaNames(t *testing.T) {
	if got := RetryMember("h", "1-0", "e1"); got != "h|1-0|e1" {
		t.Errorf("RetryMember = %q", got)
	}
	if got := StatusHandlerField("h"); got != "h:h" {
		t.Errorf("StatusHandlerField = %q", got)
	}
}
