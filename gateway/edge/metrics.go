package edge

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are per Alarms, registered with the Registerer the caller gives (none: not exported).
type metrics struct {
	alerts  *prometheus.CounterVec // by event
	webhook *prometheus.CounterVec // by result: delivered, failed, dropped
	queued  prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		alerts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "iomt_gateway_edge_alerts_total",
			Help: "Local alerts raised while the uplink was down, by event (alert, realert, clear, handover).",
		}, []string{"event"}),
		webhook: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "iomt_gateway_edge_webhook_total",
			Help: "Alerts for the local webhook, by result (delivered, failed after retries, dropped from a full queue).",
		}, []string{"result"}),
		queued: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "iomt_gateway_edge_webhook_queue",
			Help: "Alerts waiting for the local webhook.",
		}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.alerts, m.webhook, m.queued} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("edge: registering metrics: %w", err)
		}
	}
	return m, nil
}
