package eventbus

import (
	"context"
	"errors"
	"time"

	"github.com/hyvve/eventbus/internal/rdb"
)

// Live tail bounds.
const (
	// tailBlock is how long one read of Tail waits for new entries: the
	// most a cancelled Tail may take to return.
	tailBlock = time.Second
	// tailCount is the most entries one read of Tail returns.
	tailCount = 256
)

// TailFilter selects the events Inspector.Tail delivers.
type TailFilter struct {
	// Types are subscription patterns ("*", "prefix.*" or an exact type);
	// an event matching any of them is delivered. None: every type.
	Types []string
	// After is the stream id to start after (an SSE client's
	// Last-Event-ID); "" starts at the end of the stream, so that only
	// entries written from now on are delivered.
	After string
}

// Check validates f: a bad pattern or After is an error wrapping
// ErrInvalidFilter (a *FilterError naming "type" or "after").
func (f TailFilter) Check() error {
	for _, p := range f.Types {
		if err := validPattern(p); err != nil {
			return &FilterError{Field: "type", Reason: err.Error()}
		}
	}
	if f.After != "" && !rdb.ValidID(f.After) {
		return &FilterError{Field: "after", Reason: "not a stream id (<ms>-<seq>)"}
	}
	return nil
}

// Match reports whether an entry that Tail delivered to an AllTenants
// tail without type patterns belongs to a tail of scope filtered by f.
// It is the rule of Inspector.Events: the entry's tenant is in scope and,
// with patterns, its type matches one; an entry that could not be decoded
// at all (Event nil) belongs only to AllTenants without patterns. It lets
// one reader fan out to many filtered clients.
func (f TailFilter) Match(scope Scope, it BrowsedEvent) bool {
	if it.Event == nil {
		return scope.All() && len(f.Types) == 0
	}
	if !scope.Includes(it.Event.TenantID) {
		return false
	}
	if len(f.Types) == 0 {
		return true
	}
	for _, p := range f.Types {
		if matchPattern(p, it.Event.Type) {
			return true
		}
	}
	return false
}

// TailStart is the id of the last entry of the main stream ("0-0" when it
// is empty): a Tail with After set to it delivers every entry written
// after this call.
func (in *Inspector) TailStart(ctx context.Context) (string, error) {
	id, err := in.b.rdb.LastID(ctx, in.b.rdb.Keys().Main())
	if err != nil {
		return "", wrapOp("tail", err)
	}
	return id, nil
}

// Tail calls fn with every new entry of the main stream in scope that
// matches f, in stream order, until ctx is cancelled (it then returns
// nil) or fn returns an error (returned as is). It reads with XREAD BLOCK
// and no consumer group, so it never acknowledges, claims or delays
// anything: tailing is invisible to consumers. Entries are decoded and
// filtered as by Events (invalid entries included, with their decode
// error). Without f.After it starts at the end of the stream. A Redis
// error ends it with that error (wrapping ErrUnavailable when Redis is
// unreachable): resume with f.After set to the StreamID of the last entry
// fn saw. A cancelled Tail returns within about a second. A bad filter is
// an error wrapping ErrInvalidFilter; an invalid scope ErrInvalidScope.
func (in *Inspector) Tail(ctx context.Context, scope Scope, f TailFilter, fn func(BrowsedEvent) error) error {
	if err := scope.Validate(); err != nil {
		return err
	}
	if err := f.Check(); err != nil {
		return err
	}
	pos := f.After
	if pos == "" {
		var err error
		if pos, err = in.TailStart(ctx); err != nil {
			return ignoreCancel(ctx, err)
		}
	}
	main := in.b.rdb.Keys().Main()
	for ctx.Err() == nil {
		msgs, err := in.b.rdb.ReadAfter(ctx, main, pos, tailCount, tailBlock)
		if err != nil {
			return ignoreCancel(ctx, wrapOp("tail", err))
		}
		for _, m := range msgs {
			pos = m.ID
			if it, ok := in.browsed(m, scope, f.Types); ok {
				if err := fn(it); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// ignoreCancel is nil once ctx is cancelled (the error is then the
// cancellation's doing), err otherwise.
func ignoreCancel(ctx context.Context, err error) error {
	if errors.Is(ctx.Err(), context.Canceled) {
		return nil
	}
	return err
}
