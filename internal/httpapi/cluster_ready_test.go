package httpapi

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/hyvve/eventbus/internal/redistest"
)

// TestReadyzOnACluster: the readiness check (EXISTS of the group's streams
// and XINFO GROUPS, pipelined) works on Redis Cluster, where the keys are
// hash-tagged into one slot.
func TestReadyzOnACluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Redis Cluster: slow; run without -short")
	}
	addrs := redistest.StartCluster(t, 3)
	bus := busFromSettings(t, map[string]string{"EVENTBUS_CLUSTER_ADDRS": strings.Join(addrs, ","), "EVENTBUS_PREFIX": "clready"})
	srv := httptest.NewServer(New(bus, Options{Auth: testAuth()}))
	t.Cleanup(srv.Close)
	if code, body := get(t, srv.URL+"/readyz"); code != http.StatusServiceUnavailable {
		t.Errorf("/readyz before set-up = %d %v", code, body)
	}
	if err := bus.SetUp(context.Background()); err != nil {
		t.Fatal(err)
	}
	if code, body := get(t, srv.URL+"/readyz"); code != http.StatusOK {
		t.Errorf("/readyz after set-up on a cluster = %d %v", code, body)
	}
}
