package eventbus_test

import (
	"context"
	"errors"
	"net"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hyvve/eventbus"
	"github.com/hyvve/eventbus/internal/redistest"
)

// faultHook is a go-redis hook that fails the first n calls that match,
// with a network error that the bus classifies as "Redis unavailable".
//
// It must be added to the client after eventbus.New, which installs the
// bus's breaker hook: go-redis runs hooks in the order they were added, so
// this one then sits between the breaker and the network, as a real
// failure would, and the breaker sees (and wraps) its errors.
//
// With afterSend the call goes to Redis and runs there; only its reply is
// lost (a reset after the write): the outcome is unknown to the bus.
// Without it the call never reaches Redis (a refused dial).
type faultHook struct {
	match     func(cmds []redis.Cmder) bool
	afterSend bool

	mu       sync.Mutex
	left     int // failures still to inject
	injected int
	passed   int // matching calls let through after the failures
}

func (h *faultHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *faultHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		return h.run(ctx, []redis.Cmder{cmd}, func(ctx context.Context) error { return next(ctx, cmd) })
	}
}

func (h *faultHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		return h.run(ctx, cmds, func(ctx context.Context) error { return next(ctx, cmds) })
	}
}

// run applies the fault to one call (cmds: one command or a pipeline).
func (h *faultHook) run(ctx context.Context, cmds []redis.Cmder, next func(context.Context) error) error {
	if !h.match(cmds) {
		return next(ctx)
	}
	h.mu.Lock()
	fail := h.left > 0
	if fail {
		h.left--
		h.injected++
	} else {
		h.passed++
	}
	h.mu.Unlock()
	if !fail {
		return next(ctx)
	}
	var err error
	if h.afterSend {
		_ = next(ctx) // the call runs in Redis; its reply is lost
		err = &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", syscall.ECONNRESET)}
	} else {
		err = &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
	}
	for _, c := range cmds {
		c.SetErr(err)
	}
	return err
}

func (h *faultHook) counts() (injected, passed int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.injected, h.passed
}

// hasArgs reports whether cmd's arguments include every one of want.
func hasArgs(cmd redis.Cmder, want ...string) bool {
	for _, w := range want {
		if !slices.ContainsFunc(cmd.Args(), func(a any) bool { s, ok := a.(string); return ok && s == w }) {
			return false
		}
	}
	return true
}

// settleCall matches the settle script (EVALSHA, or EVAL after NOSCRIPT):
// the only script whose keys include both the retry schedule and the DLQ.
func settleCall(prefix string) func([]redis.Cmder) bool {
	schedule := testKeys(prefix).RetrySchedule(eventbus.DefaultGroup)
	dlq := testKeys(prefix).DLQ()
	return func(cmds []redis.Cmder) bool {
		if len(cmds) != 1 {
			return false
		}
		name := cmds[0].Name()
		return (name == "evalsha" || name == "eval") && hasArgs(cmds[0], schedule, dlq)
	}
}

// ackCall matches the ack flusher's round trip on the main stream: a lone
// XACK, or a MULTI/EXEC holding an XACK.
func ackCall(prefix string) func([]redis.Cmder) bool {
	main := testKeys(prefix).Main()
	return func(cmds []redis.Cmder) bool {
		for _, c := range cmds {
			if c.Name() == "xack" && hasArgs(c, main) {
				return len(cmds) == 1 || cmds[0].Name() == "multi"
			}
		}
		return false
	}
}

// faultCases are the ways a call can fail: before it reaches Redis, or
// after Redis ran it (reply lost); a few times (breaker stays closed) or
// enough times to open the breaker.
var faultCases = []struct {
	name      string
	failures  int
	afterSend bool
}{
	{"not sent once", 1, false},
	{"not sent until the breaker opens", 5, false}, // threshold 3
	{"reply lost once", 1, true},
	{"reply lost until the breaker opens", 5, true},
}

// skipSlowFault skips, under -short, the cases that open the breaker:
// they wait for its one-second cool-down.
func skipSlowFault(t *testing.T, failures int) {
	t.Helper()
	if testing.Short() && failures > 1 {
		t.Skip("waits for the breaker's cool-down; run without -short")
	}
}

