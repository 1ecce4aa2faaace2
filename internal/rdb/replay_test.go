package rdb

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hyvve/eventbus/internal/redistest"
)

// replayFixture records a pending job "J" and returns the RDB.
func replayFixture(t *testing.T) (context.Context, *redis.Client, *RDB) {
	t.Helper()
	ctx := context.Background()
	c, prefix := redistest.Shared(t)
	r := New(c, NewKeys(prefix, false), Options{})
	ok, err := r.CreateReplayJob(ctx, NewReplayJob{
		ID: "J", Tenant: "t1", Created: time.Now(), AuditMinID: "0-0", Audit: []byte(`{"action":"replay.start"}`),
		Fields: map[string]string{ReplayFieldStatus: ReplayStatePending, ReplayFieldCursor: "", ReplayFieldTenant: "t1"},
	})
	if err != nil || !ok {
		t.Fatalf("create: %v %v", ok, err)
	}
	return ctx, c, r
}

func TestCreateReplayJobIndexesAndAuditsOnce(t *testing.T) {
	ctx, c, r := replayFixture(t)
	k := r.Keys()
	again, err := r.CreateReplayJob(ctx, NewReplayJob{ID: "J", Created: time.Now(), AuditMinID: "0-0", Audit: []byte(`{}`),
		Fields: map[string]string{ReplayFieldStatus: ReplayStateRunning}})
	if err != nil || again {
		t.Fatalf("second create: %v %v, want false", again, err)
	}
	if st := c.HGet(ctx, k.ReplayJob("J"), ReplayFieldStatus).Val(); st != ReplayStatePending {
		t.Errorf("status %q after a repeated create, want pending", st)
	}
	for _, key := range []string{k.ReplayJobs(), k.ReplayTenantJobs("t1"), k.ReplayActive()} {
		if c.ZScore(ctx, key, "J").Err() != nil {
			t.Errorf("J not in %s", key)
		}
	}
	if n := c.XLen(ctx, k.Audit()).Val(); n != 1 {
		t.Errorf("%d audit entries, want 1", n)
	}
}

func TestClaimReplay(t *testing.T) {
	ctx, c, r := replayFixture(t)
	k := r.Keys()
	now := time.Now()
	if out, err := r.ClaimReplay(ctx, "J", "A", time.Minute, now, time.Hour); err != nil || out != ReplayClaimed {
		t.Fatalf("claim: %d %v", out, err)
	}
	if st := c.HGet(ctx, k.ReplayJob("J"), ReplayFieldStatus).Val(); st != ReplayStateRunning {
		t.Errorf("status %q, want running", st)
	}
	if out, _ := r.ClaimReplay(ctx, "J", "B", time.Minute, now, time.Hour); out != ReplayBusy {
		t.Errorf("second runner's claim: %d, want busy", out)
	}
	if c.Get(ctx, k.ReplayLease("J")).Val() != "A" {
		t.Error("the lease changed hands")
	}
	// The lease expires: another runner takes the job, started unchanged.
	started := c.HGet(ctx, k.ReplayJob("J"), ReplayFieldStarted).Val()
	c.Del(ctx, k.ReplayLease("J"))
	if out, _ := r.ClaimReplay(ctx, "J", "B", time.Minute, now.Add(time.Hour), time.Hour); out != ReplayClaimed {
		t.Errorf("claim after expiry: %d", out)
	}
	if got := c.HGet(ctx, k.ReplayJob("J"), ReplayFieldStarted).Val(); got != started {
		t.Errorf("started %s, want %s kept", got, started)
	}
	// A cancel requested while no runner held it: cancelled on claim.
	c.Del(ctx, k.ReplayLease("J"))
	c.HSet(ctx, k.ReplayJob("J"), ReplayFieldCancel, "1")
	if out, _ := r.ClaimReplay(ctx, "J", "C", time.Minute, now, time.Hour); out != ReplayCancelled {
		t.Errorf("claim of a cancelled job: %d", out)
	}
	if st := c.HGet(ctx, k.ReplayJob("J"), ReplayFieldStatus).Val(); st != ReplayStateCancelled {
		t.Errorf("status %q, want cancelled", st)
	}
	if c.Exists(ctx, k.ReplayLease("J")).Val() != 0 || c.ZScore(ctx, k.ReplayActive(), "J").Err() == nil {
		t.Error("an ended job keeps its lease or its place in the active set")
	}
	if ttl := c.PTTL(ctx, k.ReplayJob("J")).Val(); ttl <= 0 {
		t.Errorf("ended job's TTL %v, want the retention", ttl)
	}
	if out, _ := r.ClaimReplay(ctx, "J", "D", time.Minute, now, time.Hour); out != ReplayGone {
		t.Errorf("claim of an ended job: %d", out)
	}
}

