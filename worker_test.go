package eventbus_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hyvve/eventbus"
)

// The crash tests run consumers as separate OS processes: this test binary
// started again with EVENTBUS_TEST_WORKER=1 runs workerMain instead of the
// tests.
func TestMain(m *testing.M) {
	if os.Getenv("EVENTBUS_TEST_WORKER") == "1" {
		os.Exit(workerMain())
	}
	os.Exit(m.Run())
}

// workerMain runs a consumer configured by environment variables:
//
//	W_REDIS, W_PREFIX, W_CONSUMER   where and who
//	W_SLEEP_MS                      each handler sleeps this long
//	W_FLAKY                         "1": handler "flaky" fails its first run
//	W_RETRY_MS                      the single retry delay (default 100)
//	W_CLAIM_IDLE_MS                 ClaimIdle (default 2000); handler timeouts stay below it
//	W_MAX_DELIVERIES                MaxDeliveries (default the library's)
//	W_CRASH_TYPE                    handler "crash" (priority 5) calls os.Exit(3) on events of this type
//
// Handlers "a" (priority 10) and "b" (priority 20) match every event; each
// run is counted in the hash <prefix>:runs (field <event id>|<handler>)
// and timed in the list <prefix>:times:<event id>.
func workerMain() int {
	opt, err := redis.ParseURL(os.Getenv("W_REDIS"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	client := redis.NewClient(opt)
	prefix := os.Getenv("W_PREFIX")
	sleep, _ := strconv.Atoi(os.Getenv("W_SLEEP_MS"))
	retryMS, _ := strconv.Atoi(os.Getenv("W_RETRY_MS"))
	if retryMS == 0 {
		retryMS = 100
	}
	bus, err := eventbus.New(eventbus.Config{Redis: client, Prefix: prefix, Consumer: os.Getenv("W_CONSUMER"),
		Block: 100 * time.Millisecond, BatchSize: 20})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	claimIdle := 2 * time.Second
	if ms, _ := strconv.Atoi(os.Getenv("W_CLAIM_IDLE_MS")); ms > 0 {
		claimIdle = time.Duration(ms) * time.Millisecond
	}
	timeout := min(time.Second, claimIdle*4/5)
	maxDeliveries, _ := strconv.Atoi(os.Getenv("W_MAX_DELIVERIES"))
	cons, err := bus.NewConsumer(eventbus.ConsumerConfig{
		ClaimIdle: claimIdle, ClaimInterval: 200 * time.Millisecond, RetryPollInterval: 20 * time.Millisecond,
		Retry:         &eventbus.RetryPolicy{Delays: []time.Duration{time.Duration(retryMS) * time.Millisecond}},
		MaxDeliveries: maxDeliveries,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	record := func(ctx context.Context, ev eventbus.Event, handler string) int64 {
		// The time first: a test that sees the run counted finds its time.
		client.RPush(ctx, prefix+":times:"+ev.ID, time.Now().UnixMilli())
		n := client.HIncrBy(ctx, prefix+":runs", ev.ID+"|"+handler, 1).Val()
		time.Sleep(time.Duration(sleep) * time.Millisecond)
		return n
	}
	for _, h := range []struct {
		name string
		prio int
	}{{"a", 10}, {"b", 20}} {
		err := cons.Handle(h.name, "*", eventbus.HandlerFunc(func(ctx context.Context, ev eventbus.Event) error {
			record(ctx, ev, h.name)
			return nil
		}), eventbus.Priority(h.prio), eventbus.Timeout(timeout))
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	if typ := os.Getenv("W_CRASH_TYPE"); typ != "" {
		err := cons.Handle("crash", "*", eventbus.HandlerFunc(func(ctx context.Context, ev eventbus.Event) error {
			if ev.Type == typ {
				record(ctx, ev, "crash")
				os.Exit(3)
			}
			return nil
		}), eventbus.Priority(5), eventbus.Timeout(timeout))
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	if os.Getenv("W_FLAKY") == "1" {
		err := cons.Handle("flaky", "*", eventbus.HandlerFunc(func(ctx context.Context, ev eventbus.Event) error {
			if record(ctx, ev, "flaky") == 1 {
				return errors.New("first run fails")
			}
			return nil
		}), eventbus.Priority(30), eventbus.Timeout(timeout))
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	if err := bus.SetUp(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := cons.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// worker is a consumer process started by a test.
type worker struct {
	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited
}

func startWorker(t *testing.T, redisURL, prefix, consumer string, env ...string) *worker {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "EVENTBUS_TEST_WORKER=1", "W_REDIS="+redisURL, "W_PREFIX="+prefix, "W_CONSUMER="+consumer)
	cmd.Env = append(cmd.Env, env...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w := &worker{cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(w.done) }()
	t.Cleanup(func() { w.kill() })
	return w
}

// kill ends the worker with SIGKILL: a crash.
func (w *worker) kill() {
	select {
	case <-w.done:
		return
	default:
	}
	_ = w.cmd.Process.Signal(syscall.SIGKILL)
	<-w.done
}
