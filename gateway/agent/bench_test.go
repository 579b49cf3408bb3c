package agent_test

import (
	"context"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/iomt/iomt/gateway/agent"
	"github.com/iomt/iomt/gateway/agent/agenttest"
	"github.com/iomt/iomt/gateway/uplink/uplinktest"
)

// BenchmarkMLLPToBroker measures readings/s through the whole gateway: monitors send ORU^R01
// (2 readings each) over MLLP and wait for each AA (the pack is fsynced in the spool by then);
// the uplink publishes over TLS to Mosquitto, QoS 1, and the clock stops when a subscriber has
// every message. monitors is the number of concurrent monitor connections (= devices).
func BenchmarkMLLPToBroker(b *testing.B) {
	for _, monitors := range []int{1, 16, 64} {
		b.Run(fmt.Sprintf("monitors=%d", monitors), func(b *testing.B) {
			pki := uplinktest.NewPKI(b, "gw-bench")
			mq := uplinktest.StartMosquitto(b, pki)
			sub := uplinktest.Subscribe(b, mq.PlainAddr, "iomt/v1/+/devices/+/senml")
			euis := map[string]string{}
			for i := range monitors {
				euis[fmt.Sprintf("bed-%d", i)] = fmt.Sprintf("%016X", 0xB000+i)
			}
			cfg, err := agent.LoadConfig(setup(b, pki, mq, euis))
			if err != nil {
				b.Fatal(err)
			}
			a, err := agent.New(cfg, nil)
			if err != nil {
				b.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- a.Run(ctx) }()
			defer func() { cancel(); <-done }()

			base := time.Now().Add(-48 * time.Hour)
			var next atomic.Int64
			var wg sync.WaitGroup
			b.ResetTimer()
			for m := range monitors {
				wg.Add(1)
				go func() {
					defer wg.Done()
					eui := fmt.Sprintf("%016X", 0xB000+m)
					c, err := net.Dial("tcp", a.MLLPAddr())
					if err != nil {
						b.Error(err)
						return
					}
					defer c.Close()
					for i := 0; ; i++ {
						if next.Add(1) > int64(b.N) {
							return
						}
						msg := agenttest.ORU(eui, fmt.Sprint(i), base.Add(time.Duration(i)*time.Second), 70, 97)
						if code, text, err := agenttest.SendOn(c, msg); err != nil || code != "AA" {
							b.Errorf("ACK %s %s %v", code, text, err)
							return
						}
					}
				}()
			}
			wg.Wait()
			intake := b.Elapsed().Seconds()
			sub.WaitFor(b, 5*time.Minute, "every message", func(ms []uplinktest.Message) bool { return len(ms) >= b.N })
			b.StopTimer()
			s := b.Elapsed().Seconds()
			b.ReportMetric(float64(b.N)/s, "msgs/s")
			b.ReportMetric(2*float64(b.N)/s, "readings/s")
			// Monitors are answered once the pack is on disk; the uplink may still be behind.
			b.ReportMetric(2*float64(b.N)/intake, "intake-readings/s")
		})
	}
}