// Fencing: a page is written only with the lease's token, from the saved
// cursor, and without a cancel request; otherwise nothing changes.
func TestWriteReplayPageIsFenced(t *testing.T) {
	ctx, c, r := replayFixture(t)
	k := r.Keys()
	if out, _ := r.ClaimReplay(ctx, "J", "A", time.Minute, time.Now(), time.Hour); out != ReplayClaimed {
		t.Fatal("claim failed")
	}
	page := func(token, from, to string, last bool) ReplayPage {
		return ReplayPage{ID: "J", Token: token, From: from, To: to, Scanned: 3, Matched: 2, Errors: 1,
			Copies: [][]byte{[]byte(`{"id":"a"}`)}, MinID: "0-0", Last: last, Now: time.Now(), Keep: time.Hour}
	}
	state := func() (string, string, int64) {
		h := c.HGetAll(ctx, k.ReplayJob("J")).Val()
		return h[ReplayFieldCursor], h[ReplayFieldScanned], c.XLen(ctx, k.Replay()).Val()
	}
	if _, err := r.WriteReplayPage(ctx, page("B", "", "5-0", false)); !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("wrong token: %v, want ErrLeaseLost", err)
	}
	if _, err := r.WriteReplayPage(ctx, page("A", "4-0", "5-0", false)); !errors.Is(err, ErrCursorMoved) {
		t.Fatalf("wrong cursor: %v, want ErrCursorMoved", err)
	}
	if cur, scanned, n := state(); cur != "" || scanned != "" || n != 0 {
		t.Fatalf("refused pages changed the job: cursor %q scanned %q copies %d", cur, scanned, n)
	}
	if n, err := r.WriteReplayPage(ctx, page("A", "", "5-0", false)); err != nil || n != 1 {
		t.Fatalf("page 1: %d %v", n, err)
	}
	// The same page again (a lost reply): refused, nothing twice.
	if _, err := r.WriteReplayPage(ctx, page("A", "", "5-0", false)); !errors.Is(err, ErrCursorMoved) {
		t.Fatalf("page 1 again: %v, want ErrCursorMoved", err)
	}
	if cur, scanned, n := state(); cur != "5-0" || scanned != "3" || n != 1 {
		t.Fatalf("after page 1: cursor %q scanned %q copies %d", cur, scanned, n)
	}
	h := c.HGetAll(ctx, k.ReplayJob("J")).Val()
	if h[ReplayFieldMatched] != "2" || h[ReplayFieldWritten] != "1" || h[ReplayFieldErrors] != "1" {
		t.Errorf("counters %v", h)
	}
	c.HSet(ctx, k.ReplayJob("J"), ReplayFieldCancel, "1")
	if _, err := r.WriteReplayPage(ctx, page("A", "5-0", "9-0", false)); !errors.Is(err, ErrCancelRequested) {
		t.Fatalf("after cancel: %v, want ErrCancelRequested", err)
	}
	c.HDel(ctx, k.ReplayJob("J"), ReplayFieldCancel)
	if n, err := r.WriteReplayPage(ctx, page("A", "5-0", "9-0", true)); err != nil || n != 1 {
		t.Fatalf("last page: %d %v", n, err)
	}
	h = c.HGetAll(ctx, k.ReplayJob("J")).Val()
	if h[ReplayFieldStatus] != ReplayStateCompleted || h[ReplayFieldFinished] == "" || h[ReplayFieldWritten] != "2" {
		t.Errorf("after the last page: %v", h)
	}
	if c.Exists(ctx, k.ReplayLease("J")).Val() != 0 || c.ZScore(ctx, k.ReplayActive(), "J").Err() == nil {
		t.Error("a completed job keeps its lease or its place in the active set")
	}
	if err := r.FinishReplay(ctx, "J", "A", ReplayStateFailed, "x", time.Now(), time.Hour); !errors.Is(err, ErrLeaseLost) {
		t.Errorf("finish after completion: %v, want ErrLeaseLost", err)
	}
}

