package ble_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/iomt/iomt/gateway"
	"github.com/iomt/iomt/gateway/ble"
	"github.com/iomt/iomt/gateway/identity"
)

// countSink is the trivial in-memory Sink of the benchmarks: it measures the endpoint, not a
// spool's fsync.
type countSink struct{ n int }

func (s *countSink) Accept(context.Context, string, []byte, gateway.Class) error { s.n++; return nil }

// BenchmarkServeHTTP measures notifications/s through decode, resolve, SenML encoding and the
// Sink, per request of 1 and of 100 notifications (PLX spot-check, two readings each), calling
// the handler in process (no socket).
func BenchmarkServeHTTP(b *testing.B) {
	tab, err := identity.Parse([]byte(mapping))
	if err != nil {
		b.Fatal(err)
	}
	one := `{"address":"C4:7C:8D:6A:12:34","characteristic":"2A5E","payload_hex":"0FACF3BEF5E8070B1D1708392040220000 66E3","received":"2026-11-20T06:00:00Z"}`
	for _, size := range []int{1, 100} {
		body := one
		if size > 1 {
			body = "[" + strings.TrimSuffix(strings.Repeat(one+",", size), ",") + "]"
		}
		b.Run(fmt.Sprintf("batch=%d", size), func(b *testing.B) {
			sink := &countSink{}
			h, err := ble.New(ble.Config{Resolver: tab, Sink: sink, Location: time.UTC})
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				rec := httptest.NewRecorder()
				req := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				h.ServeHTTP(rec, req)
				if rec.Code != http.StatusOK {
					b.Fatalf("status %d: %s", rec.Code, rec.Body)
				}
			}
			b.ReportMetric(float64(sink.n)/b.Elapsed().Seconds(), "notifications/s")
		})
	}
}
