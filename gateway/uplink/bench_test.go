package uplink_test

import (
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/iomt/iomt/gateway"
	"github.com/iomt/iomt/gateway/spool"
	"github.com/iomt/iomt/gateway/uplink"
	"github.com/iomt/iomt/gateway/uplink/uplinktest"
)

// BenchmarkDrain measures the uplink alone: a spool already holding b.N packs (one reading
// each) from `devices` devices is drained over TLS to Mosquitto, QoS 1, with the spool's
// removals fsynced; the clock stops when the spool is empty.
func BenchmarkDrain(b *testing.B) {
	for _, devices := range []int{1, 64} {
		for _, window := range []int{16, 256} {
			b.Run(fmt.Sprintf("devices=%d/window=%d", devices, window), func(b *testing.B) {
				pki := uplinktest.NewPKI(b, "gw-bench")
				mq := uplinktest.StartMosquitto(b, pki)
				dir := b.TempDir()
				fill, err := spool.Open(dir, spool.Options{NoSync: true, Logger: slog.New(slog.DiscardHandler)})
				if err != nil {
					b.Fatal(err)
				}
				base := time.Now().Add(-time.Hour)
				for i := range b.N {
					dev := fmt.Sprintf("dev-%d", i%devices)
					v := packBytes(dev, base.Add(time.Duration(i)*time.Millisecond), 70)
					if _, err := fill.Put(b.Context(), spool.Entry{Device: dev, Class: gateway.Spot, Payload: v}); err != nil {
						b.Fatal(err)
					}
				}
				fill.Close()
				sp, err := spool.Open(dir, spool.Options{Logger: slog.New(slog.DiscardHandler)})
				if err != nil {
					b.Fatal(err)
				}
				defer sp.Close()
				tlsc, err := uplink.TLSConfig(pki.CAFile, pki.ClientCert, pki.ClientKey)
				if err != nil {
					b.Fatal(err)
				}
				u, err := uplink.New(uplink.Config{Spool: sp, URL: "mqtts://" + mq.TLSAddr, TLS: tlsc, Window: window})
				if err != nil {
					b.Fatal(err)
				}
				b.ResetTimer()
				runB(b, u)
				for {
					if d, _, _ := sp.Stats(); d == 0 {
						break
					}
					time.Sleep(time.Millisecond)
				}
				b.StopTimer()
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "packs/s")
			})
		}
	}
}
