package eventbus_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hyvve/eventbus"
	"github.com/hyvve/eventbus/internal/redistest"
)

// dlqBenchEntries is the DLQ size of BenchmarkDLQ.
const dlqBenchEntries = 1_000_000

// BenchmarkDLQ measures dead-letter reads among 1,000,000 DLQ entries of
// 10,000 tenants, on a redis-server of its own (seeded once per run,
// pipelined, through the same script the tests use). Sub-benchmarks:
//
//	ListTenant   first page of a tenant with 10 dead letters
//	ListAll      first page of every tenant's (AllTenants)
//	ShowByEvent  every dead letter of one event id
//
// Run: go test -run '^$' -bench DLQ -benchtime 200x .
func BenchmarkDLQ(b *testing.B) {
	ctx := context.Background()
	srv := redistest.Start(b)
	c := srv.Client(b)
	const prefix = "bench"
	memBefore := usedMemory(b, srv)
	start := time.Now()
	const batch = 10000
	seeds := make([]dlqSeed, 0, batch)
	for i := range dlqBenchEntries {
		tenant := fmt.Sprintf("tenant-%05d", i%10000)
		if i%(dlqBenchEntries/10) == 0 {
			tenant = "small" // 10 dead letters spread over the DLQ
		}
		dl := deadLetterOf(tenant, fmt.Sprintf("ev-%07d", i), "order.created", "billing", "connection refused by downstream service")
		dl.OriginalStreamID = fmt.Sprintf("1700000000000-%d", i)
		seeds = append(seeds, dlqSeed{dl: dl})
		if len(seeds) == batch {
			seedDLQ(b, c, prefix, seeds)
			seeds = seeds[:0]
		}
	}
	seed := time.Since(start)
	perEntry := float64(usedMemory(b, srv)-memBefore) / dlqBenchEntries
	b.Logf("seeded %d DLQ entries in %v (%.0f entries/s); Redis memory %.0f bytes per entry (stream + index)",
		dlqBenchEntries, seed.Round(time.Millisecond), dlqBenchEntries/seed.Seconds(), perEntry)

	bus := newBus(b, c, prefix, nil)
	in := bus.Inspector()
	b.Run("ListTenant", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			p, err := in.DeadLetters(ctx, eventbus.TenantScope("small"), eventbus.DLQListOptions{})
			if err != nil || len(p.Items) != 10 {
				b.Fatalf("%d items, %v", len(p.Items), err)
			}
		}
	})
	b.Run("ListAll", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			p, err := in.DeadLetters(ctx, eventbus.AllTenants(), eventbus.DLQListOptions{})
			if err != nil || len(p.Items) != eventbus.DefaultBrowseLimit {
				b.Fatalf("%d items, %v", len(p.Items), err)
			}
		}
	})
	b.Run("ShowByEvent", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			ev, err := in.DeadLettersOf(ctx, eventbus.TenantScope("tenant-01234"), "ev-0501234")
			if err != nil || len(ev.Entries) != 1 {
				b.Fatalf("%+v, %v", ev, err)
			}
		}
	})
}

// usedMemory reads used_memory from INFO memory.
func usedMemory(b *testing.B, srv *redistest.Server) int64 {
	info := srv.Client(b).Info(context.Background(), "memory").Val()
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "used_memory:"); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	b.Fatal("no used_memory in INFO")
	return 0
}
