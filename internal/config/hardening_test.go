package config

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hyvve/eventbus/internal/redistest"
)

func TestLoadHardeningDefaults(t *testing.T) {
	s, err := load(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := HTTPLimits{ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second, IdleTimeout: 60 * time.Second,
		MaxHeaderBytes: 64 << 10, MaxRequests: 256, MaxBodyMemory: 64 << 20, MaxConnections: 10000, MaxStreams: 64}
	if s.HTTP != want {
		t.Errorf("HTTP limits = %+v, want %+v", s.HTTP, want)
	}
	if s.PublishTimeout != 2*time.Second || s.JWTAllowPlatform || s.JWTAudience != "" || s.JWTIssuer != "" || s.HealthDetails {
		t.Errorf("settings = %+v", s)
	}
	if got := s.BusConfig(nil, nil).PublishTimeout; got != 2*time.Second {
		t.Errorf("BusConfig PublishTimeout = %v", got)
	}
}

func TestLoadHardeningSettings(t *testing.T) {
	env := map[string]string{
		"EVENTBUS_PUBLISH_TIMEOUT":       "750ms",
		"EVENTBUS_HTTP_READ_TIMEOUT":     "5s",
		"EVENTBUS_HTTP_WRITE_TIMEOUT":    "6s",
		"EVENTBUS_HTTP_IDLE_TIMEOUT":     "7s",
		"EVENTBUS_HTTP_MAX_HEADER_BYTES": "8192",
		"EVENTBUS_HTTP_MAX_REQUESTS":     "9",
		"EVENTBUS_HTTP_MAX_BODY_MEMORY":  "10485760",
		"EVENTBUS_JWT_ALLOW_PLATFORM":    "true",
		"EVENTBUS_JWT_AUDIENCE":          "eventbus",
		"EVENTBUS_JWT_ISSUER":            "https://platform.example",
		"EVENTBUS_HEALTH_DETAILS":        "true",
	}
	s, err := load([]string{"--publish-timeout", "3s"}, env)
	if err != nil {
		t.Fatal(err)
	}
	want := HTTPLimits{ReadTimeout: 5 * time.Second, WriteTimeout: 6 * time.Second, IdleTimeout: 7 * time.Second,
		MaxHeaderBytes: 8192, MaxRequests: 9, MaxBodyMemory: 10 << 20, MaxConnections: 10000, MaxStreams: 64}
	if s.HTTP != want {
		t.Errorf("HTTP limits = %+v, want %+v", s.HTTP, want)
	}
	if s.PublishTimeout != 3*time.Second || !s.JWTAllowPlatform || s.JWTAudience != "eventbus" ||
		s.JWTIssuer != "https://platform.example" || !s.HealthDetails {
		t.Errorf("settings = %+v", s)
	}
	if got := s.BusConfig(nil, nil).PublishTimeout; got != 3*time.Second {
		t.Errorf("BusConfig PublishTimeout = %v", got)
	}
}

func TestBooleanSettingsMayBeBareFlags(t *testing.T) {
	s, err := load([]string{"--jwt-allow-platform", "--health-details"}, nil)
	if err != nil || !s.JWTAllowPlatform || !s.HealthDetails {
		t.Errorf("bare flags: %+v %v", s, err)
	}
	s, err = load([]string{"--jwt-allow-platform=false"}, map[string]string{"EVENTBUS_JWT_ALLOW_PLATFORM": "true"})
	if err != nil || s.JWTAllowPlatform {
		t.Errorf("--jwt-allow-platform=false over the environment: %+v %v", s, err)
	}
}

func TestLoadRejectsBadHardeningValues(t *testing.T) {
	tests := []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"EVENTBUS_PUBLISH_TIMEOUT": "0"}, `EVENTBUS_PUBLISH_TIMEOUT="0"`},
		{map[string]string{"EVENTBUS_PUBLISH_TIMEOUT": "-1s"}, `EVENTBUS_PUBLISH_TIMEOUT="-1s"`},
		{map[string]string{"EVENTBUS_PUBLISH_TIMEOUT": "2m"}, `EVENTBUS_PUBLISH_TIMEOUT="2m"`},
		{map[string]string{"EVENTBUS_PUBLISH_TIMEOUT": "soon"}, `EVENTBUS_PUBLISH_TIMEOUT="soon"`},
		{map[string]string{"EVENTBUS_HTTP_READ_TIMEOUT": "0s"}, `EVENTBUS_HTTP_READ_TIMEOUT="0s"`},
		{map[string]string{"EVENTBUS_HTTP_WRITE_TIMEOUT": "2h"}, `EVENTBUS_HTTP_WRITE_TIMEOUT="2h"`},
		{map[string]string{"EVENTBUS_HTTP_IDLE_TIMEOUT": "x"}, `EVENTBUS_HTTP_IDLE_TIMEOUT="x"`},
		{map[string]string{"EVENTBUS_HTTP_WRITE_TIMEOUT": "2s"}, `EVENTBUS_HTTP_WRITE_TIMEOUT="2s": must be longer than the publish timeout`},
		{map[string]string{"EVENTBUS_HTTP_MAX_HEADER_BYTES": "100"}, `EVENTBUS_HTTP_MAX_HEADER_BYTES="100"`},
		{map[string]string{"EVENTBUS_HTTP_MAX_REQUESTS": "0"}, `EVENTBUS_HTTP_MAX_REQUESTS="0"`},
		{map[string]string{"EVENTBUS_HTTP_MAX_BODY_MEMORY": "1000"}, `EVENTBUS_HTTP_MAX_BODY_MEMORY="1000"`},
		{map[string]string{"EVENTBUS_JWT_ALLOW_PLATFORM": "maybe"}, `EVENTBUS_JWT_ALLOW_PLATFORM="maybe"`},
		{map[string]string{"EVENTBUS_HEALTH_DETAILS": "sometimes"}, `EVENTBUS_HEALTH_DETAILS="sometimes"`},
	}
	for _, tt := range tests {
		_, err := load(nil, tt.env)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("env %v: err = %v, want it to contain %s", tt.env, err, tt.want)
		}
	}
}