// A partitioned job's page moves the cursor of its own stream only, and
// is fenced by that cursor.
func TestWriteReplayPageFencesItsStreamsCursor(t *testing.T) {
	ctx, c, r := replayFixture(t)
	k := r.Keys()
	c.HSet(ctx, k.ReplayJob("J"), ReplayCursorField(0), "", ReplayCursorField(1), "")
	if out, _ := r.ClaimReplay(ctx, "J", "A", time.Minute, time.Now(), time.Hour); out != ReplayClaimed {
		t.Fatal("claim failed")
	}
	page := func(field, from, to string) ReplayPage {
		return ReplayPage{ID: "J", Token: "A", Cursor: field, From: from, To: to, Scanned: 2, Matched: 1,
			Copies: [][]byte{[]byte(`{"id":"a"}`)}, MinID: "0-0", Now: time.Now(), Keep: time.Hour}
	}
	if _, err := r.WriteReplayPage(ctx, page(ReplayCursorField(0), "", "9-0")); err != nil {
		t.Fatal(err)
	}
	// Stream 1's cursor is still "": a page of stream 1 from "" goes
	// through, one from stream 0's cursor does not.
	if _, err := r.WriteReplayPage(ctx, page(ReplayCursorField(1), "9-0", "12-0")); !errors.Is(err, ErrCursorMoved) {
		t.Fatalf("stream 1 from stream 0's cursor: %v, want ErrCursorMoved", err)
	}
	if _, err := r.WriteReplayPage(ctx, page(ReplayCursorField(1), "", "5-0")); err != nil {
		t.Fatal(err)
	}
	if _, err := r.WriteReplayPage(ctx, page(ReplayCursorField(0), "", "9-0")); !errors.Is(err, ErrCursorMoved) {
		t.Fatalf("stream 0's first page again: %v, want ErrCursorMoved", err)
	}
	h := c.HGetAll(ctx, k.ReplayJob("J")).Val()
	if h[ReplayCursorField(0)] != "9-0" || h[ReplayCursorField(1)] != "5-0" || h[ReplayFieldCursor] != "" ||
		h[ReplayFieldScanned] != "4" || h[ReplayFieldWritten] != "2" || c.XLen(ctx, k.Replay()).Val() != 2 {
		t.Errorf("job %v, %d copies", h, c.XLen(ctx, k.Replay()).Val())
	}
}

