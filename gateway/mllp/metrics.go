package mllp

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are per Server, registered with the Registerer the caller gives (none: not exported).
type metrics struct {
	messages    *prometheus.CounterVec // by MSA-1: AA, AE, AR
	frameErrors *prometheus.CounterVec // by kind: too_large, garbage, read
	conns       prometheus.Gauge
	sinkSeconds prometheus.Histogram
	// skewCorrected counts messages whose times were moved for the monitor's clock offset.
	skewCorrected prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "iomt_gateway_mllp_messages_total",
			Help: "HL7 messages answered by the MLLP listener, by ACK code (MSA-1).",
		}, []string{"ack"}),
		frameErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "iomt_gateway_mllp_frame_errors_total",
			Help: "MLLP framing faults, by kind.",
		}, []string{"kind"}),
		conns: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "iomt_gateway_mllp_connections",
			Help: "Open monitor connections.",
		}),
		sinkSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "iomt_gateway_mllp_sink_seconds",
			Help:    "Time the sink took to accept a pack durably.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 4, 8),
		}),
		skewCorrected: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "iomt_gateway_mllp_skew_corrected_total",
			Help: "Messages whose observation times were corrected for the monitor's clock offset.",
		}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.messages, m.frameErrors, m.conns, m.sinkSeconds, m.skewCorrected} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("mllp: registering metrics: %w", err)
		}
	}
	return m, nil
}
