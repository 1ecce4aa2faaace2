package eventbus_test

import (
	"context"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hyvve/eventbus"
	"github.com/hyvve/eventbus/internal/rdb"
)

func init() {
	// go-redis logs every failed dial; the tests that stop Redis cause many.
	redis.SetLogger(quietRedis{})
}

type quietRedis struct{}

func (quietRedis) Printf(context.Context, string, ...any) {}

// testLogger logs to the test output when -v is set, else discards.
func testLogger(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("test", t.Name())
	}
	return slog.New(slog.DiscardHandler)
}

// failFastClient is a client configured like the server's: a dead Redis
// answers at once instead of after go-redis's dial retries.
func failFastClient(t testing.TB, addr string) *redis.Client {
	c := redis.NewClient(&redis.Options{
		Addr: addr, DialerRetries: 2, DialerRetryTimeout: 50 * time.Millisecond,
		MaxRetries: 1, DialTimeout: time.Second,
	})
	t.Cleanup(func() { c.Close() })
	return c
}

// newBus builds a Bus on client with prefix, applying mutate to the config.
func newBus(t testing.TB, client redis.UniversalClient, prefix string, mutate func(*eventbus.Config)) *eventbus.Bus {
	t.Helper()
	cfg := eventbus.Config{Redis: client, Prefix: prefix, Consumer: "test-consumer", Logger: testLogger(t)}
	if mutate != nil {
		mutate(&cfg)
	}
	b, err := eventbus.New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return b
}

// runBus runs b in the background until the test ends.
func runBus(t testing.TB, b *eventbus.Bus) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := b.Run(ctx); err != nil {
			t.Errorf("Run: %v", err) // nil after a cancellation
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
}

// waitFor polls cond every 20ms until it holds or timeout passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// testKeys is the key schema of a test's prefix (the single-node layout):
// tests name keys through it, never by literal.
func testKeys(prefix string) rdb.Keys { return rdb.NewKeys(prefix, false) }

// idempotencyKeys is the KEYS pattern matching every idempotency key of a
// test's prefix: the key of an empty scoped id without that id.
func idempotencyKeys(prefix string) string {
	return strings.TrimSuffix(testKeys(prefix).Idempotency("", ""), rdb.ScopedID("", "")) + "*"
}