func TestKeepAndReleaseReplayLease(t *testing.T) {
	ctx, c, r := replayFixture(t)
	k := r.Keys()
	r.ClaimReplay(ctx, "J", "A", 500*time.Millisecond, time.Now(), time.Hour)
	if cancel, err := r.KeepReplayLease(ctx, "J", "A", time.Minute); err != nil || cancel {
		t.Fatalf("keep: %v %v", cancel, err)
	}
	if ttl := c.PTTL(ctx, k.ReplayLease("J")).Val(); ttl < 30*time.Second {
		t.Errorf("lease TTL %v after renewal, want about a minute", ttl)
	}
	if _, err := r.KeepReplayLease(ctx, "J", "B", time.Minute); !errors.Is(err, ErrLeaseLost) {
		t.Errorf("keep with another token: %v", err)
	}
	c.HSet(ctx, k.ReplayJob("J"), ReplayFieldCancel, "1")
	if cancel, err := r.KeepReplayLease(ctx, "J", "A", time.Minute); err != nil || !cancel {
		t.Errorf("keep after cancel: %v %v, want the cancel reported", cancel, err)
	}
	if err := r.ReleaseReplayLease(ctx, "J", "B"); err != nil || c.Exists(ctx, k.ReplayLease("J")).Val() != 1 {
		t.Errorf("release with another token freed the lease (%v)", err)
	}
	if err := r.ReleaseReplayLease(ctx, "J", "A"); err != nil || c.Exists(ctx, k.ReplayLease("J")).Val() != 0 {
		t.Errorf("release kept the lease (%v)", err)
	}
}

func TestCancelReplayOutcomes(t *testing.T) {
	ctx, c, r := replayFixture(t)
	k := r.Keys()
	cancel := func() int {
		n, err := r.CancelReplay(ctx, "J", time.Now(), time.Hour, "0-0", []byte(`{"action":"replay.cancel"}`))
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	// Running with its lease held: the flag only.
	r.ClaimReplay(ctx, "J", "A", time.Minute, time.Now(), time.Hour)
	if n := cancel(); n != ReplayCancelRequested {
		t.Fatalf("running: %d", n)
	}
	if n := cancel(); n != ReplayCancelRepeated {
		t.Fatalf("repeated: %d", n)
	}
	if st := c.HGet(ctx, k.ReplayJob("J"), ReplayFieldStatus).Val(); st != ReplayStateRunning {
		t.Fatalf("status %q, want running until the runner stops", st)
	}
	// Running with no lease (its runner died): cancelled at once.
	c.HDel(ctx, k.ReplayJob("J"), ReplayFieldCancel)
	c.Del(ctx, k.ReplayLease("J"))
	if n := cancel(); n != ReplayCancelDone {
		t.Fatalf("running without a lease: %d", n)
	}
	if n := cancel(); n != ReplayCancelEnded {
		t.Fatalf("ended: %d", n)
	}
	if n, _ := r.CancelReplay(ctx, "nope", time.Now(), time.Hour, "0-0", []byte(`{}`)); n != ReplayCancelNone {
		t.Fatalf("missing: %d", n)
	}
	// The create, and the two cancels that changed something.
	if n := c.XLen(ctx, k.Audit()).Val(); n != 3 {
		t.Errorf("%d audit entries, want 3", n)
	}
}

func TestReplayJobIDsNewestFirst(t *testing.T) {
	ctx, _, r := replayFixture(t)
	for _, id := range []string{"K", "L"} {
		if _, err := r.CreateReplayJob(ctx, NewReplayJob{ID: id, Created: time.Now(), AuditMinID: "0-0", Audit: []byte(`{}`),
			Fields: map[string]string{ReplayFieldStatus: ReplayStatePending}}); err != nil {
			t.Fatal(err)
		}
	}
	ids, err := r.ReplayJobIDs(ctx, "", "", 2)
	if err != nil || len(ids) != 2 || ids[0] != "L" || ids[1] != "K" {
		t.Fatalf("first page %v %v", ids, err)
	}
	if ids, _ = r.ReplayJobIDs(ctx, "", "K", 2); len(ids) != 1 || ids[0] != "J" {
		t.Fatalf("second page %v", ids)
	}
	if ids, _ = r.ReplayJobIDs(ctx, "t1", "", 10); len(ids) != 1 || ids[0] != "J" {
		t.Fatalf("tenant t1 %v", ids)
	}
	if err := r.ForgetReplayJobs(ctx, "t1", []string{"J"}); err != nil {
		t.Fatal(err)
	}
	if ids, _ = r.ReplayJobIDs(ctx, "t1", "", 10); len(ids) != 0 {
		t.Fatalf("tenant t1 after forget %v", ids)
	}
}
