package eventbus

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Handler handles events. Returning nil acknowledges the event for this
// handler; an error schedules a retry of this handler alone, or sends the
// event to the DLQ at once when errors.Is(err, ErrPermanent).
type Handler interface {
	Handle(ctx context.Context, ev Event) error
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, ev Event) error

// Handle calls f.
func (f HandlerFunc) Handle(ctx context.Context, ev Event) error { return f(ctx, ev) }

// Middleware wraps a handler, like net/http middleware.
type Middleware func(Handler) Handler

// ErrPermanent marks a failure that retrying cannot fix: the event goes to
// the DLQ at once. Wrap it with Permanent or fmt.Errorf("...: %w",
// eventbus.ErrPermanent).
var ErrPermanent = errors.New("eventbus: permanent failure")

// Permanent marks err as permanent (no retries).
func Permanent(err error) error { return fmt.Errorf("%w: %w", ErrPermanent, err) }

// Defaults of subscriptions and retries.
const (
	DefaultPriority       = 100
	DefaultHandlerTimeout = 30 * time.Second
)

// subscription is one registered handler.
type subscription struct {
	name     string
	pattern  string
	priority int
	tenants  map[string]bool // nil: every tenant
	timeout  time.Duration
	retry    *RetryPolicy
	handler  Handler
	met      *handlerMetrics // nil: metrics off
}

// SubscribeOption customises a subscription.
type SubscribeOption func(*subscription)

// Priority sets the order among handlers of one event: lower runs first.
// Default 100.
func Priority(p int) SubscribeOption { return func(s *subscription) { s.priority = p } }

// Tenants limits the subscription to events of these tenants.
func Tenants(ids ...string) SubscribeOption {
	return func(s *subscription) {
		s.tenants = make(map[string]bool, len(ids))
		for _, id := range ids {
			s.tenants[id] = true
		}
	}
}

// Timeout bounds one run of the handler; past it the run counts as a
// failure. Default 30 s; it must stay below the consumer's ClaimIdle.
func Timeout(d time.Duration) SubscribeOption { return func(s *subscription) { s.timeout = d } }

// Retry overrides the consumer's retry policy for this handler.
func Retry(p RetryPolicy) SubscribeOption { return func(s *subscription) { s.retry = &p } }

// matches reports whether the subscription wants an event of type typ and
// tenant.
func (s *subscription) matches(typ, tenant string) bool {
	if s.tenants != nil && !s.tenants[tenant] {
		return false
	}
	return matchPattern(s.pattern, typ)
}

// matchPattern: "*" matches every type, "prefix.*" any type below prefix
// at any depth, anything else exactly.
func matchPattern(pattern, typ string) bool {
	if pattern == "*" {
		return true
	}
	if prefix, ok := strings.CutSuffix(pattern, ".*"); ok {
		return strings.HasPrefix(typ, prefix+".")
	}
	return pattern == typ
}

// validPattern checks a subscription pattern.
func validPattern(p string) error {
	if p == "*" {
		return nil
	}
	base, _ := strings.CutSuffix(p, ".*")
	if strings.Contains(base, "*") {
		return fmt.Errorf("pattern %q: '*' is allowed alone or as the last segment", p)
	}
	if len(strings.Split(base, ".")) == 1 && base != "" && !strings.HasSuffix(p, ".*") {
		return fmt.Errorf("pattern %q: an exact type has at least two segments", p)
	}
	for _, seg := range strings.Split(base, ".") {
		if err := validType(seg + ".x"); err != nil {
			return fmt.Errorf("pattern %q: %v", p, err)
		}
	}
	return nil
}
