package edge_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/iomt/iomt/gateway"
	"github.com/iomt/iomt/gateway/edge"
)

// BenchmarkAccept measures what Alarms adds to the data path, in front of a trivial in-memory
// Sink, with the uplink up (nothing judged) and down (every pack decoded and judged; the
// readings break no rule, so the log and queue stay idle).
func BenchmarkAccept(b *testing.B) {
	for _, down := range []bool{false, true} {
		b.Run(fmt.Sprintf("uplink_down=%v", down), func(b *testing.B) {
			w := &world{now: time.Date(2026, 11, 20, 6, 0, 0, 0, time.UTC)}
			w.setDown(down)
			w.advance(time.Hour)
			a, err := edge.New(&memSink{}, edge.Config{UplinkDown: w.UplinkDown, Now: w.Now})
			if err != nil {
				b.Fatal(err)
			}
			pack := []byte(fmt.Sprintf(`[{"bn":"oxi-1:","bt":%d,"n":"59408-5","u":"%%","v":97},{"n":"8889-8","u":"/min","v":72},{"n":"8867-4","u":"/min","v":72}]`, w.Now().Unix()))
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				if err := a.Accept(ctx, "oxi-1", pack, gateway.Spot); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "packs/s")
		})
	}
}
