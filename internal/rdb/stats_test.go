package rdb

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hyvve/eventbus/internal/redistest"
)

// statsTestDLQMember is a DLQ index member of tenant's entry id, in the
// shape the DLQ index uses: "t:<len>:<tenant>:<padded id>".
func statsTestDLQMember(tenant, id string) string {
	ms, seq, _ := strings.Cut(id, "-")
	pad := func(s string) string { return strings.Repeat("0", 20-len(s)) + s }
	return "t:" + strconv.Itoa(len(tenant)) + ":" + tenant + ":" + pad(ms) + "-" + pad(seq)
}

// TestReadStatsTenantDLQCount: a tenant's dead letters are counted by its
// range of the DLQ index, without the members of tenants whose id
// extends it or shares its length.
func TestReadStatsTenantDLQCount(t *testing.T) {
	ctx := context.Background()
	c, prefix := redistest.Shared(t)
	r := New(c, NewKeys(prefix, false), Options{})
	members := []string{
		statsTestDLQMember("acme", "1-0"), statsTestDLQMember("acme", "2-0"), statsTestDLQMember("acme", "1700000000000-5"),
		statsTestDLQMember("acme:x", "1-0"), statsTestDLQMember("acmf", "1-0"), statsTestDLQMember("acm", "1-0"),
		statsTestDLQMember("", "1-0"), "e:5:event:" + strings.Repeat("0", 41),
	}
	for _, m := range members {
		if err := c.ZAdd(ctx, r.Keys().DLQIndex(), redis.Z{Member: m}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	for tenant, want := range map[string]int64{"acme": 3, "acme:x": 1, "acm": 1, "acmf": 1, "other": 0} {
		read, err := r.ReadStats(ctx, StatsQuery{Minute: time.Now().Unix() / 60, Tenant: tenant})
		if err != nil {
			t.Fatal(err)
		}
		if read.DLQLength != want {
			t.Errorf("tenant %q: %d dead letters, want %d", tenant, read.DLQLength, want)
		}
	}
}

// TestAddStatsSumsAndSkipsExpiredBuckets: AddStats adds to the minute and
// hour hashes, platform and tenant; a minute past its keep time writes its
// hour only; ReadStats sums the last 60 minutes and 24 hours.
func TestAddStatsSumsAndSkipsExpiredBuckets(t *testing.T) {
	ctx := context.Background()
	c, prefix := redistest.Shared(t)
	r := New(c, NewKeys(prefix, false), Options{})
	now := time.Now()
	m := now.Unix() / 60
	fields := func(n int64) map[string]int64 { return map[string]int64{StatsPublished: n, StatsTypeField("a.b"): n} }
	adds := []StatsAdd{
		{Minute: m, All: fields(1), Tenants: map[string]map[string]int64{"t1": fields(1)}},
		{Minute: m - 59, All: fields(2)},  // still in the last hour
		{Minute: m - 60, All: fields(4)},  // outside it, inside the day
		{Minute: m - 120, All: fields(8)}, // past its keep time: hour only
	}
	if err := r.AddStats(ctx, now, adds); err != nil {
		t.Fatal(err)
	}
	if n := c.Exists(ctx, r.Keys().StatsMinute(m-120)).Val(); n != 0 {
		t.Errorf("minute past its keep time written")
	}
	read, err := r.ReadStats(ctx, StatsQuery{Minute: m})
	if err != nil {
		t.Fatal(err)
	}
	if read.LastHour[StatsPublished] != 3 || read.Last24h[StatsPublished] != 15 || read.LastHour[StatsTypeField("a.b")] != 3 {
		t.Errorf("last hour %v, last 24h %v; want 3 and 15", read.LastHour, read.Last24h)
	}
	tr, err := r.ReadStats(ctx, StatsQuery{Minute: m, Tenant: "t1"})
	if err != nil {
		t.Fatal(err)
	}
	if tr.LastHour[StatsPublished] != 1 || tr.Last24h[StatsPublished] != 1 {
		t.Errorf("tenant: %v / %v", tr.LastHour, tr.Last24h)
	}
}

func TestStatsKeyNames(t *testing.T) {
	k := NewKeys("p", false)
	for _, c := range []struct{ got, want string }{
		{k.StatsMinute(5), "p:events:stats:m:5"},
		{k.StatsHour(5), "p:events:stats:h:5"},
		{k.StatsTenantMinute("a:b", 5), "p:events:stats:t:3:a:b:m:5"},
		{k.StatsTenantHour("a", 5), "p:events:stats:t:1:a:h:5"},
		{StatsTypeField("a.b"), "p:t:a.b"},
		{StatsHandlerField("h"), "f:h:h"},
	} {
		if c.got != c.want {
			t.Errorf("%q, want %q", c.got, c.want)
		}
	}
}

// TestReadStatsPerBucket: ReadStats keeps each minute's and each hour's
// published count, oldest first with the current bucket last, for the
// platform and for a tenant (its own hashes only); the buckets sum to the
// totals.
func TestReadStatsPerBucket(t *testing.T) {
	ctx := context.Background()
	c, prefix := redistest.Shared(t)
	r := New(c, NewKeys(prefix, false), Options{})
	now := time.Now()
	m := now.Unix() / 60
	h := m / 60
	// Minute offsets back from m and the count published in each.
	minutes := map[int64]int64{0: 1, 1: 2, 30: 4, 59: 8, 60: 16, 65: 32}
	var adds []StatsAdd
	for back, n := range minutes {
		adds = append(adds, StatsAdd{Minute: m - back, All: map[string]int64{StatsPublished: n, StatsFailed: 100},
			Tenants: map[string]map[string]int64{"t1": {StatsPublished: 10 * n}}})
	}
	// An hour 23 hours back (its minute hashes long expired) and one 24
	// back, outside the day read.
	for _, back := range []int64{23, 24} {
		if err := c.HIncrBy(ctx, r.Keys().StatsHour(h-back), StatsPublished, 1000*back).Err(); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.AddStats(ctx, now, adds); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		tenant string
		scale  int64
	}{{"", 1}, {"t1", 10}} {
		read, err := r.ReadStats(ctx, StatsQuery{Minute: m, Tenant: tt.tenant})
		if err != nil {
			t.Fatal(err)
		}
		wantMin := make([]int64, StatsMinutesRead)
		wantHour := make([]int64, StatsHoursRead)
		for back, n := range minutes {
			if back < StatsMinutesRead {
				wantMin[StatsMinutesRead-1-back] += n * tt.scale
			}
			wantHour[StatsHoursRead-1-(h-(m-back)/60)] += n * tt.scale
		}
		if tt.tenant == "" {
			wantHour[0] += 1000 * 23
		}
		if !slices.Equal(read.PerMinute, wantMin) || !slices.Equal(read.PerHour, wantHour) {
			t.Errorf("tenant %q: per minute %v, want %v; per hour %v, want %v", tt.tenant, read.PerMinute, wantMin, read.PerHour, wantHour)
		}
		var sumMin, sumHour int64
		for _, n := range read.PerMinute {
			sumMin += n
		}
		for _, n := range read.PerHour {
			sumHour += n
		}
		if sumMin != read.LastHour[StatsPublished] || sumHour != read.Last24h[StatsPublished] {
			t.Errorf("tenant %q: buckets sum to %d / %d, totals %d / %d", tt.tenant, sumMin, sumHour, read.LastHour[StatsPublished], read.Last24h[StatsPublished])
		}
	}
}
