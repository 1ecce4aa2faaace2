package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// group is the consumer group every system uses.
const group = "bench"

// target is the Redis the benchmark runs against: a redis-server this
// process started (owned: flushed between cells, killed at the end) or one
// given by URL (never flushed).
type target struct {
	url     string
	addr    string
	version string
	owned   bool

	cmd    *exec.Cmd
	exited chan struct{}
	dir    string
	admin  *redis.Client
}

func (t *target) kind() string {
	if t.owned {
		return fmt.Sprintf("throwaway redis-server, pid %d, no persistence", t.cmd.Process.Pid)
	}
	return "given by -redis-url, never flushed"
}

// startServer runs redis-server on a free loopback port with no
// persistence. The process is killed by close, and by the kernel if this
// process dies first.
func startServer(ctx context.Context) (*target, error) { return startServerArgs(ctx) }

// startServerArgs is startServer with extra redis-server arguments; the
// server's directory (its --dir) holds its log and any other file.
func startServerArgs(ctx context.Context, extra ...string) (*target, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, errors.New("redis-server not found on PATH (apt-get install -y redis-server), or pass -redis-url")
	}
	dir, err := os.MkdirTemp("", "eventbus-bench-redis-")
	if err != nil {
		return nil, err
	}
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		port, err := freePort()
		if err != nil {
			lastErr = err
			continue
		}
		t, err := tryStart(ctx, bin, dir, port, extra)
		if err == nil {
			return t, nil
		}
		lastErr = err
	}
	os.RemoveAll(dir)
	return nil, fmt.Errorf("start redis-server: %w", lastErr)
}

func tryStart(ctx context.Context, bin, dir string, port int, extra []string) (*target, error) {
	logPath := filepath.Join(dir, "redis.log")
	args := []string{
		"--port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no",
		"--dir", dir, "--logfile", logPath, "--daemonize", "no"}
	cmd := exec.Command(bin, append(args, extra...)...)
	cmd.SysProcAttr = serverProcAttr()
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	t := &target{url: "redis://" + addr, addr: addr, owned: true, cmd: cmd, exited: make(chan struct{}), dir: dir}
	go func() { _ = cmd.Wait(); close(t.exited) }()
	t.admin = redis.NewClient(&redis.Options{Addr: addr, DialTimeout: time.Second})
	deadline := time.Now().Add(5 * time.Second)
	for {
		pctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		err := t.admin.Ping(pctx).Err()
		cancel()
		if err == nil {
			break
		}
		select {
		case <-t.exited:
			t.admin.Close()
			return nil, fmt.Errorf("redis-server on port %d exited: %s", port, tail(logPath))
		default:
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			t.close()
			return nil, fmt.Errorf("redis-server on port %d did not answer: %v", port, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := t.readVersion(ctx); err != nil {
		t.close()
		return nil, err
	}
	return t, nil
}

// useTarget connects to a Redis given by URL.
func useTarget(ctx context.Context, url string) (*target, error) {
	opts, err := redis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("-redis-url: %w", err)
	}
	t := &target{url: url, addr: opts.Addr}
	t.admin = redis.NewClient(opts)
	if err := t.admin.Ping(ctx).Err(); err != nil {
		t.admin.Close()
		return nil, fmt.Errorf("redis at %s: %w", opts.Addr, err)
	}
	if err := t.readVersion(ctx); err != nil {
		t.admin.Close()
		return nil, err
	}
	return t, nil
}

func (t *target) readVersion(ctx context.Context) error {
	info, err := t.admin.Info(ctx, "server").Result()
	if err != nil {
		return fmt.Errorf("INFO server: %w", err)
	}
	t.version = infoField(info, "redis_version")
	return nil
}

// close kills the server this process started (by its pid) and removes
// its directory; for a given URL it only closes the client.
func (t *target) close() {
	if t.admin != nil {
		t.admin.Close()
	}
	if !t.owned {
		return
	}
	_ = t.cmd.Process.Kill()
	select {
	case <-t.exited:
	case <-time.After(5 * time.Second):
	}
	os.RemoveAll(t.dir)
}

// client returns a new client with its own connection pool.
func (c *cell) client() *redis.Client { return c.clientWith(nil) }

// clientWith is client with its options changed by set (nil: none).
func (c *cell) clientWith(set func(*redis.Options)) *redis.Client {
	opts, err := redis.ParseURL(c.url)
	if err != nil {
		panic(err) // checked by useTarget / built by startServer
	}
	if set != nil {
		set(opts)
	}
	return redis.NewClient(opts)
}

// usedMemory is INFO memory's used_memory.
func usedMemory(ctx context.Context, rc *redis.Client) (int64, error) {
	info, err := rc.Info(ctx, "memory").Result()
	if err != nil {
		return 0, fmt.Errorf("INFO memory: %w", err)
	}
	return strconv.ParseInt(infoField(info, "used_memory"), 10, 64)
}

func infoField(info, name string) string {
	sc := bufio.NewScanner(strings.NewReader(info))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+":"); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// waitDrained polls XINFO GROUPS until the group has read at least n
// entries of stream and none is pending (every one acknowledged).
func waitDrained(ctx context.Context, rc *redis.Client, stream string, n int) error {
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	var read, pending int64 = -1, -1
	for {
		gs, err := rc.XInfoGroups(ctx, stream).Result()
		if err == nil {
			for _, g := range gs {
				if g.Name == group {
					read, pending = g.EntriesRead, g.Pending
				}
			}
			if read >= int64(n) && pending == 0 {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %d entries acknowledged on %s (read %d, pending %d): %w",
				n, stream, read, pending, context.Cause(ctx))
		case <-tick.C:
		}
	}
}

// createGroup creates the group at the start of stream (MKSTREAM).
func createGroup(ctx context.Context, rc *redis.Client, stream string) error {
	err := rc.XGroupCreateMkStream(ctx, stream, group, "0").Err()
	if err != nil && !strings.HasPrefix(err.Error(), "BUSYGROUP") {
		return fmt.Errorf("XGROUP CREATE %s: %w", stream, err)
	}
	return nil
}

// deletePrefix removes every key under prefix (SCAN + UNLINK).
func deletePrefix(ctx context.Context, rc *redis.Client, prefix string) error {
	var cursor uint64
	for i := 0; i < 1_000_000; i++ {
		keys, next, err := rc.Scan(ctx, cursor, prefix+":*", 1000).Result()
		if err != nil {
			return err
		}
		if len(keys) > 0 {
			if err := rc.Unlink(ctx, keys...).Err(); err != nil {
				return err
			}
		}
		if next == 0 {
			return nil
		}
		cursor = next
	}
	return errors.New("deletePrefix: too many SCAN rounds")
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func tail(path string) string {
	b, _ := os.ReadFile(path)
	s := strings.TrimSpace(string(b))
	if len(s) > 500 {
		s = s[len(s)-500:]
	}
	return s
}

// checkLen verifies that stream holds want entries (every publish landed).
func checkLen(ctx context.Context, rc *redis.Client, stream string, want int) error {
	n, err := rc.XLen(ctx, stream).Result()
	if err != nil {
		return fmt.Errorf("XLEN %s: %w", stream, err)
	}
	if n != int64(want) {
		return fmt.Errorf("%s holds %d entries, want %d", stream, n, want)
	}
	return nil
}
