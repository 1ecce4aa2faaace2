// Package redistest starts throwaway redis-server processes for tests and
// hands out isolated key prefixes on a shared Redis. It never skips: a
// missing redis-server or an unreachable shared Redis fails the test with
// the command that fixes it.
package redistest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// InstallHint is the one command that installs redis-server on Debian or
// Ubuntu.
const InstallHint = "sudo apt-get install -y redis-server (or run ./scripts/test.sh, which installs it)"

// Server is a redis-server process owned by one test.
type Server struct {
	t    testing.TB
	port int
	dir  string
	conf string // configuration file, "" for none
	args []string

	mu     sync.Mutex
	proc   *os.Process
	exited chan error // receives cmd.Wait's result
}

// Start runs a redis-server on a free loopback port with no persistence,
// plus extra args (for example "--appendonly", "yes"). The process is
// killed when the test ends.
func Start(t testing.TB, args ...string) *Server {
	t.Helper()
	return startWith(t, "", args...)
}

// startWith is Start with a configuration file (first argument of
// redis-server; "" for none).
func startWith(t testing.TB, conf string, args ...string) *Server {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatalf("redis-server not found on PATH: %s", InstallHint)
	}
	s := &Server{t: t, dir: t.TempDir(), conf: conf, args: args}
	for attempt := 0; ; attempt++ {
		s.port = freePort(t)
		if err = s.start(bin); err == nil {
			break
		}
		if attempt == 4 {
			t.Fatalf("start redis-server: %v", err)
		}
	}
	t.Cleanup(s.Stop)
	return s
}

// Addr is host:port of the server.
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

// URL is the redis:// URL of the server.
func (s *Server) URL() string { return "redis://" + s.Addr() }

// Client returns a client for the server, closed when the test ends.
func (s *Server) Client(t testing.TB) *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: s.Addr(), MaxRetries: -1, DialTimeout: time.Second})
	t.Cleanup(func() { c.Close() })
	return c
}

// Pid returns the pid of the running process, or 0.
func (s *Server) Pid() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		return 0
	}
	return s.proc.Pid
}

// Stop kills the server (SIGKILL: a crash, nothing flushed beyond what the
// persistence settings already wrote) and waits for it. Calling Stop on a
// stopped server does nothing.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		return
	}
	_ = s.proc.Signal(syscall.SIGKILL)
	<-s.exited
	s.proc, s.exited = nil, nil
}

// Restart starts the server again on the same port and directory, so that
// an AOF written before Stop is loaded.
func (s *Server) Restart() {
	s.t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		s.t.Fatalf("redis-server not found on PATH: %s", InstallHint)
	}
	s.Stop()
	var lastErr error
	for range 20 { // the port may linger briefly
		if lastErr = s.start(bin); lastErr == nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.t.Fatalf("restart redis-server: %v", lastErr)
}