// A handler failure is recorded (retry scheduled or dead letter written,
// and the entry acknowledged: one Lua step) exactly once when the settle
// step fails several times and Redis then answers: one retry or one dead
// letter, nothing pending, the handler not run again.
func TestSettleRetriedAfterFaultsRecordsTheFailureOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("fault injection across the breaker: slow; run without -short")
	}
	for _, permanent := range []bool{false, true} {
		for _, fc := range faultCases {
			name := fc.name
			if permanent {
				name = "permanent/" + name
			} else {
				name = "retry/" + name
			}
			t.Run(name, func(t *testing.T) {
				skipSlowFault(t, fc.failures)
				ctx := context.Background()
				c, prefix := redistest.Shared(t)
				b := fastBus(t, c, prefix, nil)
				fault := &faultHook{match: settleCall(prefix), afterSend: fc.afterSend, left: fc.failures}
				c.AddHook(fault) // after eventbus.New: inside the breaker
				// A retry due in an hour: it is scheduled, never run here.
				cons := fastConsumer(t, b, func(cfg *eventbus.ConsumerConfig) {
					cfg.ClaimIdle = time.Minute
					cfg.Retry = &eventbus.RetryPolicy{Delays: []time.Duration{time.Hour}}
				})
				var runs atomic.Int32
				mustHandle(t, cons, "flaky", "*", func(context.Context, eventbus.Event) error {
					runs.Add(1)
					if permanent {
						return eventbus.Permanent(errors.New("schema mismatch"))
					}
					return errors.New("downstream unavailable")
				})
				if err := b.SetUp(ctx); err != nil {
					t.Fatal(err)
				}
				runConsumer(t, cons)
				p, err := b.Publish(ctx, approved("t1"))
				if err != nil {
					t.Fatal(err)
				}
				// Every injected failure, then one settle that got through.
				waitFor(t, 30*time.Second, "the settle step to get through", func() bool {
					injected, passed := fault.counts()
					return injected == fc.failures && passed >= 1
				})
				main := testKeys(prefix).Main()
				waitFor(t, 10*time.Second, "the entry to be acknowledged", func() bool {
					return pendingCount(t, c, main, eventbus.DefaultGroup) == 0
				})
				want := eventbus.StateFailed
				if permanent {
					want = eventbus.StateDLQ
				}
				waitFor(t, 10*time.Second, "status "+string(want), func() bool {
					st, err := b.Status(ctx, "", p.ID)
					return err == nil && st.State == want
				})
				// Let a wrongly repeated settle or delivery show up.
				time.Sleep(300 * time.Millisecond)

				if n := runs.Load(); n != 1 {
					t.Errorf("handler ran %d times, want 1", n)
				}
				scheduled := c.ZCard(ctx, testKeys(prefix).RetrySchedule(eventbus.DefaultGroup)).Val()
				data := c.HLen(ctx, testKeys(prefix).RetryData(eventbus.DefaultGroup)).Val()
				dlq := c.XLen(ctx, testKeys(prefix).DLQ()).Val()
				wantRetries, wantDLQ := int64(1), int64(0)
				if permanent {
					wantRetries, wantDLQ = 0, 1
				}
				if scheduled != wantRetries || data != wantRetries || dlq != wantDLQ {
					t.Errorf("%d retries scheduled (%d data), %d dead letters; want %d, %d", scheduled, data, dlq, wantRetries, wantDLQ)
				}
				st, err := b.Status(ctx, "", p.ID)
				if err != nil {
					t.Fatal(err)
				}
				if st.Attempts != 1 || len(st.Handlers) != 1 || st.Handlers[0].Attempts != 1 {
					t.Errorf("status %+v: want one attempt of one handler", st)
				}
				if !permanent && st.NextAttemptAt == nil {
					t.Errorf("status %+v: want a next attempt", st)
				}
				s := cons.Stats()
				if s.Failed != 1 {
					t.Errorf("stats %+v: want 1 failure", s)
				}
				// When the settle ran but its reply was lost, the retried
				// settle finds the entry pending nowhere and takes the
				// outcome as recorded: the dead letter counts once.
				if s.DeadLettered != wantDLQ {
					t.Errorf("stats %+v: want %d dead-lettered", s, wantDLQ)
				}
			})
		}
	}
}

// Successes whose batched acknowledgement fails several times are
// acknowledged once Redis answers: nothing is left pending, and no handler
// runs twice. One handler per event: a lone XACK; two: the second
// handler's success travels with the ack in MULTI/EXEC (XACK + DEL).
func TestAckRetriedAfterFaultsAcknowledgesEverything(t *testing.T) {
	if testing.Short() {
		t.Skip("fault injection across the breaker: slow; run without -short")
	}
	const events = 50
	for _, handlers := range []int{1, 2} {
		for _, fc := range faultCases {
			name := "xack/" + fc.name
			if handlers == 2 {
				name = "multi/" + fc.name
			}
			t.Run(name, func(t *testing.T) {
				skipSlowFault(t, fc.failures)
				ctx := context.Background()
				c, prefix := redistest.Shared(t)
				b := fastBus(t, c, prefix, nil)
				fault := &faultHook{match: ackCall(prefix), afterSend: fc.afterSend, left: fc.failures}
				c.AddHook(fault) // after eventbus.New: inside the breaker
				cons := fastConsumer(t, b, func(cfg *eventbus.ConsumerConfig) { cfg.ClaimIdle = time.Minute })
				runs := newCounter()
				for i := range handlers {
					name := string(rune('a' + i))
					mustHandle(t, cons, name, "*", func(_ context.Context, ev eventbus.Event) error {
						runs.add(name + "/" + ev.ID)
						return nil
					})
				}
				if err := b.SetUp(ctx); err != nil {
					t.Fatal(err)
				}
				runConsumer(t, cons)
				ids := publishN(t, b, events, "approval.item.approved")
				waitFor(t, 30*time.Second, "every event handled", func() bool { return runs.distinct() == handlers*events })
				waitFor(t, 30*time.Second, "the ack to get through", func() bool {
					injected, passed := fault.counts()
					return injected == fc.failures && passed >= 1
				})
				main := testKeys(prefix).Main()
				waitFor(t, 30*time.Second, "nothing pending", func() bool {
					return pendingCount(t, c, main, eventbus.DefaultGroup) == 0
				})
				// Let a wrongly repeated delivery show up.
				time.Sleep(300 * time.Millisecond)
				for _, id := range ids {
					for i := range handlers {
						key := string(rune('a'+i)) + "/" + id
						if n := runs.get(key); n != 1 {
							t.Errorf("handler %s ran %d times, want 1", key, n)
						}
					}
				}
				if s := cons.Stats(); s.Acked != events || s.Failed != 0 {
					t.Errorf("stats %+v: want %d acked, none failed", s, events)
				}
				if handlers == 2 {
					// The status hashes go with the ack.
					keys, err := c.Keys(ctx, testKeys(prefix).Status(eventbus.DefaultGroup, "*")).Result()
					if err != nil {
						t.Fatal(err)
					}
					if len(keys) != 0 {
						t.Errorf("%d status hashes left after the ack, want 0", len(keys))
					}
				}
			})
		}
	}
}
