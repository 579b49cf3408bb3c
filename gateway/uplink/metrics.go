package uplink

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	published *prometheus.CounterVec
	failures  *prometheus.CounterVec
	refused   prometheus.Counter
	corrected prometheus.Counter
	connects  prometheus.Counter
	offset    prometheus.Gauge
	latency   prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer, u *Uplink) (*metrics, error) {
	m := &metrics{
		published: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "iomt_uplink_published_total", Help: "Spool entries the broker acknowledged, by class.",
		}, []string{"class"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "iomt_uplink_failures_total", Help: "Failed connection attempts and publishes (retried), by kind.",
		}, []string{"kind"}),
		refused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "iomt_uplink_refused_total", Help: "Entries the server refused for good (bad or oversized payload, not authorized) and the gateway moved out of the spool.",
		}),
		corrected: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "iomt_uplink_time_corrected_total", Help: "Packs whose record times were corrected (clock skew, relative times).",
		}),
		connects: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "iomt_uplink_connects_total", Help: "Successful connections to the broker.",
		}),
		offset: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "iomt_uplink_clock_offset_seconds", Help: "Server minus gateway clock, estimated at the last connection (0 if the broker gives no time).",
		}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "iomt_uplink_publish_seconds", Help: "Time from PUBLISH to PUBACK.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 4, 9),
		}),
	}
	for _, c := range []string{"alarm", "spot", "waveform"} {
		m.published.WithLabelValues(c)
	}
	m.failures.WithLabelValues("connect")
	m.failures.WithLabelValues("publish")
	if reg == nil {
		return m, nil
	}
	cs := []prometheus.Collector{m.published, m.failures, m.refused, m.corrected, m.connects, m.offset, m.latency,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "iomt_uplink_connected", Help: "1 while the broker connection is up.",
		}, func() float64 {
			if u.Connected() {
				return 1
			}
			return 0
		}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "iomt_uplink_down_seconds", Help: "How long the uplink has been down (0 while up).",
		}, func() float64 {
			since, down := u.DownSince()
			if !down {
				return 0
			}
			return u.now().Sub(since).Seconds()
		}),
	}
	for i, c := range cs {
		if err := reg.Register(c); err != nil {
			for _, done := range cs[:i] {
				reg.Unregister(done)
			}
			return nil, fmt.Errorf("uplink: register metrics: %w", err)
		}
	}
	return m, nil
}
