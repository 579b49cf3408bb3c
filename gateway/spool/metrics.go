package spool

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	reg        prometheus.Registerer
	collectors []prometheus.Collector
	dropped    *prometheus.CounterVec
	refused    *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer, s *Spool) (*metrics, error) {
	m := &metrics{
		reg: reg,
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "iomt_spool_dropped_total",
			Help: "Entries evicted because the spool was full, by class.",
		}, []string{"class"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "iomt_spool_refused_total",
			Help: "Entries refused because the spool was full (or the entry larger than it), by class.",
		}, []string{"class"}),
	}
	for _, c := range []Class{Alarm, Spot, Waveform} {
		m.dropped.WithLabelValues(c.String())
		m.refused.WithLabelValues(c.String())
	}
	m.collectors = []prometheus.Collector{
		m.dropped, m.refused,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "iomt_spool_depth", Help: "Entries waiting for the uplink.",
		}, func() float64 { d, _, _ := s.Stats(); return float64(d) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "iomt_spool_bytes", Help: "Logical bytes of the entries waiting for the uplink.",
		}, func() float64 { _, b, _ := s.Stats(); return float64(b) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "iomt_spool_oldest_age_seconds", Help: "Age of the oldest waiting entry (0 when empty).",
		}, func() float64 {
			_, _, o := s.Stats()
			if o.IsZero() {
				return 0
			}
			return s.now().Sub(o).Seconds()
		}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "iomt_spool_max_bytes", Help: "Configured bound on iomt_spool_bytes.",
		}, func() float64 { return float64(s.max) }),
	}
	if reg == nil {
		return m, nil
	}
	for i, c := range m.collectors {
		if err := reg.Register(c); err != nil {
			for _, done := range m.collectors[:i] {
				reg.Unregister(done)
			}
			return nil, fmt.Errorf("spool: register metrics: %w", err)
		}
	}
	return m, nil
}

func (m *metrics) unregister() {
	if m.reg == nil {
		return
	}
	for _, c := range m.collectors {
		m.reg.Unregister(c)
	}
}
