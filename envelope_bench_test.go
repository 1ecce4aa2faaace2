package eventbus

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// benchEnvelope is about 305 bytes on the wire, like the platform's
// events (the same as publish_bench_test.go's benchEvent).
func benchEnvelope() Event {
	return Event{
		Type: "approval.item.approved", TenantID: "tenant-0001", UserID: "user-0001",
		Data: json.RawMessage(`{"itemId":"item-000001","approvalId":"appr-000001","amount":1250,"currency":"EUR","note":"ok"}`),
	}
}

// BenchmarkPrepare is the CPU part of Publish: defaults, validation and
// encoding of one event.
func BenchmarkPrepare(b *testing.B) {
	now := time.Now()
	b.Run("small", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			ev := benchEnvelope()
			if _, _, err := prepare(&ev, now, DefaultMaxEventSize); err != nil {
				b.Fatal(err)
			}
		}
	})
	// 64 KiB of nested data: validation cost grows with the data.
	big := `{"items":[` + strings.TrimSuffix(strings.Repeat(`{"id":"item-000001","tags":["a","b"],"n":{"x":1.5,"y":null}},`, 1000), ",") + `]}`
	b.Run("64KiB", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(big)))
		for b.Loop() {
			ev := benchEnvelope()
			ev.Data = json.RawMessage(big)
			if _, _, err := prepare(&ev, now, DefaultMaxEventSize); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkDecodeEvent is the consumer side: decode and validate one
// stream entry.
func BenchmarkDecodeEvent(b *testing.B) {
	ev := benchEnvelope()
	payload, _, err := prepare(&ev, time.Now(), DefaultMaxEventSize)
	if err != nil {
		b.Fatal(err)
	}
	s := string(payload)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := decodeEvent(s, DefaultMaxEventSize); err != nil {
			b.Fatal(err)
		}
	}
}
