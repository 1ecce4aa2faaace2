package httpapi

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/hyvve/eventbus"
)

// TestPublicViewPartitions: the anonymous health view lists the
// partitions without stream names, node addresses or error text, and
// names a partition that is missing or could not be read in a generic
// warning; with one partition it has no partitions field.
func TestPublicViewPartitions(t *testing.T) {
	lag := int64(4)
	h := eventbus.Health{Healthy: false, Redis: eventbus.RedisHealth{Connected: true}}
	h.Streams.Main.Exists, h.Streams.DLQ.Exists, h.Streams.Replay.Exists = false, true, true
	for _, st := range []*eventbus.StreamHealth{&h.Streams.Main, &h.Streams.DLQ, &h.Streams.Replay} {
		st.Groups = []eventbus.GroupHealth{{Name: "g"}}
	}
	one, _ := json.Marshal(publicView(h, "g"))
	if strings.Contains(string(one), "partitions") {
		t.Errorf("one partition: %s", one)
	}
	h.Partitions = []eventbus.PartitionHealth{
		{Index: 0, Role: eventbus.PartitionWrite, Stream: "secret:p0:events:main", Node: "10.0.0.7:7000", Exists: true, Length: 9, Lag: &lag, Pending: 2, DLQ: 1},
		{Index: 1, Role: eventbus.PartitionWrite, Stream: "secret:p1:events:main", Node: "10.0.0.8:7000", Error: "dial tcp 10.0.0.8:7000: connection refused"},
		{Index: 2, Role: eventbus.PartitionShared, Stream: "secret:events:main", Node: "10.0.0.9:7000"},
	}
	p := publicView(h, "g")
	raw, _ := json.Marshal(p)
	for _, leak := range []string{"secret", "10.0.0", "refused"} {
		if strings.Contains(string(raw), leak) {
			t.Errorf("public view leaks %q: %s", leak, raw)
		}
	}
	if len(p.Partitions) != 3 || p.Partitions[0].Length != 9 || *p.Partitions[0].Lag != 4 || p.Partitions[0].DLQ != 1 ||
		p.Partitions[1].Error != "could not be read" || p.Partitions[2].Role != eventbus.PartitionShared {
		t.Errorf("partitions %+v", p.Partitions)
	}
	got := strings.Join(p.Warnings, "; ")
	for _, w := range []string{"partition 1: could not be read", "partition 2: main stream does not exist"} {
		if !strings.Contains(got, w) {
			t.Errorf("warnings %q lack %q", got, w)
		}
	}
	if strings.Contains(got, "partition 0") {
		t.Errorf("warnings %q name the healthy partition 0", got)
	}
}
