// Package config reads the server's settings from flags and the
// environment (flags win) and turns them into a Redis client and an
// eventbus.Config. A bad value stops start-up with an error naming the
// setting and the value.
package config

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hyvve/eventbus"
	"github.com/hyvve/eventbus/internal/auth"
)

// ErrInvalid is wrapped by every configuration error.
var ErrInvalid = errors.New("invalid configuration")

// Settings are the server's settings after parsing.
type Settings struct {
	RedisURL       string
	SentinelAddrs  []string
	SentinelMaster string
	ClusterAddrs   []string
	Prefix         string
	Group          string
	Consumer       string
	Block          time.Duration
	BatchSize      int
	Retention      eventbus.Retention
	HTTPAddr       string
	LogLevel       slog.Level
	MaxEventSize   int
	IdempotencyTTL time.Duration
	PublishTimeout time.Duration
	// Partitions is the number of partitions of the main stream.
	Partitions int
	// PreviousPartitions is the partition count of a layout being left
	// (0: none); it is read until drained.
	PreviousPartitions int
	// MinReplicas is how many replicas WAIT must confirm before a publish
	// is acknowledged (0: no WAIT).
	MinReplicas int
	// ReplicaTimeout bounds that WAIT.
	ReplicaTimeout time.Duration
	// DLQBudget is the number of dead letters the DLQ is sized for (the
	// health report warns at 80 % and turns unhealthy at 95 %).
	DLQBudget int
	// MaxRedrives is how often one dead letter may be redriven.
	MaxRedrives int
	// ReplayRunners is how many replay jobs this process runs at once (0:
	// none; other instances run them).
	ReplayRunners int
	// ReplayLease is how long a dead runner's job waits before another
	// instance takes it over.
	ReplayLease time.Duration
	// ReplayJobRetention is how long ended replay jobs are kept.
	ReplayJobRetention time.Duration
	HTTP               HTTPLimits
	JWTSecret          string
	// JWTAllowPlatform lets JWTs of tenant "*" act for every tenant.
	JWTAllowPlatform bool
	// JWTAudience and JWTIssuer, when set, must match the aud and iss
	// claims of every JWT.
	JWTAudience string
	JWTIssuer   string
	APIKeys     map[string]auth.Principal
	// HealthDetails shows the full health report (stream names, Redis
	// error text) to anonymous callers too.
	HealthDetails bool
	// MetricsPublic serves GET /metrics without a token (for scrapers
	// inside a trusted network); by default it needs a valid token.
	MetricsPublic bool
}

// HTTPLimits bound the HTTP server's connections and requests.
type HTTPLimits struct {
	// ReadTimeout bounds reading one request, headers and body.
	ReadTimeout time.Duration
	// WriteTimeout bounds a request from the end of its headers to the end
	// of the response.
	WriteTimeout time.Duration
	// IdleTimeout closes a keep-alive connection idle this long.
	IdleTimeout time.Duration
	// MaxHeaderBytes bounds the request line and headers (431 over it).
	MaxHeaderBytes int
	// MaxRequests bounds the requests served at once, health probes aside
	// (503 over it).
	MaxRequests int
	// MaxBodyMemory bounds the bytes of request bodies held at once (503
	// while full; 413 for a body larger than all of it).
	MaxBodyMemory int64
	// MaxConnections bounds the client connections open at once (extra
	// ones are closed at once).
	MaxConnections int
	// MaxStreams bounds the live tails (GET /v1/events/stream) open at
	// once, in a pool apart from MaxRequests (503 over it).
	MaxStreams int
}

// setting is one row of the configuration table: an environment variable,
// its flag and its default.
type setting struct {
	env, flag, def, usage string
	secret                bool // never echoed in errors
	boolean               bool // a bare --flag means true
	value                 *string
}

// boolFlag is a string-valued flag that may be given bare (--flag), as
// the flag package allows for booleans; the value is validated later.
type boolFlag struct{ v *string }

func (b boolFlag) String() string {
	if b.v == nil {
		return ""
	}
	return *b.v
}
func (b boolFlag) Set(s string) error { *b.v = s; return nil }
func (b boolFlag) IsBoolFlag() bool   { return true }

