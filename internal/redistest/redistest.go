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
	"slices"
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
	return StartClusterWithReplicas(t, n, 0).Addrs()
}

// ClusterNodes is a Redis Cluster started by StartClusterWithReplicas.
type ClusterNodes struct {
	// Masters hold the slots, split evenly in this order.
	Masters []*Server
	// Replicas[i] are the replicas of Masters[i].
	Replicas [][]*Server
}

// Addrs returns the addresses of every node, masters first.
func (c ClusterNodes) Addrs() []string {
	var addrs []string
	for _, s := range c.Masters {
		addrs = append(addrs, s.Addr())
	}
	for _, rs := range c.Replicas {
		for _, s := range rs {
			addrs = append(addrs, s.Addr())
		}
	}
	return addrs
}

// ClusterNodeTimeout is the cluster-node-timeout of the clusters started
// here: a master unreachable this long is marked failing and one of its
// replicas is promoted a moment later.
const ClusterNodeTimeout = 1000 * time.Millisecond

// StartClusterWithReplicas runs a Redis Cluster of masters masters, slots
// split evenly, each with replicasPerMaster replicas, on free loopback
// ports. It returns once the cluster state is ok on every node, every node
// knows every other, and every replica's link to its master is up. The
// cluster-node-timeout is ClusterNodeTimeout and replicas always take part
// in a failover (cluster-replica-validity-factor 0), so killing a master
// promotes one of its replicas within a few seconds. The processes are
// killed when the test ends.
func StartClusterWithReplicas(t testing.TB, masters, replicasPerMaster int) ClusterNodes {
	t.Helper()
	ctx := context.Background()
	start := func() *Server {
		return Start(t, "--cluster-enabled", "yes",
			"--cluster-config-file", filepath.Join(t.TempDir(), "nodes.conf"),
			"--cluster-node-timeout", strconv.FormatInt(ClusterNodeTimeout.Milliseconds(), 10),
			"--cluster-replica-validity-factor", "0",
			"--repl-diskless-sync-delay", "0")
	}
	nodes := ClusterNodes{Masters: make([]*Server, masters), Replicas: make([][]*Server, masters)}
	for i := range nodes.Masters {
		nodes.Masters[i] = start()
	}
	var all []*Server
	first := nodes.Masters[0].Client(t)
	meet := func(s *Server) {
		host, port, _ := net.SplitHostPort(s.Addr())
		if err := first.Do(ctx, "CLUSTER", "MEET", host, port).Err(); err != nil {
			t.Fatalf("cluster meet %s: %v", s.Addr(), err)
		}
	}
	const slots = 16384
	ids := make([]string, masters)
	for i, s := range nodes.Masters {
		c := s.Client(t)
		lo, hi := i*slots/masters, (i+1)*slots/masters-1
		if err := c.Do(ctx, "CLUSTER", "ADDSLOTSRANGE", lo, hi).Err(); err != nil {
			t.Fatalf("cluster addslots on %s: %v", s.Addr(), err)
		}
		id, err := c.Do(ctx, "CLUSTER", "MYID").Text()
		if err != nil {
			t.Fatalf("cluster myid on %s: %v", s.Addr(), err)
		}
		ids[i] = id
		if i > 0 {
			meet(s)
		}
		all = append(all, s)
	}
	deadline := time.Now().Add(30 * time.Second)
	for i := range nodes.Masters {
		for range replicasPerMaster {
			r := start()
			meet(r)
			rc := r.Client(t)
			for { // REPLICATE needs the replica to know the master
				err := rc.Do(ctx, "CLUSTER", "REPLICATE", ids[i]).Err()
				if err == nil {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("cluster replicate %s on %s: %v", ids[i], r.Addr(), err)
				}
				time.Sleep(20 * time.Millisecond)
			}
			nodes.Replicas[i] = append(nodes.Replicas[i], r)
			all = append(all, r)
		}
	}
	poll := func(what string, s *Server, ok func(c *redis.Client) (bool, string)) {
		c := s.Client(t)
		for {
			done, got := ok(c)
			if done {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("cluster: %s on %s: %s", what, s.Addr(), got)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	for _, s := range all {
		poll("state ok and every node known", s, func(c *redis.Client) (bool, string) {
			info, err := c.ClusterInfo(ctx).Result()
			return err == nil && strings.Contains(info, "cluster_state:ok") &&
				strings.Contains(info, "cluster_known_nodes:"+strconv.Itoa(len(all))+"\r\n"), fmt.Sprint(info, err)
		})
	}
	for i, m := range nodes.Masters {
		if replicasPerMaster == 0 {
			continue
		}
		poll("replicas connected", m, func(c *redis.Client) (bool, string) {
			info, err := c.Info(ctx, "replication").Result()
			return err == nil && strings.Contains(info, "connected_slaves:"+strconv.Itoa(replicasPerMaster)+"\r\n"), fmt.Sprint(info, err)
		})
		for _, r := range nodes.Replicas[i] {
			poll("link to the master up", r, func(c *redis.Client) (bool, string) {
				info, err := c.Info(ctx, "replication").Result()
				return err == nil && strings.Contains(info, "master_link_status:up"), fmt.Sprint(info, err)
			})
		}
		// Every node must see the replicas as such, or a failover vote
		// could miss them.
		for _, s := range all {
			poll("replicas known as replicas", s, func(c *redis.Client) (bool, string) {
				out, err := c.ClusterNodes(ctx).Result()
				return err == nil && countReplicas(out, ids[i]) == replicasPerMaster, fmt.Sprint(out, err)
			})
		}
	}
	return nodes
}

// countReplicas counts the lines of a CLUSTER NODES reply that describe a
// replica of the master with id master.
func countReplicas(nodes, master string) int {
	n := 0
	for line := range strings.Lines(nodes) {
		f := strings.Fields(line)
		if len(f) > 3 && f[3] == master && slices.Contains(strings.Split(f[2], ","), "slave") {
			n++
		}
	}
	return n
}

// WaitClusterOK waits until every running node of nodes reports
// cluster_state:ok and sees every slot served (for example after a master
// was killed and a replica promoted), and returns how long that took.
func (c ClusterNodes) WaitClusterOK(t testing.TB, timeout time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	ctx := context.Background()
	for _, group := range append([][]*Server{c.Masters}, c.Replicas...) {
		for _, s := range group {
			if s.Pid() == 0 {
				continue
			}
			cl := s.Client(t)
			for {
				info, err := cl.ClusterInfo(ctx).Result()
				if err == nil && strings.Contains(info, "cluster_state:ok") && strings.Contains(info, "cluster_slots_fail:0\r\n") && strings.Contains(info, "cluster_slots_ok:16384\r\n") {
					break
				}
				if time.Since(start) > timeout {
					t.Fatalf("cluster not ok on %s after %v: %v %s", s.Addr(), timeout, err, info)
				}
				time.Sleep(20 * time.Millisecond)
			}
		}
	}
	return time.Since(start)
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
