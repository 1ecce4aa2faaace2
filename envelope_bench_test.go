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

// BenchmarkDataChecks compares, in one process, the checks of data added
// for issue 9 (UTF-8, depth) with the json.Valid that was already there.
func BenchmarkDataChecks(b *testing.B) {
	small := []byte(benchEnvelope().Data)
	big := []byte(`{"items":[` + strings.TrimSuffix(strings.Repeat(`{"id":"item-000001","tags":["a","b"],"n":{"x":1.5,"y":null}},`, 1000), ",") + `]}`)
	for _, d := range []struct {
		name string
		doc  []byte
	}{{"small", small}, {"64KiB", big}} {
		b.Run(d.name+"/json.Valid", func(b *testing.B) {
			b.SetBytes(int64(len(d.doc)))
			for b.Loop() {
				json.Valid(d.doc)
			}
		})
		b.Run(d.name+"/validData", func(b *testing.B) {
			b.SetBytes(int64(len(d.doc)))
			for b.Loop() {
				if err := validData(d.doc, true); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(d.name+"/utf8+depth", func(b *testing.B) {
			b.SetBytes(int64(len(d.doc)))
			for b.Loop() {
				if err := validData(d.doc, false); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	names := benchEnvelope()
	b.Run("names", func(b *testing.B) {
		for b.Loop() {
			_ = validName(names.TenantID, MaxNameLength, true)
			_ = validName(names.UserID, MaxNameLength, true)
			_ = validName("platform", MaxLabelLength, false)
			_ = validName("1.0", MaxLabelLength, false)
		}
	})
}
