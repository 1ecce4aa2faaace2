package eventbus

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// ErrInvalidScope is returned by the Inspector's tenant-scoped methods for
// a Scope that names no tenant: an empty tenant is a mistake, never "all
// tenants" (say AllTenants for that).
var ErrInvalidScope = errors.New("eventbus: invalid tenant scope")

// Scope names the tenants a read covers: one tenant (TenantScope) or all
// of them (AllTenants). The zero Scope is invalid, so that forgetting to
// set it never widens a read to every tenant.
type Scope struct {
	tenant string
	all    bool
}

// TenantScope is the scope of the one tenant tenantID. An empty or blank
// tenantID makes an invalid scope (ErrInvalidScope when used).
func TenantScope(tenantID string) Scope { return Scope{tenant: tenantID} }

// AllTenants is the scope of every tenant (a platform-wide caller).
func AllTenants() Scope { return Scope{all: true} }

// All reports whether s covers every tenant.
func (s Scope) All() bool { return s.all }

// TenantID is the tenant of a one-tenant scope, "" for AllTenants.
func (s Scope) TenantID() string { return s.tenant }

// Includes reports whether s covers tenant tenantID.
func (s Scope) Includes(tenantID string) bool {
	return s.all || (s.tenant != "" && s.tenant == tenantID)
}

// Validate returns nil for AllTenants and for a scope naming a tenant,
// and an error wrapping ErrInvalidScope otherwise.
func (s Scope) Validate() error {
	if s.all {
		return nil
	}
	if strings.TrimSpace(s.tenant) == "" {
		return fmt.Errorf("%w: no tenant id (AllTenants() reads every tenant)", ErrInvalidScope)
	}
	return nil
}

// String describes s for messages: "all tenants" or "tenant <id>".
func (s Scope) String() string {
	if s.all {
		return "all tenants"
	}
	return fmt.Sprintf("tenant %q", s.tenant)
}

// Inspector is the read side of the bus: the one type that the HTTP API,
// the eventbus CLI and the coming dashboard read through, so that every
// view of the bus shows the same thing. Calls about tenant data take a
// Scope (one tenant, or all); calls about the bus itself (Health,
// Consumers) do not, and callers serving tenants must keep them to
// platform operators. Later features (dead letters, event browsing,
// stats) add methods here rather than new read paths.
//
// An Inspector holds no state of its own beyond its Bus: it is cheap,
// safe for concurrent use, and needs no Run (it reads Redis on each call,
// bounded by the caller's context).
type Inspector struct {
	b *Bus
}

// Inspector returns the bus's read side.
func (b *Bus) Inspector() *Inspector { return &Inspector{b: b} }

// Group is the consumer group the Inspector reports on (the bus's).
func (in *Inspector) Group() string { return in.b.cfg.Group }

// Health is the report served at GET /health/events and printed by
// "eventbus health": Redis reachability and the state of every stream
// and group. It never invents a number: lag that Redis cannot report is
// nil. A group is flagged when entries it never read have been removed,
// or when its oldest pending or oldest undelivered entry is within 10 % of
// the retention horizon. Healthy is false when Redis is unreachable, a
// stream is missing or unreadable, or data is at risk. It is not tenant
// data: serve its details to operators only.
func (in *Inspector) Health(ctx context.Context) Health {
	return in.b.health(ctx)
}

// consumerLiveWindow: a consumer is listed as live while its last
// heartbeat is younger than this. Running consumers beat at least every
// 5 s (a quarter of their DeadConsumerIdle, at most 5 s), so this is
// several missed beats; a consumer that stopped gracefully leaves the
// registry at once.
const consumerLiveWindow = 30 * time.Second

// ConsumerInfo is one live consumer of the group.
type ConsumerInfo struct {
	Name string `json:"name"`
	// LastSeen is its last heartbeat, by the Redis clock.
	LastSeen time.Time `json:"lastSeen"`
	// Handlers are the names of the handlers it runs.
	Handlers []string `json:"handlers"`
	// Pending counts the entries delivered to it and not yet acknowledged,
	// over every stream the group reads (every partition's main, DLQ and
	// retries streams, and the replay stream).
	Pending int64 `json:"pending"`
}

// Consumers lists the group's live consumers, by name: those whose
// heartbeat in the group's registry is younger than 30 s, with their
// handler names and pending entries. It costs two round trips whatever
// the number of events (the registry, and one pipeline of one XPENDING
// summary per stream of every partition: single-key commands, which a
// Cluster client sends to each stream's master). Consumers that crashed are not listed (their pending entries
// are claimed by the live ones after ClaimIdle).
func (in *Inspector) Consumers(ctx context.Context) ([]ConsumerInfo, error) {
	b := in.b
	beats, err := b.rdb.LiveConsumers(ctx, b.cfg.Group, consumerLiveWindow)
	if err != nil {
		return nil, wrapOp("consumers", err)
	}
	pending, err := b.rdb.PendingByConsumer(ctx, b.groupStreams(), b.cfg.Group)
	if err != nil {
		return nil, wrapOp("consumers", err)
	}
	out := make([]ConsumerInfo, 0, len(beats))
	for _, c := range beats {
		handlers := c.Handlers
		if handlers == nil {
			handlers = []string{}
		}
		out = append(out, ConsumerInfo{Name: c.Name, LastSeen: c.LastSeen.UTC(), Handlers: handlers, Pending: pending[c.Name]})
	}
	slices.SortFunc(out, func(a, b ConsumerInfo) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}