// table lists every setting in the order of the README's table.
func table() []*setting {
	return []*setting{
		{env: "REDIS_URL", flag: "redis-url", def: "redis://127.0.0.1:6379/0", usage: "Redis URL: redis:// or rediss:// (TLS), user:password@, /db"},
		{env: "EVENTBUS_SENTINEL_ADDRS", flag: "sentinel-addrs", usage: "comma-separated Sentinel host:port list (enables Sentinel)"},
		{env: "EVENTBUS_SENTINEL_MASTER", flag: "sentinel-master", usage: "Sentinel master name (required with sentinel-addrs)"},
		{env: "EVENTBUS_CLUSTER_ADDRS", flag: "cluster-addrs", usage: "comma-separated Redis Cluster host:port seed list (enables Cluster)"},
		{env: "EVENTBUS_PREFIX", flag: "prefix", def: eventbus.DefaultPrefix, usage: "key prefix"},
		{env: "EVENTBUS_GROUP", flag: "group", def: eventbus.DefaultGroup, usage: "consumer group"},
		{env: "EVENTBUS_CONSUMER", flag: "consumer", usage: "consumer name (default HOSTNAME, else consumer-<pid>)"},
		{env: "EVENTBUS_BLOCK", flag: "block", def: "5000ms", usage: "read block time (duration, or integer milliseconds)"},
		{env: "EVENTBUS_BATCH_SIZE", flag: "batch-size", def: "10", usage: "entries per read (1-10000)"},
		{env: "EVENTBUS_RETENTION_MAIN", flag: "retention-main", def: "30d", usage: "main stream retention (e.g. 30d, 720h)"},
		{env: "EVENTBUS_RETENTION_DLQ", flag: "retention-dlq", def: "90d", usage: "DLQ retention"},
		{env: "EVENTBUS_RETENTION_REPLAY", flag: "retention-replay", def: "24h", usage: "replay stream retention"},
		{env: "EVENTBUS_RETENTION_AUDIT", flag: "retention-audit", def: "365d", usage: "audit log retention"},
		{env: "EVENTBUS_DLQ_BUDGET", flag: "dlq-budget", def: "10000", usage: "dead letters the DLQ is sized for: health warns at 80 %, unhealthy at 95 %"},
		{env: "EVENTBUS_MAX_REDRIVES", flag: "max-redrives", def: "3", usage: "how often one dead letter may be redriven (1-1000)"},
		{env: "EVENTBUS_REPLAY_RUNNERS", flag: "replay-runners", def: "2", usage: "replay jobs this instance runs at once (0: none, other instances run them; at most 64)"},
		{env: "EVENTBUS_REPLAY_LEASE", flag: "replay-lease", def: "5s", usage: "a replay job whose runner died is taken over after this (200ms to 5m)"},
		{env: "EVENTBUS_REPLAY_JOB_RETENTION", flag: "replay-job-retention", def: "30d", usage: "how long ended replay jobs are kept (at least 1m)"},
		{env: "EVENTBUS_HTTP_ADDR", flag: "http-addr", def: ":8080", usage: "HTTP listen address"},
		{env: "EVENTBUS_LOG_LEVEL", flag: "log-level", def: "info", usage: "debug, info, warn or error"},
		{env: "EVENTBUS_MAX_EVENT_SIZE", flag: "max-event-size", def: "1048576", usage: "largest encoded event envelope in bytes"},
		{env: "EVENTBUS_IDEMPOTENCY_WINDOW", flag: "idempotency-window", def: "24h", usage: "how long caller-supplied event ids are remembered"},
		{env: "EVENTBUS_PUBLISH_TIMEOUT", flag: "publish-timeout", def: "2s", usage: "bound of one publish call (duration from 1ms to 60s)"},
		{env: "EVENTBUS_PARTITIONS", flag: "partitions", def: "1", usage: "partitions of the main stream (1 to 256; 1: the platform's exact key names); see README, Partitions"},
		{env: "EVENTBUS_PREVIOUS_PARTITIONS", flag: "previous-partitions", def: "0", usage: "partition count of a layout being left, read until drained (0: none)"},
		{env: "EVENTBUS_MIN_REPLICAS", flag: "min-replicas", def: "0", usage: "replicas WAIT must confirm before a publish is acknowledged (0 to 16; 0: no WAIT)"},
		{env: "EVENTBUS_REPLICA_TIMEOUT", flag: "replica-timeout", def: "100ms", usage: "bound of that WAIT (1ms up to, not including, the publish timeout)"},
		{env: "EVENTBUS_HTTP_READ_TIMEOUT", flag: "http-read-timeout", def: "30s", usage: "bound of reading one request, headers and body"},
		{env: "EVENTBUS_HTTP_WRITE_TIMEOUT", flag: "http-write-timeout", def: "30s", usage: "bound of one request from its headers to the end of the response"},
		{env: "EVENTBUS_HTTP_IDLE_TIMEOUT", flag: "http-idle-timeout", def: "60s", usage: "idle keep-alive connections are closed after this"},
		{env: "EVENTBUS_HTTP_MAX_HEADER_BYTES", flag: "http-max-header-bytes", def: "65536", usage: "largest request line and headers in bytes (431 over it)"},
		{env: "EVENTBUS_HTTP_MAX_REQUESTS", flag: "http-max-requests", def: "256", usage: "requests served at once, health probes aside (503 over it)"},
		{env: "EVENTBUS_HTTP_MAX_CONNECTIONS", flag: "http-max-connections", def: "10000", usage: "client connections open at once; more are closed at once (keep below ulimit -n)"},
		{env: "EVENTBUS_HTTP_MAX_STREAMS", flag: "http-max-streams", def: "64", usage: "live tails (GET /v1/events/stream) open at once, apart from the request pool (503 over it)"},
		{env: "EVENTBUS_HTTP_MAX_BODY_MEMORY", flag: "http-max-body-memory", def: "67108864", usage: "bytes of request bodies held at once (503 while full)"},
		{env: "EVENTBUS_JWT_SECRET", flag: "jwt-secret", usage: "HS256 secret shared with the platform (enables JWT bearer tokens)", secret: true},
		{env: "EVENTBUS_JWT_ALLOW_PLATFORM", flag: "jwt-allow-platform", def: "false", usage: "let JWTs of tenant * act for every tenant", boolean: true},
		{env: "EVENTBUS_JWT_AUDIENCE", flag: "jwt-audience", usage: "required aud claim of JWTs (empty: not checked)"},
		{env: "EVENTBUS_JWT_ISSUER", flag: "jwt-issuer", usage: "required iss claim of JWTs (empty: not checked)"},
		{env: "EVENTBUS_API_KEYS", flag: "api-keys", usage: "comma-separated token=tenantId:role API keys (tenant * = all tenants)", secret: true},
		{env: "EVENTBUS_HEALTH_DETAILS", flag: "health-details", def: "false", usage: "show the full health report (names, error text) to anonymous callers", boolean: true},
		{env: "EVENTBUS_METRICS_PUBLIC", flag: "metrics-public", def: "false", usage: "serve GET /metrics without a token (scrapers inside a trusted network)", boolean: true},
	}
}

