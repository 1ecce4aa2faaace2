package eventbus

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/hyvve/eventbus/internal/rdb"
)

// Bounds of the stats recorder's memory.
const (
	// statsMaxPairs caps the distinct (tenant, type) pairs counted in one
	// minute bucket, and the distinct tenants counted beyond it; events
	// past both caps count in the platform-wide total only.
	statsMaxPairs = 10000
	// statsMaxTypes caps the distinct types written per bucket; the rest
	// count under rdb.StatsOtherTypes (platform-wide; a tenant's hashes
	// hold at most statsMaxPairs fields anyway).
	statsMaxTypes = 1000
	// statsMaxFailures caps the distinct (tenant, handler) pairs of
	// failed runs counted in one bucket; the rest count in the total only.
	statsMaxFailures = 10000
	// statsMaxHandlers caps the distinct handlers written per bucket; the
	// rest count under rdb.StatsOtherHandlers.
	statsMaxHandlers = 1000
	// statsMaxHeld caps the minute buckets waiting for a flush (Redis
	// away, or no loop running): the oldest are dropped beyond it.
	statsMaxHeld = 15
	// statsFlushInterval is how often the counts go to Redis.
	statsFlushInterval = time.Second
	// statsFlushTimeout bounds one flush.
	statsFlushTimeout = 5 * time.Second
)

// statsKey is a (tenant, type) pair of published events, or a (tenant,
// handler) pair of failed runs.
type statsKey struct{ tenant, name string }

// statsBucket holds one minute's counts not yet flushed.
type statsBucket struct {
	minute    int64
	published map[statsKey]int64
	// byTenant counts events past the pairs cap under their tenant only;
	// lost counts those past the tenant cap too (total only).
	byTenant   map[string]int64
	lost       int64
	failed     map[statsKey]int64
	lostFailed int64
}

func newStatsBucket(minute int64) *statsBucket {
	return &statsBucket{minute: minute, published: map[statsKey]int64{}, failed: map[statsKey]int64{}}
}

func (bk *statsBucket) publish(tenant, typ string) {
	k := statsKey{tenant, typ}
	if _, ok := bk.published[k]; ok || len(bk.published) < statsMaxPairs {
		bk.published[k]++
		return
	}
	if bk.byTenant == nil {
		bk.byTenant = map[string]int64{}
	}
	if _, ok := bk.byTenant[tenant]; ok || len(bk.byTenant) < statsMaxPairs {
		bk.byTenant[tenant]++
		return
	}
	bk.lost++
}

func (bk *statsBucket) fail(tenant, handler string) {
	k := statsKey{tenant, handler}
	if _, ok := bk.failed[k]; ok || len(bk.failed) < statsMaxFailures {
		bk.failed[k]++
		return
	}
	bk.lostFailed++
}

// add turns the bucket into the counters to add to Redis: platform-wide
// fields, and each tenant's (events without a tenant count platform-wide
// only).
func (bk *statsBucket) add() rdb.StatsAdd {
	all := map[string]int64{}
	tenants := map[string]map[string]int64{}
	tenant := func(t string) map[string]int64 {
		m := tenants[t]
		if m == nil {
			m = map[string]int64{}
			tenants[t] = m
		}
		return m
	}
	types := 0
	for k, n := range bk.published {
		all[rdb.StatsPublished] += n
		f := rdb.StatsTypeField(k.name)
		if _, ok := all[f]; ok || types < statsMaxTypes {
			if !ok {
				types++
			}
			all[f] += n
		} else {
			all[rdb.StatsOtherTypes] += n
		}
		if k.tenant != "" {
			m := tenant(k.tenant)
			m[rdb.StatsPublished] += n
			m[f] += n
		}
	}
	for t, n := range bk.byTenant {
		all[rdb.StatsPublished] += n
		all[rdb.StatsOtherTypes] += n
		if t != "" {
			m := tenant(t)
			m[rdb.StatsPublished] += n
			m[rdb.StatsOtherTypes] += n
		}
	}
	if bk.lost > 0 {
		all[rdb.StatsPublished] += bk.lost
		all[rdb.StatsOtherTypes] += bk.lost
	}
	handlers := 0
	for k, n := range bk.failed {
		all[rdb.StatsFailed] += n
		f := rdb.StatsHandlerField(k.name)
		if _, ok := all[f]; ok || handlers < statsMaxHandlers {
			if !ok {
				handlers++
			}
			all[f] += n
		} else {
			all[rdb.StatsOtherHandlers] += n
		}
		if k.tenant != "" {
			tenant(k.tenant)[rdb.StatsFailed] += n
		}
	}
	if bk.lostFailed > 0 {
		all[rdb.StatsFailed] += bk.lostFailed
		all[rdb.StatsOtherHandlers] += bk.lostFailed
	}
	return rdb.StatsAdd{Minute: bk.minute, All: all, Tenants: tenants}
}

