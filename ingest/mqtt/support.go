package mqtt

import (
	"context"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"
)

// levelFilter drops records below min before they reach the wrapped handler.
type levelFilter struct {
	slog.Handler
	min slog.Level
}

func (f levelFilter) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= f.min && f.Handler.Enabled(ctx, l)
}

func (f levelFilter) WithAttrs(a []slog.Attr) slog.Handler {
	return levelFilter{f.Handler.WithAttrs(a), f.min}
}

func (f levelFilter) WithGroup(name string) slog.Handler {
	return levelFilter{f.Handler.WithGroup(name), f.min}
}

// metrics counts refusals at the broker; accepted and refused records are counted by ingest.
// A nil *metrics counts nothing.
type metrics struct{ refusals *prometheus.CounterVec }

func newMetrics(r prometheus.Registerer) *metrics {
	m := &metrics{refusals: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "iomt_mqtt_refusals_total",
		Help: "Connections, packets and sessions the MQTT broker refused or ended, by reason (bad_credentials, client_id, throttled, server_error, foreign_topic, too_large, revoked, connect_timeout, no_connect, too_many_pending).",
	}, []string{"reason"})}
	r.MustRegister(m.refusals)
	return m
}

func (m *metrics) refused(reason string) {
	if m != nil {
		m.refusals.WithLabelValues(reason).Inc()
	}
}
