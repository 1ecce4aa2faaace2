package eventbus

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// Defaults of Config. They follow the platform's contract (SPEC §1).
const (
	DefaultPrefix          = "hyvve"
	DefaultGroup           = "hyvve-platform"
	DefaultBlock           = 5 * time.Second
	DefaultBatchSize       = 10
	DefaultMainRetention   = 30 * 24 * time.Hour
	DefaultDLQRetention    = 90 * 24 * time.Hour
	DefaultReplayRetention = 24 * time.Hour
	DefaultJanitorInterval = 5 * time.Minute
)

// Retention is how long each stream keeps its entries. Trimming is by time:
// stream ids are millisecond timestamps.
type Retention struct {
	Main   time.Duration // default 30 days
	DLQ    time.Duration // default 90 days
	Replay time.Duration // default 24 hours
}

// Config configures a Bus. The zero value of every field but Redis means its
// documented default.
type Config struct {
	// Redis is the client to use: a *redis.Client, a Sentinel failover
	// client or a *redis.ClusterClient. Required. The Bus installs a hook on
	// it (circuit breaker) and does not close it.
	Redis redis.UniversalClient
	// Cluster selects the Redis Cluster key layout: every key is
	// hash-tagged with the prefix so that atomic steps stay in one slot.
	// Set it when Redis is a *redis.ClusterClient.
	Cluster bool
	// Prefix of every key. Default "hyvve".
	Prefix string
	// Group is the consumer group. Default "hyvve-platform".
	Group string
	// Consumer is this process's consumer name in the group. Default the
	// HOSTNAME environment variable, else "consumer-<pid>".
	Consumer string
	// Block is how long one read waits for new events. Default 5s.
	Block time.Duration
	// BatchSize is how many entries one read fetches. Default 10.
	BatchSize int
	// Retention per stream.
	Retention Retention
	// JanitorInterval is how often retention is enforced on every stream,
	// including idle ones. Default 5 minutes.
	JanitorInterval time.Duration
	// EmbeddedRedis tells the bus that Redis is the in-process dev server,
	// which cannot report consumer-group lag truthfully: lag is reported as
	// unknown.
	EmbeddedRedis bool
	// Logger receives structured logs. Default: discard.
	Logger *slog.Logger
}

// ErrConfig is wrapped by every configuration error.
var ErrConfig = errors.New("eventbus: invalid configuration")

func (c *Config) setDefaults() {
	if c.Prefix == "" {
		c.Prefix = DefaultPrefix
	}
	if c.Group == "" {
		c.Group = DefaultGroup
	}
	if c.Consumer == "" {
		c.Consumer = DefaultConsumerName()
	}
	if c.Block == 0 {
		c.Block = DefaultBlock
	}
	if c.BatchSize == 0 {
		c.BatchSize = DefaultBatchSize
	}
	if c.Retention.Main == 0 {
		c.Retention.Main = DefaultMainRetention
	}
	if c.Retention.DLQ == 0 {
		c.Retention.DLQ = DefaultDLQRetention
	}
	if c.Retention.Replay == 0 {
		c.Retention.Replay = DefaultReplayRetention
	}
	if c.JanitorInterval == 0 {
		c.JanitorInterval = DefaultJanitorInterval
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Validate reports the first invalid field, naming it and its value.
func (c *Config) Validate() error {
	bad := func(field string, v any, why string) error {
		return fmt.Errorf("%w: %s=%v: %s", ErrConfig, field, v, why)
	}
	switch {
	case c.Redis == nil:
		return fmt.Errorf("%w: Redis client is required", ErrConfig)
	case c.Block < 0:
		return bad("Block", c.Block, "must not be negative")
	case c.BatchSize < 1:
		return bad("BatchSize", c.BatchSize, "must be at least 1")
	case c.Retention.Main < 0:
		return bad("Retention.Main", c.Retention.Main, "must be positive")
	case c.Retention.DLQ < 0:
		return bad("Retention.DLQ", c.Retention.DLQ, "must be positive")
	case c.Retention.Replay < 0:
		return bad("Retention.Replay", c.Retention.Replay, "must be positive")
	case c.JanitorInterval < 0:
		return bad("JanitorInterval", c.JanitorInterval, "must be positive")
	}
	for field, v := range map[string]string{"Prefix": c.Prefix, "Group": c.Group, "Consumer": c.Consumer} {
		if err := ValidateName(v); err != nil {
			return bad(field, strconv.Quote(v), err.Error())
		}
	}
	return nil
}

// ValidateName checks a prefix, group or consumer name: at most 200 bytes,
// no spaces, control characters or braces (braces are hash tags in Redis
// Cluster key names).
func ValidateName(s string) error {
	if len(s) > 200 {
		return errors.New("longer than 200 bytes")
	}
	for _, r := range s {
		if r <= ' ' || r == 0x7f || r == '{' || r == '}' {
			return errors.New("must not contain spaces, control characters or braces")
		}
	}
	return nil
}

// DefaultConsumerName is HOSTNAME from the environment, else
// "consumer-<pid>".
func DefaultConsumerName() string {
	if h := os.Getenv("HOSTNAME"); h != "" {
		return h
	}
	return "consumer-" + strconv.Itoa(os.Getpid())
}