// TestRedisClientsHonourContextDeadlines: every client kind is built with
// ContextTimeoutEnabled, so a caller's deadline bounds a call to a paused
// Redis (go-redis otherwise waits for its own read timeout).
func TestRedisClientsHonourContextDeadlines(t *testing.T) {
	for _, env := range []map[string]string{
		nil,
		{"EVENTBUS_SENTINEL_ADDRS": "127.0.0.1:26379", "EVENTBUS_SENTINEL_MASTER": "m"},
		{"EVENTBUS_CLUSTER_ADDRS": "127.0.0.1:7000"},
	} {
		s, err := load(nil, env)
		if err != nil {
			t.Fatal(err)
		}
		c, err := s.RedisClient()
		if err != nil {
			t.Fatal(err)
		}
		switch c := c.(type) {
		case *redis.Client:
			if o := c.Options(); !o.ContextTimeoutEnabled || o.ReadTimeout <= 0 || o.WriteTimeout <= 0 || o.PoolTimeout <= 0 {
				t.Errorf("env %v: options %+v", env, o)
			}
		case *redis.ClusterClient:
			if o := c.Options(); !o.ContextTimeoutEnabled || o.ReadTimeout <= 0 || o.WriteTimeout <= 0 || o.PoolTimeout <= 0 {
				t.Errorf("env %v: options %+v", env, o)
			}
		default:
			t.Errorf("env %v: client %T", env, c)
		}
		c.Close()
	}

	srv := redistest.Start(t)
	s, err := load(nil, map[string]string{"REDIS_URL": srv.URL()})
	if err != nil {
		t.Fatal(err)
	}
	c, err := s.RedisClient()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Ping(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
	srv.Pause()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	err = c.Get(ctx, "k").Err()
	if took := time.Since(start); err == nil || took > 2*time.Second {
		t.Errorf("GET against a paused Redis with a 300ms deadline: err %v after %v, want an error well before the 3s read timeout", err, took)
	}
}
