package local_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/iomt/iomt/gateway"
	"github.com/iomt/iomt/gateway/identity"
	"github.com/iomt/iomt/gateway/local"
)

// countSink is the trivial in-memory Sink of the benchmarks: they measure the adapter, not a
// spool's fsync.
type countSink struct{ n int }

func (s *countSink) Accept(context.Context, string, []byte, gateway.Class) error { s.n++; return nil }

// benchPack is a spot-check pack of three readings with relative times.
var benchPack = []byte(`[{"bn":"urn:dev:mac:0024befffe804ff1:","n":"temp","u":"Cel","v":37.2,"t":-1},{"n":"spo2","u":"/","v":0.97},{"n":"hr","v":72}]`)

// BenchmarkHTTP calls the HTTP handler in process (no socket): decode, resolve, check,
// encode, Sink.
func BenchmarkHTTP(b *testing.B) {
	tab, err := identity.Parse([]byte(mapping))
	if err != nil {
		b.Fatal(err)
	}
	sink := &countSink{}
	a, err := local.New(local.Config{Resolver: tab, Sink: sink})
	if err != nil {
		b.Fatal(err)
	}
	h := a.HTTPHandler()
	b.ReportAllocs()
	for b.Loop() {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodPost, "/senml", bytes.NewReader(benchPack))
		req.Header.Set("Content-Type", "application/senml+json")
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusNoContent {
			b.Fatalf("%d %s", rec.Code, rec.Body)
		}
	}
	b.ReportMetric(float64(sink.n)/b.Elapsed().Seconds(), "packs/s")
	b.ReportMetric(3*float64(sink.n)/b.Elapsed().Seconds(), "readings/s")
}

// BenchmarkCoAP posts over real UDP on loopback with the go-coap client, one confirmable
// request at a time per client, with 1 and 8 clients (a goroutine and a UDP socket each).
func BenchmarkCoAP(b *testing.B) {
	for _, clients := range []int{1, 8} {
		b.Run(fmt.Sprintf("clients=%d", clients), func(b *testing.B) {
			sink := &lockedCount{}
			f := newFixture(b, sink)
			conns := []*fixture{f}
			for range clients - 1 {
				conns = append(conns, f.extraClient(b))
			}
			// RunParallel starts parallelism × GOMAXPROCS goroutines: one per client.
			b.SetParallelism(max(1, clients/runtime.GOMAXPROCS(0)))
			b.ResetTimer()
			start := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				c := conns[int(sink.next())%len(conns)]
				for pb.Next() {
					if code, body := c.postCoAP(b, "/senml", message.AppSenmlJSON, benchPack); code != codes.Changed {
						b.Errorf("%v %s", code, body)
						return
					}
				}
			})
			n := sink.count()
			b.ReportMetric(float64(n)/time.Since(start).Seconds(), "packs/s")
		})
	}
}
