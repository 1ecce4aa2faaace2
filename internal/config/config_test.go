package config

import (
	"context"
	"errors"
	"flag"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/hyvve/eventbus"
	"github.com/hyvve/eventbus/internal/redistest"
)

func load(args []string, env map[string]string) (Settings, error) {
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return Load(fs, args, func(k string) string { return env[k] })
}

func TestLoadDefaults(t *testing.T) {
	s, err := load(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if s.RedisURL != "redis://127.0.0.1:6379/0" || s.Prefix != "hyvve" || s.Group != "hyvve-platform" ||
		s.Block != 5*time.Second || s.BatchSize != 10 || s.HTTPAddr != ":8080" ||
		s.Retention.Main != 30*24*time.Hour || s.Retention.DLQ != 90*24*time.Hour || s.Retention.Replay != 24*time.Hour {
		t.Errorf("defaults = %+v", s)
	}
}

func TestLoadFlagsWinOverEnv(t *testing.T) {
	env := map[string]string{"EVENTBUS_PREFIX": "fromenv", "EVENTBUS_GROUP": "g-env", "EVENTBUS_BLOCK": "250"}
	s, err := load([]string{"--prefix", "fromflag"}, env)
	if err != nil {
		t.Fatal(err)
	}
	if s.Prefix != "fromflag" || s.Group != "g-env" || s.Block != 250*time.Millisecond {
		t.Errorf("got prefix %q group %q block %v", s.Prefix, s.Group, s.Block)
	}
}

func TestLoadRejectsBadValues(t *testing.T) {
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want string // the error names the setting and the value
	}{
		{"redis url scheme", nil, map[string]string{"REDIS_URL": "http://x:1"}, `REDIS_URL="http://x:1"`},
		{"redis url password redacted", nil, map[string]string{"REDIS_URL": "redis://u:secret@h:1/notanumber"}, `REDIS_URL="redis://u:xxxxx@h:1/notanumber"`},
		{"block", nil, map[string]string{"EVENTBUS_BLOCK": "soon"}, `EVENTBUS_BLOCK="soon"`},
		{"block negative", []string{"--block", "-1s"}, nil, `--block="-1s"`},
		{"batch zero", nil, map[string]string{"EVENTBUS_BATCH_SIZE": "0"}, `EVENTBUS_BATCH_SIZE="0"`},
		{"batch text", []string{"--batch-size", "ten"}, nil, `--batch-size="ten"`},
		{"retention main", nil, map[string]string{"EVENTBUS_RETENTION_MAIN": "forever"}, `EVENTBUS_RETENTION_MAIN="forever"`},
		{"retention dlq too short", nil, map[string]string{"EVENTBUS_RETENTION_DLQ": "1s"}, `EVENTBUS_RETENTION_DLQ="1s"`},
		{"retention replay", []string{"--retention-replay", "1x"}, nil, `--retention-replay="1x"`},
		{"http addr", nil, map[string]string{"EVENTBUS_HTTP_ADDR": "8080"}, `EVENTBUS_HTTP_ADDR="8080"`},
		{"prefix with space", nil, map[string]string{"EVENTBUS_PREFIX": "a b"}, `EVENTBUS_PREFIX="a b"`},
		{"group with brace", nil, map[string]string{"EVENTBUS_GROUP": "{g}"}, `EVENTBUS_GROUP="{g}"`},
		{"consumer with space", []string{"--consumer", "c 1"}, nil, `--consumer="c 1"`},
		{"sentinel without master", nil, map[string]string{"EVENTBUS_SENTINEL_ADDRS": "127.0.0.1:26379"}, `EVENTBUS_SENTINEL_MASTER=""`},
		{"sentinel bad addr", nil, map[string]string{"EVENTBUS_SENTINEL_ADDRS": "nohost"}, `EVENTBUS_SENTINEL_ADDRS="nohost"`},
		{"cluster bad addr", []string{"--cluster-addrs", "a:1,b"}, nil, `--cluster-addrs="a:1,b"`},
		{"cluster and sentinel", nil, map[string]string{"EVENTBUS_CLUSTER_ADDRS": "a:1", "EVENTBUS_SENTINEL_ADDRS": "b:2", "EVENTBUS_SENTINEL_MASTER": "m"}, `EVENTBUS_CLUSTER_ADDRS="a:1"`},
		{"log level", nil, map[string]string{"EVENTBUS_LOG_LEVEL": "loud"}, `EVENTBUS_LOG_LEVEL="loud"`},
		{"redis url bad port keeps the password", nil, map[string]string{"REDIS_URL": "redis://:secret@host:abc/0"}, `REDIS_URL=`},
		{"block under a millisecond", nil, map[string]string{"EVENTBUS_BLOCK": "500us"}, `EVENTBUS_BLOCK="500us"`},
		{"block zero", []string{"--block", "0"}, nil, `--block="0"`},
		{"http port not a number", nil, map[string]string{"EVENTBUS_HTTP_ADDR": ":http-x"}, `EVENTBUS_HTTP_ADDR=":http-x"`},
		{"sentinel master alone", nil, map[string]string{"EVENTBUS_SENTINEL_MASTER": "m"}, `EVENTBUS_SENTINEL_MASTER="m"`},
		{"api key unknown role", nil, map[string]string{"EVENTBUS_API_KEYS": "secret-token-12345=t:pubisher"}, `EVENTBUS_API_KEYS (value hidden)`},
		{"max event size", nil, map[string]string{"EVENTBUS_MAX_EVENT_SIZE": "1MB"}, `EVENTBUS_MAX_EVENT_SIZE="1MB"`},
		{"idempotency window", []string{"--idempotency-window", "0"}, nil, `--idempotency-window="0"`},
		{"jwt secret short", nil, map[string]string{"EVENTBUS_JWT_SECRET": "secret"}, `EVENTBUS_JWT_SECRET (value hidden)`},
		{"api keys", nil, map[string]string{"EVENTBUS_API_KEYS": "secret-token-12345=tenant"}, `EVENTBUS_API_KEYS (value hidden)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := load(tt.args, tt.env)
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("err = %v, want ErrInvalid", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %q, want it to contain %s", err, tt.want)
			}
			if strings.Contains(err.Error(), "secret") {
				t.Errorf("err leaks the password: %q", err)
			}
		})
	}
}

func TestLoadAcceptedForms(t *testing.T) {
	tests := []struct {
		env   map[string]string
		check func(Settings) bool
	}{
		{map[string]string{"EVENTBUS_BLOCK": "2s"}, func(s Settings) bool { return s.Block == 2*time.Second }},
		{map[string]string{"EVENTBUS_RETENTION_MAIN": "7d"}, func(s Settings) bool { return s.Retention.Main == 7*24*time.Hour }},
		{map[string]string{"EVENTBUS_RETENTION_REPLAY": "90m"}, func(s Settings) bool { return s.Retention.Replay == 90*time.Minute }},
		{map[string]string{"REDIS_URL": "rediss://user:pw@example.com:6380/2"}, func(s Settings) bool { return s.RedisURL == "rediss://user:pw@example.com:6380/2" }},
		{map[string]string{"EVENTBUS_CLUSTER_ADDRS": "127.0.0.1:7000, 127.0.0.1:7001"}, func(s Settings) bool { return len(s.ClusterAddrs) == 2 }},
	}
	for _, tt := range tests {
		s, err := load(nil, tt.env)
		if err != nil || !tt.check(s) {
			t.Errorf("env %v: settings %+v, err %v", tt.env, s, err)
		}
	}
}

func TestRedisClientKinds(t *testing.T) {
	s, err := load(nil, map[string]string{"EVENTBUS_CLUSTER_ADDRS": "127.0.0.1:7000", "REDIS_URL": "redis://127.0.0.1:6379/3"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.RedisClient(); !errors.Is(err, ErrInvalid) {
		t.Errorf("cluster with db 3: err = %v, want ErrInvalid", err)
	}
	s, err = load(nil, map[string]string{"EVENTBUS_SENTINEL_ADDRS": "127.0.0.1:26379", "EVENTBUS_SENTINEL_MASTER": "m"})
	if err != nil {
		t.Fatal(err)
	}
	c, err := s.RedisClient()
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
}

func TestSentinelClientReachesTheMaster(t *testing.T) {
	master := redistest.Start(t)
	sentinel := redistest.StartSentinel(t, master.Addr(), "events")
	s, err := load(nil, map[string]string{"EVENTBUS_SENTINEL_ADDRS": sentinel, "EVENTBUS_SENTINEL_MASTER": "events"})
	if err != nil {
		t.Fatal(err)
	}
	c, err := s.RedisClient()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	bus, err := eventbus.New(s.BusConfig(c, nil))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := bus.SetUp(ctx); err != nil {
		t.Fatalf("set-up through Sentinel: %v", err)
	}
	ev, err := eventbus.NewEvent("approval.item.approved", "t", "u", nil)
	if err != nil {
		t.Fatal(err)
	}
	p, err := bus.Publish(ctx, ev)
	if err != nil {
		t.Fatalf("publish through Sentinel: %v", err)
	}
	if n := master.Client(t).XLen(ctx, "hyvve:events:main").Val(); n != 1 {
		t.Errorf("master holds %d entries, want 1 (%s)", n, p.StreamID)
	}
}