// Load registers the settings on fs, parses args and reads getenv for
// settings not given as flags.
func Load(fs *flag.FlagSet, args []string, getenv func(string) string) (Settings, error) {
	rows := table()
	for _, r := range rows {
		r.value = new(string)
		usage := fmt.Sprintf("%s [env %s] (default %q)", r.usage, r.env, r.def)
		if r.boolean {
			fs.Var(boolFlag{r.value}, r.flag, usage)
			continue
		}
		fs.StringVar(r.value, r.flag, "", usage)
	}
	if err := fs.Parse(args); err != nil {
		return Settings{}, err
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	get := map[string]*setting{}
	for _, r := range rows {
		if !given[r.flag] {
			if v := getenv(r.env); v != "" {
				*r.value = v
			} else {
				*r.value = r.def
			}
		}
		get[r.flag] = r
	}
	name := func(r *setting) string {
		if given[r.flag] {
			return "--" + r.flag
		}
		return r.env
	}
	bad := func(flagName, why string) error {
		r := get[flagName]
		v := *r.value
		if flagName == "redis-url" {
			v = redactURL(v)
		}
		if r.secret {
			return fmt.Errorf("%w: %s (value hidden): %s", ErrInvalid, name(r), why)
		}
		return fmt.Errorf("%w: %s=%q: %s", ErrInvalid, name(r), v, why)
	}
	val := func(flagName string) string { return strings.TrimSpace(*get[flagName].value) }

	var s Settings
	var err error
	s.RedisURL = val("redis-url")
	if _, err = redis.ParseURL(s.RedisURL); err != nil {
		// The parser's message repeats the URL, password included.
		return s, bad("redis-url", "want redis://[user:password@]host:port[/db] or rediss://...")
	}
	if s.SentinelAddrs, err = addrList(val("sentinel-addrs")); err != nil {
		return s, bad("sentinel-addrs", err.Error())
	}
	s.SentinelMaster = val("sentinel-master")
	if len(s.SentinelAddrs) > 0 && s.SentinelMaster == "" {
		return s, bad("sentinel-master", "required when sentinel addresses are set")
	}
	if len(s.SentinelAddrs) == 0 && s.SentinelMaster != "" {
		return s, bad("sentinel-master", "set, but no sentinel addresses (EVENTBUS_SENTINEL_ADDRS) to ask")
	}
	if s.ClusterAddrs, err = addrList(val("cluster-addrs")); err != nil {
		return s, bad("cluster-addrs", err.Error())
	}
	if len(s.ClusterAddrs) > 0 && len(s.SentinelAddrs) > 0 {
		return s, bad("cluster-addrs", "cannot be combined with sentinel addresses")
	}
	s.Prefix, s.Group, s.Consumer = val("prefix"), val("group"), val("consumer")
	for _, f := range []string{"prefix", "group", "consumer"} {
		if val(f) == "" && f != "consumer" {
			return s, bad(f, "must not be empty")
		}
		if err := eventbus.ValidateName(val(f)); err != nil {
			return s, bad(f, err.Error())
		}
	}
	if s.Block, err = parseDuration(val("block"), time.Millisecond); err != nil || s.Block < time.Millisecond {
		return s, bad("block", "want a duration of at least 1ms such as 5s, or an integer of milliseconds")
	}
	if s.BatchSize, err = strconv.Atoi(val("batch-size")); err != nil || s.BatchSize < 1 || s.BatchSize > 10000 {
		return s, bad("batch-size", "want an integer from 1 to 10000")
	}
	for _, rt := range []struct {
		flag string
		dst  *time.Duration
	}{
		{"retention-main", &s.Retention.Main},
		{"retention-dlq", &s.Retention.DLQ},
		{"retention-replay", &s.Retention.Replay},
		{"retention-audit", &s.Retention.Audit},
	} {
		d, err := parseDuration(val(rt.flag), 0)
		if err != nil || d < time.Minute {
			return s, bad(rt.flag, "want a duration of at least 1m such as 30d or 720h")
		}
		*rt.dst = d
	}
	if s.DLQBudget, err = strconv.Atoi(val("dlq-budget")); err != nil || s.DLQBudget < 1 || s.DLQBudget > 1_000_000_000 {
		return s, bad("dlq-budget", "want an integer number of entries from 1 to 1000000000")
	}
	if s.MaxRedrives, err = strconv.Atoi(val("max-redrives")); err != nil || s.MaxRedrives < 1 || s.MaxRedrives > 1000 {
		return s, bad("max-redrives", "want an integer from 1 to 1000")
	}
	if s.ReplayRunners, err = strconv.Atoi(val("replay-runners")); err != nil || s.ReplayRunners < 0 || s.ReplayRunners > 64 {
		return s, bad("replay-runners", "want an integer from 0 to 64")
	}
	if s.ReplayLease, err = parseDuration(val("replay-lease"), 0); err != nil || s.ReplayLease < 200*time.Millisecond || s.ReplayLease > 5*time.Minute {
		return s, bad("replay-lease", "want a duration from 200ms to 5m")
	}
	if s.ReplayJobRetention, err = parseDuration(val("replay-job-retention"), 0); err != nil || s.ReplayJobRetention < time.Minute {
		return s, bad("replay-job-retention", "want a duration of at least 1m such as 30d or 720h")
	}
	s.HTTPAddr = val("http-addr")
	if _, port, err := net.SplitHostPort(s.HTTPAddr); err != nil || !validPort(port) {
		return s, bad("http-addr", "want host:port or :port with a port from 0 to 65535")
	}
	if err := s.LogLevel.UnmarshalText([]byte(val("log-level"))); err != nil {
		return s, bad("log-level", "want debug, info, warn or error")
	}
	if s.MaxEventSize, err = strconv.Atoi(val("max-event-size")); err != nil || s.MaxEventSize < 1024 || s.MaxEventSize > 64<<20 {
		return s, bad("max-event-size", "want an integer number of bytes from 1024 to 67108864")
	}
	if s.IdempotencyTTL, err = parseDuration(val("idempotency-window"), 0); err != nil || s.IdempotencyTTL < time.Second {
		return s, bad("idempotency-window", "want a duration of at least 1s such as 24h")
	}
	if s.PublishTimeout, err = parseDuration(val("publish-timeout"), 0); err != nil || s.PublishTimeout < time.Millisecond || s.PublishTimeout > time.Minute {
		return s, bad("publish-timeout", "want a duration from 1ms to 60s such as 2s")
	}
	if s.Partitions, err = strconv.Atoi(val("partitions")); err != nil || s.Partitions < 1 || s.Partitions > 256 {
		return s, bad("partitions", "want an integer from 1 to 256")
	}
	if s.PreviousPartitions, err = strconv.Atoi(val("previous-partitions")); err != nil || s.PreviousPartitions < 0 || s.PreviousPartitions > 256 {
		return s, bad("previous-partitions", "want an integer from 0 (none) to 256")
	}
	if s.MinReplicas, err = strconv.Atoi(val("min-replicas")); err != nil || s.MinReplicas < 0 || s.MinReplicas > 16 {
		return s, bad("min-replicas", "want an integer from 0 to 16")
	}
	if s.ReplicaTimeout, err = parseDuration(val("replica-timeout"), 0); err != nil || s.ReplicaTimeout < time.Millisecond || s.ReplicaTimeout >= s.PublishTimeout {
		return s, bad("replica-timeout", fmt.Sprintf("want a duration from 1ms to under the publish timeout (%v) such as 100ms", s.PublishTimeout))
	}
	for _, ht := range []struct {
		flag string
		dst  *time.Duration
	}{
		{"http-read-timeout", &s.HTTP.ReadTimeout},
		{"http-write-timeout", &s.HTTP.WriteTimeout},
		{"http-idle-timeout", &s.HTTP.IdleTimeout},
	} {
		d, err := parseDuration(val(ht.flag), 0)
		if err != nil || d < 100*time.Millisecond || d > time.Hour {
			return s, bad(ht.flag, "want a duration from 100ms to 1h such as 30s")
		}
		*ht.dst = d
	}
	if s.HTTP.WriteTimeout <= s.PublishTimeout {
		return s, bad("http-write-timeout", fmt.Sprintf("must be longer than the publish timeout (%v), or publish answers could not be written", s.PublishTimeout))
	}
	if s.HTTP.MaxHeaderBytes, err = strconv.Atoi(val("http-max-header-bytes")); err != nil || s.HTTP.MaxHeaderBytes < 4096 || s.HTTP.MaxHeaderBytes > 1<<20 {
		return s, bad("http-max-header-bytes", "want an integer number of bytes from 4096 to 1048576")
	}
	if s.HTTP.MaxRequests, err = strconv.Atoi(val("http-max-requests")); err != nil || s.HTTP.MaxRequests < 1 || s.HTTP.MaxRequests > 100000 {
		return s, bad("http-max-requests", "want an integer from 1 to 100000")
	}
	if s.HTTP.MaxConnections, err = strconv.Atoi(val("http-max-connections")); err != nil || s.HTTP.MaxConnections < 1 || s.HTTP.MaxConnections > 1000000 {
		return s, bad("http-max-connections", "want an integer from 1 to 1000000")
	}
	if s.HTTP.MaxStreams, err = strconv.Atoi(val("http-max-streams")); err != nil || s.HTTP.MaxStreams < 1 || s.HTTP.MaxStreams > 100000 {
		return s, bad("http-max-streams", "want an integer from 1 to 100000")
	}
	// The budget must hold at least one single-event request (the event
	// plus room for whitespace).
	minBody := int64(s.MaxEventSize) + 64<<10
	if s.HTTP.MaxBodyMemory, err = strconv.ParseInt(val("http-max-body-memory"), 10, 64); err != nil || s.HTTP.MaxBodyMemory < minBody || s.HTTP.MaxBodyMemory > 1<<40 {
		return s, bad("http-max-body-memory", fmt.Sprintf("want an integer number of bytes of at least %d (the largest event plus 64 KiB)", minBody))
	}
	s.JWTSecret = *get["jwt-secret"].value
	if s.JWTAllowPlatform, err = strconv.ParseBool(val("jwt-allow-platform")); err != nil {
		return s, bad("jwt-allow-platform", "want true or false")
	}
	s.JWTAudience, s.JWTIssuer = val("jwt-audience"), val("jwt-issuer")
	if s.HealthDetails, err = strconv.ParseBool(val("health-details")); err != nil {
		return s, bad("health-details", "want true or false")
	}
	if s.MetricsPublic, err = strconv.ParseBool(val("metrics-public")); err != nil {
		return s, bad("metrics-public", "want true or false")
	}
	if s.JWTSecret != "" && len(s.JWTSecret) < 16 {
		return s, bad("jwt-secret", "shorter than 16 bytes")
	}
	if s.APIKeys, err = auth.ParseAPIKeys(val("api-keys")); err != nil {
		return s, bad("api-keys", err.Error())
	}
	return s, nil
}

// parseDuration accepts Go durations, a "d" suffix for days, and, when
// unit is not 0, a bare integer in that unit.
func parseDuration(v string, unit time.Duration) (time.Duration, error) {
	if unit != 0 {
		if n, err := strconv.ParseInt(v, 10, 64); err == nil {
			return time.Duration(n) * unit, nil
		}
	}
	if days, ok := strings.CutSuffix(v, "d"); ok {
		n, err := strconv.ParseFloat(days, 64)
		if err != nil {
			return 0, err
		}
		return time.Duration(n * float64(24*time.Hour)), nil
	}
	return time.ParseDuration(v)
}

func validPort(p string) bool {
	n, err := strconv.Atoi(p)
	return err == nil && n >= 0 && n <= 65535
}

func addrList(v string) ([]string, error) {
	if v == "" {
		return nil, nil
	}
	var out []string
	for _, a := range strings.Split(v, ",") {
		a = strings.TrimSpace(a)
		if _, port, err := net.SplitHostPort(a); err != nil || !validPort(port) {
			return nil, fmt.Errorf("address %q: want host:port", a)
		}
		out = append(out, a)
	}
	return out, nil
}

func redactURL(v string) string {
	u, err := url.Parse(v)
	if err != nil {
		return "(unparseable URL)"
	}
	return u.Redacted()
}

// Fail-fast client settings: a dead Redis answers ErrUnavailable in well
// under a second instead of after go-redis's default 5 dial attempts per
// command attempt. MaxRetries 1 still rides over one dropped connection
// (the bus marks its writes NoRetry itself, so only reads are re-sent).
//
// contextTimeout makes go-redis honour the caller's context deadline on
// socket reads and writes (without it a paused Redis holds every call for
// readTimeout, whatever the caller's budget). readTimeout and writeTimeout
// bound calls made without a deadline; poolTimeout bounds the wait for a
// free connection.
const (
	dialerRetries      = 2
	dialerRetryTimeout = 50 * time.Millisecond
	maxRetries         = 1
	dialTimeout        = 2 * time.Second
	contextTimeout     = true
	readTimeout        = 3 * time.Second
	writeTimeout       = 3 * time.Second
	poolTimeout        = 4 * time.Second
)

// ClusterPoolSize is the connection pool per Redis Cluster node for a bus
// of partitions (and previous partitions): go-redis's default of 10 per
// CPU plus two blocking readers (a consumer's, the live tail's) per
// partition the bus holds.
func ClusterPoolSize(partitions, previous int) int {
	return 10*runtime.GOMAXPROCS(0) + 2*(partitions+previous+1)
}

// RedisClient builds the client the settings describe: a single node from
// REDIS_URL, a Sentinel failover client, or a Cluster client. Credentials,
// TLS and the database number always come from REDIS_URL.
func (s Settings) RedisClient() (redis.UniversalClient, error) {
	opt, err := redis.ParseURL(s.RedisURL)
	if err != nil {
		return nil, fmt.Errorf("%w: REDIS_URL: %v", ErrInvalid, err)
	}
	switch {
	case len(s.ClusterAddrs) > 0:
		if opt.DB != 0 {
			return nil, fmt.Errorf("%w: REDIS_URL: Redis Cluster has only database 0, got %d", ErrInvalid, opt.DB)
		}
		return redis.NewClusterClient(&redis.ClusterOptions{
			Addrs: s.ClusterAddrs, Username: opt.Username, Password: opt.Password, TLSConfig: opt.TLSConfig,
			// Each consumer (and the live tail) holds one blocking read per
			// partition on the node that serves it; one node may serve them
			// all. go-redis's default (10 per CPU) would leave none for
			// publishing and acknowledging with many partitions.
			PoolSize:      ClusterPoolSize(s.Partitions, s.PreviousPartitions),
			DialerRetries: dialerRetries, DialerRetryTimeout: dialerRetryTimeout, MaxRetries: maxRetries, DialTimeout: dialTimeout,
			ContextTimeoutEnabled: contextTimeout, ReadTimeout: readTimeout, WriteTimeout: writeTimeout, PoolTimeout: poolTimeout,
		}), nil
	case len(s.SentinelAddrs) > 0:
		return redis.NewFailoverClient(&redis.FailoverOptions{
			MasterName: s.SentinelMaster, SentinelAddrs: s.SentinelAddrs,
			Username: opt.Username, Password: opt.Password, DB: opt.DB, TLSConfig: opt.TLSConfig,
			DialerRetries: dialerRetries, DialerRetryTimeout: dialerRetryTimeout, MaxRetries: maxRetries, DialTimeout: dialTimeout,
			ContextTimeoutEnabled: contextTimeout, ReadTimeout: readTimeout, WriteTimeout: writeTimeout, PoolTimeout: poolTimeout,
		}), nil
	default:
		opt.DialerRetries, opt.DialerRetryTimeout, opt.MaxRetries, opt.DialTimeout = dialerRetries, dialerRetryTimeout, maxRetries, dialTimeout
		opt.ContextTimeoutEnabled, opt.ReadTimeout, opt.WriteTimeout, opt.PoolTimeout = contextTimeout, readTimeout, writeTimeout, poolTimeout
		return redis.NewClient(opt), nil
	}
}

// BusConfig returns the eventbus.Config for client.
func (s Settings) BusConfig(client redis.UniversalClient, logger *slog.Logger) eventbus.Config {
	return eventbus.Config{
		Redis:     client,
		Cluster:   len(s.ClusterAddrs) > 0,
		Prefix:    s.Prefix,
		Group:     s.Group,
		Consumer:  s.Consumer,
		Block:     s.Block,
		BatchSize: s.BatchSize,
		Retention: s.Retention,
		Logger:    logger,

		MaxEventSize:       s.MaxEventSize,
		IdempotencyWindow:  s.IdempotencyTTL,
		PublishTimeout:     s.PublishTimeout,
		MinReplicas:        s.MinReplicas,
		Partitions:         s.Partitions,
		PreviousPartitions: s.PreviousPartitions,
		ReplicaTimeout:     s.ReplicaTimeout,
		DLQBudget:          s.DLQBudget,
		MaxRedrives:        s.MaxRedrives,
		ReplayRunners:      replayRunners(s.ReplayRunners),
		ReplayLease:        s.ReplayLease,
		ReplayJobRetention: s.ReplayJobRetention,
	}
}

// replayRunners maps the setting (0: none) to eventbus.Config's
// ReplayRunners (-1: none; 0 would mean the default).
func replayRunners(n int) int {
	if n == 0 {
		return -1
	}
	return n
}
