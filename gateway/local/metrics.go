package local

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are per Adapter, registered with the Registerer the caller gives (none: not exported).
type metrics struct {
	packs       *prometheus.CounterVec // by transport (http, coap) and outcome
	sinkSeconds prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		packs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "iomt_gateway_local_packs_total",
			Help: "SenML packs posted by local devices, by transport and outcome.",
		}, []string{"transport", "outcome"}),
		sinkSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "iomt_gateway_local_sink_seconds",
			Help:    "Time the sink took to accept a pack durably.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 4, 8),
		}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.packs, m.sinkSeconds} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("local: registering metrics: %w", err)
		}
	}
	return m, nil
}
