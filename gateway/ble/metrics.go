package ble

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are per Handler, registered with the Registerer the caller gives (none: not exported).
type metrics struct {
	notifications *prometheus.CounterVec // by Status
	sinkSeconds   prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		notifications: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "iomt_gateway_ble_notifications_total",
			Help: "GATT notifications handed over by the BLE bridge, by outcome.",
		}, []string{"status"}),
		sinkSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "iomt_gateway_ble_sink_seconds",
			Help:    "Time the sink took to accept a pack durably.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 4, 8),
		}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.notifications, m.sinkSeconds} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("ble: registering metrics: %w", err)
		}
	}
	return m, nil
}

func (m *metrics) count(s Status) { m.notifications.WithLabelValues(string(s)).Inc() }
