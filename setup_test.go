package eventbus_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hyvve/eventbus"
	"github.com/hyvve/eventbus/internal/redistest"
)

func groupsOf(t *testing.T, c redis.UniversalClient, stream string) []string {
	t.Helper()
	gs, err := c.XInfoGroups(context.Background(), stream).Result()
	if err != nil {
		t.Fatalf("XINFO GROUPS %s: %v", stream, err)
	}
	var names []string
	for _, g := range gs {
		names = append(names, g.Name)
	}
	return names
}

func TestSetUpCreatesStreamsAndGroups(t *testing.T) {
	ctx := context.Background()
	c, prefix := redistest.Shared(t)
	b := newBus(t, c, prefix, nil)
	if err := b.SetUp(ctx); err != nil {
		t.Fatalf("first SetUp: %v", err)
	}
	if err := b.SetUp(ctx); err != nil {
		t.Fatalf("second SetUp (BUSYGROUP must count as success): %v", err)
	}
	main, dlq, replay := b.Streams()
	// Today's exact names are the contract with the platform's other
	// producers and consumers: spelled out here on purpose.
	for stream, want := range map[string]string{
		prefix + ":events:main": main, prefix + ":events:dlq": dlq, prefix + ":events:replay": replay,
	} {
		if stream != want {
			t.Errorf("stream name %q, want %q", want, stream)
		}
		if typ := c.Type(ctx, stream).Val(); typ != "stream" {
			t.Errorf("%s has type %q, want stream", stream, typ)
		}
		if g := groupsOf(t, c, stream); len(g) != 1 || g[0] != eventbus.DefaultGroup {
			t.Errorf("%s groups = %v, want [%s]", stream, g, eventbus.DefaultGroup)
		}
	}
	if err := b.Ready(ctx); err != nil {
		t.Errorf("Ready after SetUp: %v", err)
	}
}

func TestSetUpFiveInstancesAtOnce(t *testing.T) {
	ctx := context.Background()
	c, prefix := redistest.Shared(t)
	var wg sync.WaitGroup
	errs := make([]error, 5)
	start := make(chan struct{})
	for i := range errs {
		b := newBus(t, c, prefix, nil)
		wg.Go(func() {
			<-start
			errs[i] = b.SetUp(ctx)
		})
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("instance %d: %v", i, err)
		}
	}
	if g := groupsOf(t, c, testKeys(prefix).Main()); len(g) != 1 {
		t.Errorf("main groups = %v, want exactly one", g)
	}
}

func TestSetUpClusterKeysAreHashTagged(t *testing.T) {
	c, prefix := redistest.Shared(t)
	b := newBus(t, c, prefix, func(cfg *eventbus.Config) { cfg.Cluster = true })
	main, dlq, replay := b.Streams()
	for _, s := range []string{main, dlq, replay} {
		if want := "{" + prefix + "}:events:"; s[:len(want)] != want {
			t.Errorf("cluster key %q does not start with %q", s, want)
		}
	}
	if err := b.SetUp(context.Background()); err != nil {
		t.Fatalf("SetUp: %v", err)
	}
}

func TestRunStartsWhileRedisDownAndSetsUpWhenItComes(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Run with its own Redis down, then starts Redis: slow; run without -short")
	}
	srv := redistest.Start(t)
	srv.Stop()
	c := failFastClient(t, srv.Addr())
	b := newBus(t, c, "down", nil)
	runBus(t, b) // must not fail or block while Redis is down

	ctx := context.Background()
	if err := b.Ready(ctx); !errors.Is(err, eventbus.ErrUnavailable) {
		t.Fatalf("Ready with Redis down = %v, want ErrUnavailable", err)
	}
	srv.Restart()
	waitFor(t, 15*time.Second, "ready after Redis started", func() bool { return b.Ready(ctx) == nil })
	if g := groupsOf(t, c, "down:events:main"); len(g) != 1 {
		t.Errorf("groups after late set-up = %v", g)
	}
}

func TestSetUpAgainAfterRedisComesBackEmpty(t *testing.T) {
	if testing.Short() {
		t.Skip("restarts its own Redis empty: slow; run without -short")
	}
	srv := redistest.Start(t)
	c := failFastClient(t, srv.Addr())
	b := newBus(t, c, "flush", nil)
	runBus(t, b)
	ctx := context.Background()
	waitFor(t, 10*time.Second, "ready", func() bool { return b.Ready(ctx) == nil })

	// Restart without persistence: everything is gone.
	srv.Restart()
	waitFor(t, 15*time.Second, "groups again after empty restart", func() bool {
		gs, err := c.XInfoGroups(ctx, "flush:events:main").Result()
		return err == nil && len(gs) == 1
	})

	// A NOGROUP reply triggers set-up at once, without waiting for the
	// periodic check.
	if err := c.FlushAll(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	err := c.XReadGroup(ctx, &redis.XReadGroupArgs{Group: eventbus.DefaultGroup, Consumer: "x",
		Streams: []string{"flush:events:main", ">"}, Count: 1, Block: -1}).Err()
	if err == nil || err.Error()[:7] != "NOGROUP" {
		t.Fatalf("XREADGROUP after flush = %v, want NOGROUP", err)
	}
	waitFor(t, 3*time.Second, "groups again after NOGROUP", func() bool {
		gs, err := c.XInfoGroups(ctx, "flush:events:main").Result()
		return err == nil && len(gs) == 1
	})
}
