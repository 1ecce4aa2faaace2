package main

import (
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/redis/go-redis/v9"

	"github.com/hyvve/eventbus"
	"github.com/hyvve/eventbus/internal/auth"
	"github.com/hyvve/eventbus/internal/config"
	"github.com/hyvve/eventbus/internal/httpapi"
)

// shutdownTimeout bounds the graceful shutdown of the HTTP server.
const shutdownTimeout = 10 * time.Second

// serve runs the HTTP server until ctx is cancelled (SIGINT, SIGTERM).
// With dev set, an embedded in-memory Redis stands in when the configured
// one does not answer.
func serve(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string, dev bool) error {
	name := "serve"
	if dev {
		name = "dev"
	}
	fs := flag.NewFlagSet("eventbus "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	settings, err := config.Load(fs, args, getenv)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err}
	}
	logger := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: settings.LogLevel}))
	redis.SetLogger(redisLogger{logger})
	stopTracing, err := setupTracing(ctx, getenv, logger)
	if err != nil {
		return err
	}
	defer stopTracing()

	client, err := settings.RedisClient()
	if err != nil {
		return usageError{err}
	}
	defer client.Close()

	embedded := false
	if dev {
		var mr *miniredis.Miniredis
		client, mr, err = devRedis(ctx, client, settings, stdout)
		if err != nil {
			return err
		}
		if mr != nil {
			embedded = true
			defer mr.Close()
			defer client.Close()
		}
	}

	cfg := settings.BusConfig(client, logger)
	cfg.EmbeddedRedis = embedded
	// The process's own registry: Go and process metrics, the bus's
	// counters, and its state read from Redis at scrape time.
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	cfg.Registerer = reg
	bus, err := eventbus.New(cfg)
	if err != nil {
		return usageError{err}
	}
	reg.MustRegister(bus.Inspector().Collector(eventbus.CollectorOptions{}))

	ln, err := net.Listen("tcp", settings.HTTPAddr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", settings.HTTPAddr, err)
	}
	keys := settings.APIKeys
	devKey := ""
	if dev && settings.JWTSecret == "" && len(keys) == 0 {
		devKey = devToken()
		keys = map[string]auth.Principal{devKey: {Subject: "dev", TenantID: auth.AllTenants, Role: auth.RoleAdmin}}
	}
	authn := auth.New(settings.JWTSecret, keys, auth.AllowPlatformJWT(settings.JWTAllowPlatform),
		auth.Audience(settings.JWTAudience), auth.Issuer(settings.JWTIssuer))
	srv := httpapi.NewServer(bus, httpapi.Options{
		Auth:   authn,
		Logger: logger,
		Limits: httpapi.Limits{
			ReadTimeout:    settings.HTTP.ReadTimeout,
			WriteTimeout:   settings.HTTP.WriteTimeout,
			IdleTimeout:    settings.HTTP.IdleTimeout,
			MaxHeaderBytes: settings.HTTP.MaxHeaderBytes,
			MaxRequests:    settings.HTTP.MaxRequests,
			MaxBodyMemory:  settings.HTTP.MaxBodyMemory,
			MaxConnections: settings.HTTP.MaxConnections,
			MaxStreams:     settings.HTTP.MaxStreams,
		},
		// dev is for a local try-out: the full health report for everyone.
		HealthDetails: settings.HealthDetails || dev,
		Metrics:       reg,
		MetricsPublic: settings.MetricsPublic,
	})
	dashboard := dashboardURL(ln.Addr())
	logger.Info("http server listening", slog.String("addr", ln.Addr().String()), slog.String("dashboard", dashboard))
	if dev {
		fmt.Fprintf(stdout, "eventbus dev: serving on http://%s (health: /health/events)\n", ln.Addr())
		if devKey != "" {
			fmt.Fprintf(stdout, "eventbus dev: no credentials configured; this run's API key (every tenant, admin): %s\n", devKey)
		}
		fmt.Fprintf(stdout, "eventbus dev: dashboard: %s\n", dashboard)
	}

	runCtx, stopRun := context.WithCancel(ctx)
	defer stopRun()
	var wg sync.WaitGroup
	wg.Go(func() { _ = bus.Run(runCtx) })

	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(httpapi.LimitListener(ln, settings.HTTP.MaxConnections)) }()

	select {
	case err = <-serveErr:
		err = fmt.Errorf("http server: %w", err)
	case <-ctx.Done():
		logger.Info("shutting down")
		sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
		err = srv.Shutdown(sctx)
		cancel()
		<-serveErr
	}
	stopRun()
	wg.Wait()
	logger.Info("stopped")
	return err
}

// devRedis returns the configured client when it answers; otherwise it
// starts an embedded in-memory server and says so plainly.
func devRedis(ctx context.Context, client redis.UniversalClient, s config.Settings, stdout io.Writer) (redis.UniversalClient, *miniredis.Miniredis, error) {
	pctx, cancel := context.WithTimeout(ctx, time.Second)
	err := client.Ping(pctx).Err()
	cancel()
	if err == nil {
		fmt.Fprintf(stdout, "eventbus dev: using Redis at %s\n", redactedAddr(s))
		return client, nil, nil
	}
	mr := miniredis.NewMiniRedis()
	if err := mr.StartAddr("127.0.0.1:0"); err != nil {
		return nil, nil, fmt.Errorf("start embedded redis: %w", err)
	}
	fmt.Fprintf(stdout, "eventbus dev: no Redis answered at %s (%v).\n", redactedAddr(s), err)
	fmt.Fprintf(stdout, "eventbus dev: running an EMBEDDED in-memory Redis-compatible server at %s.\n", mr.Addr())
	fmt.Fprintln(stdout, "eventbus dev: DATA LIVES IN MEMORY ONLY and is lost when this process exits; consumer lag is reported as unknown.")
	return redis.NewClient(&redis.Options{Addr: mr.Addr()}), mr, nil
}

func redactedAddr(s config.Settings) string {
	if opt, err := redis.ParseURL(s.RedisURL); err == nil {
		return opt.Addr
	}
	return "(REDIS_URL)"
}

// redisLogger routes go-redis's internal messages (dial failures while
// Redis is down) to slog at debug level: the bus reports outages itself.
type redisLogger struct{ log *slog.Logger }

func (l redisLogger) Printf(ctx context.Context, format string, v ...any) {
	l.log.DebugContext(ctx, "go-redis", slog.String("message", fmt.Sprintf(format, v...)))
}

// devToken returns a random API key for one dev run.
func devToken() string { return "dev-" + rand.Text() }

// dashboardURL is the dashboard's address on the listener addr: an
// unspecified host (every interface) becomes localhost, which a browser on
// the same machine can open.
func dashboardURL(addr net.Addr) string {
	host, port, err := net.SplitHostPort(addr.String())
	if err != nil {
		return "http://" + addr.String() + "/"
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		host = "localhost"
	}
	return "http://" + net.JoinHostPort(host, port) + "/"
}
