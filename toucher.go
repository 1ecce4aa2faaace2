package eventbus

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// touchLoop resets, every third of ClaimIdle, the idle time of the entries
// this consumer is still handling (queued or running), so that a long
// local queue or a run of slow handlers is not taken for a dead consumer.
// Entries another consumer claimed meanwhile are left to it.
func (c *Consumer) touchLoop(stop <-chan struct{}) {
	t := time.NewTicker(c.cfg.ClaimIdle / 3)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		for stream, ids := range c.inflight.snapshot() {
			if err := c.bus.rdb.TouchOwned(c.handlerCtx, stream, c.bus.cfg.Group, c.cfg.Name, ids); err != nil && c.handlerCtx.Err() == nil {
				c.log.LogAttrs(context.Background(), slog.LevelWarn, "could not refresh entries in flight", slog.String("error", err.Error()))
			}
		}
	}
}

// inflightSet is the set of entries this consumer holds (queued or
// running), by stream.
type inflightSet struct {
	mu  sync.Mutex
	ids map[string]map[string]struct{}
}

func newInflightSet() *inflightSet { return &inflightSet{ids: map[string]map[string]struct{}{}} }

func (s *inflightSet) add(stream, id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.ids[stream]
	if m == nil {
		m = map[string]struct{}{}
		s.ids[stream] = m
	}
	m[id] = struct{}{}
}

func (s *inflightSet) remove(stream, id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.ids[stream], id)
}

func (s *inflightSet) has(stream, id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.ids[stream][id]
	return ok
}

func (s *inflightSet) snapshot() map[string][]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string][]string, len(s.ids))
	for stream, m := range s.ids {
		for id := range m {
			out[stream] = append(out[stream], id)
		}
	}
	return out
}
