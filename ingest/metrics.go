package ingest

import "github.com/prometheus/client_golang/prometheus"

// Metrics counts what ingest did, by transport. A nil *Metrics counts nothing.
type Metrics struct {
	packs   *prometheus.CounterVec
	samples *prometheus.CounterVec
}

// NewMetrics registers ingest's counters with r.
func NewMetrics(r prometheus.Registerer) *Metrics {
	m := &Metrics{
		packs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "iomt_ingest_packs_total",
			Help: "SenML packs received, by transport and outcome (ok, malformed, unbound, error).",
		}, []string{"transport", "outcome"}),
		samples: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "iomt_ingest_records_total",
			Help: "Samples received, by transport and outcome (accepted, duplicate, refused).",
		}, []string{"transport", "outcome"}),
	}
	r.MustRegister(m.packs, m.samples)
	return m
}

func (m *Metrics) pack(transport, outcome string) {
	if m != nil {
		m.packs.WithLabelValues(transport, outcome).Inc()
	}
}

func (m *Metrics) records(transport string, r Result) {
	if m == nil {
		return
	}
	m.packs.WithLabelValues(transport, "ok").Inc()
	m.samples.WithLabelValues(transport, "accepted").Add(float64(r.Accepted))
	m.samples.WithLabelValues(transport, "duplicate").Add(float64(r.Duplicates))
	m.samples.WithLabelValues(transport, "refused").Add(float64(len(r.Refused)))
}