// statsRecorder counts published events and failed handler runs in
// memory, per minute, and flushes the counts to Redis's stats hashes
// (rdb.AddStats) every second from the loops of Bus.Run and Consumer.Run,
// and once more when they stop. Counting is a map increment under a
// mutex, once per coalesced batch of publishes. Counts not yet flushed
// when the process dies are lost: the stats are approximate by up to a
// second of each process's traffic. A nil *statsRecorder counts nothing.
type statsRecorder struct {
	rdb *rdb.RDB
	log *slog.Logger
	now func() time.Time

	mu   sync.Mutex
	cur  *statsBucket
	held []*statsBucket // earlier minutes, oldest first, not yet flushed
	// dropped is set once buckets were dropped unflushed (logged once).
	dropped bool
	// flushFailing is set while flushes fail (logged on the change).
	flushFailing bool
}

func newStatsRecorder(r *rdb.RDB, log *slog.Logger) *statsRecorder {
	return &statsRecorder{rdb: r, log: log, now: time.Now}
}

// bucket returns the bucket of now's minute; s.mu is held. A time before
// the current bucket's minute (a clock step back) counts in the current
// bucket.
func (s *statsRecorder) bucket(now time.Time) *statsBucket {
	m := now.Unix() / 60
	if s.cur != nil && m <= s.cur.minute {
		return s.cur
	}
	if s.cur != nil {
		s.hold(s.cur)
	}
	s.cur = newStatsBucket(m)
	return s.cur
}

// hold keeps bk for the next flush, dropping the oldest held bucket
// beyond statsMaxHeld; s.mu is held.
func (s *statsRecorder) hold(bk *statsBucket) {
	s.held = append(s.held, bk)
	if n := len(s.held) - statsMaxHeld; n > 0 {
		s.held = append(s.held[:0], s.held[n:]...)
		if !s.dropped {
			s.dropped = true
			s.log.LogAttrs(context.Background(), slog.LevelWarn, "stats counts dropped: not flushed to redis for too long (is Bus.Run or Consumer.Run running?)",
				slog.Int("minutes_kept", statsMaxHeld))
		}
	}
}

// published counts the written events among n publishes: written(i)
// returns the i-th one's tenant and type, and whether it was written.
func (s *statsRecorder) published(n int, written func(i int) (tenant, typ string, ok bool)) {
	if s == nil {
		return
	}
	now := s.now()
	s.mu.Lock()
	bk := s.bucket(now)
	for i := range n {
		if tenant, typ, ok := written(i); ok {
			bk.publish(tenant, typ)
		}
	}
	s.mu.Unlock()
}

// failed counts one failed run of handler on an event of tenant (a retry
// scheduled or a dead letter written).
func (s *statsRecorder) failed(tenant, handler string) {
	if s == nil {
		return
	}
	now := s.now()
	s.mu.Lock()
	s.bucket(now).fail(tenant, handler)
	s.mu.Unlock()
}

// flush writes every count held to Redis in one atomic step. On failure
// the counts are kept for the next flush (up to statsMaxHeld minutes).
func (s *statsRecorder) flush(ctx context.Context) error {
	if s == nil {
		return nil
	}
	s.mu.Lock()
	taken := s.held
	if s.cur != nil {
		taken = append(taken, s.cur)
	}
	s.held, s.cur = nil, nil
	s.mu.Unlock()
	if len(taken) == 0 {
		return nil
	}
	adds := make([]rdb.StatsAdd, len(taken))
	for i, bk := range taken {
		adds[i] = bk.add()
	}
	err := s.rdb.AddStats(ctx, s.now(), adds)
	if err == nil {
		return nil
	}
	// Put them back before what was counted meanwhile: a minute may then
	// have two buckets, which flush as two additions.
	s.mu.Lock()
	defer s.mu.Unlock()
	rest := s.held
	if s.cur != nil {
		rest = append(rest, s.cur)
		s.cur = nil
	}
	s.held = nil
	for _, bk := range append(taken, rest...) {
		s.hold(bk)
	}
	return err
}

// run flushes every statsFlushInterval until stop is closed, then once
// more. ctx carries values only (its cancellation is ignored: the last
// flush must still run); each flush is bounded by statsFlushTimeout.
func (s *statsRecorder) run(ctx context.Context, stop <-chan struct{}) {
	if s == nil {
		return
	}
	ctx = context.WithoutCancel(ctx)
	t := time.NewTicker(statsFlushInterval)
	defer t.Stop()
	for {
		select {
		case <-stop:
			s.flushLogged(ctx)
			return
		case <-t.C:
			s.flushLogged(ctx)
		}
	}
}

func (s *statsRecorder) flushLogged(ctx context.Context) {
	fctx, cancel := context.WithTimeout(ctx, statsFlushTimeout)
	defer cancel()
	err := s.flush(fctx)
	s.mu.Lock()
	changed := (err != nil) != s.flushFailing
	s.flushFailing = err != nil
	s.mu.Unlock()
	switch {
	case err != nil && changed:
		s.log.LogAttrs(ctx, slog.LevelWarn, "stats flush failed; counts kept for the next try", slog.String("error", err.Error()))
	case err == nil && changed:
		s.log.LogAttrs(ctx, slog.LevelInfo, "stats flush recovered")
	}
}