func (s *Server) start(bin string) error {
	var args []string
	if s.conf != "" {
		args = append(args, s.conf)
	}
	args = append(args,
		"--port", strconv.Itoa(s.port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", s.dir,
		"--daemonize", "no", "--logfile", filepath.Join(s.dir, "redis.log"))
	args = append(args, s.args...)
	cmd := exec.Command(bin, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	c := redis.NewClient(&redis.Options{Addr: s.Addr(), MaxRetries: -1, DialTimeout: 200 * time.Millisecond})
	defer c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		select {
		case err := <-exited:
			log, _ := os.ReadFile(filepath.Join(s.dir, "redis.log"))
			return fmt.Errorf("redis-server exited: %v: %s", err, tail(log))
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		err := c.Ping(ctx).Err()
		cancel()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			<-exited
			return fmt.Errorf("redis-server on port %d did not answer: %v", s.port, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	s.mu.Lock()
	s.proc, s.exited = cmd.Process, exited
	s.mu.Unlock()
	return nil
}

func tail(b []byte) string {
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}

func freePort(t testing.TB) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("find a free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// SharedURLEnv names the environment variable with the URL of the shared
// test Redis. Default redis://127.0.0.1:6379.
const SharedURLEnv = "EVENTBUS_TEST_REDIS_URL"

// Shared returns a client for the shared test Redis and a key prefix of
// its own for this test, so that test packages running in parallel never
// see each other's keys. The prefix's keys are deleted when the test ends.
// An unreachable Redis fails the test.
func Shared(t testing.TB) (*redis.Client, string) {
	t.Helper()
	url := os.Getenv(SharedURLEnv)
	if url == "" {
		url = "redis://127.0.0.1:6379"
	}
	opt, err := redis.ParseURL(url)
	if err != nil {
		t.Fatalf("%s=%q: %v", SharedURLEnv, url, err)
	}
	c := redis.NewClient(opt)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		c.Close()
		t.Fatalf("shared test Redis at %s unreachable: %v; start one (redis-server --daemonize yes) or run ./scripts/test.sh, or set %s", opt.Addr, err, SharedURLEnv)
	}
	prefix := Prefix(t)
	t.Cleanup(func() {
		DeletePrefix(context.Background(), c, prefix)
		c.Close()
	})
	return c, prefix
}

var unsafeChars = regexp.MustCompile(`[^A-Za-z0-9_-]+`)

// Prefix returns a unique key prefix naming the test.
func Prefix(t testing.TB) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	name := unsafeChars.ReplaceAllString(t.Name(), "_")
	if len(name) > 40 {
		name = name[:40]
	}
	return "test-" + name + "-" + hex.EncodeToString(b[:])
}

// DeletePrefix deletes every key that starts with prefix (including the
// hash-tagged cluster form).
func DeletePrefix(ctx context.Context, c redis.UniversalClient, prefix string) {
	for _, pattern := range []string{prefix + ":*", "{" + prefix + "}:*"} {
		iter := c.Scan(ctx, 0, pattern, 1000).Iterator()
		var keys []string
		for iter.Next(ctx) {
			keys = append(keys, iter.Val())
		}
		if len(keys) > 0 {
			c.Del(ctx, keys...)
		}
	}
}

// StartCluster runs a Redis Cluster of n masters (no replicas) on free
// loopback ports, slots split evenly, and returns their addresses once the
// cluster state is ok. The processes are killed when the test ends.
func StartCluster(t testing.TB, n int) []string {
	t.Helper()
	ctx := context.Background()
	servers := make([]*Server, n)
	addrs := make([]string, n)
	for i := range servers {
		dir := t.TempDir()
		servers[i] = Start(t, "--cluster-enabled", "yes", "--cluster-config-file", filepath.Join(dir, "nodes.conf"))
		addrs[i] = servers[i].Addr()
	}
	const slots = 16384
	for i, s := range servers {
		c := s.Client(t)
		lo, hi := i*slots/n, (i+1)*slots/n-1
		if err := c.Do(ctx, "CLUSTER", "ADDSLOTSRANGE", lo, hi).Err(); err != nil {
			t.Fatalf("cluster addslots on %s: %v", s.Addr(), err)
		}
		if i > 0 {
			host, port, _ := net.SplitHostPort(s.Addr())
			if err := servers[0].Client(t).Do(ctx, "CLUSTER", "MEET", host, port).Err(); err != nil {
				t.Fatalf("cluster meet %s: %v", s.Addr(), err)
			}
		}
	}
	deadline := time.Now().Add(20 * time.Second)
	for _, s := range servers {
		c := s.Client(t)
		for {
			info, err := c.ClusterInfo(ctx).Result()
			if err == nil && strings.Contains(info, "cluster_state:ok") && strings.Contains(info, "cluster_known_nodes:"+strconv.Itoa(n)) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("cluster on %s not ok: %v %s", s.Addr(), err, info)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return addrs
}

// StartSentinel runs a Redis Sentinel on a free loopback port monitoring
// the master at masterAddr under name, and returns its address once it
// knows the master. It is killed when the test ends.
func StartSentinel(t testing.TB, masterAddr, name string) string {
	t.Helper()
	host, port, _ := net.SplitHostPort(masterAddr)
	conf := filepath.Join(t.TempDir(), "sentinel.conf")
	body := fmt.Sprintf("sentinel monitor %s %s %s 1\nsentinel down-after-milliseconds %s 5000\n", name, host, port, name)
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	s := startWith(t, conf, "--sentinel")
	c := s.Client(t)
	deadline := time.Now().Add(10 * time.Second)
	for {
		addr, err := c.Do(context.Background(), "SENTINEL", "GET-MASTER-ADDR-BY-NAME", name).StringSlice()
		if err == nil && len(addr) == 2 && addr[1] == port {
			return s.Addr()
		}
		if time.Now().After(deadline) {
			t.Fatalf("sentinel does not know master %s: %v %v", name, addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
