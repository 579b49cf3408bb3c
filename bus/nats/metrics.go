package nats

import (
	"sort"

	"github.com/prometheus/client_golang/prometheus"
)

// Stats is a snapshot of what the bus did since Open.
type Stats struct {
	Published     uint64 // batches acknowledged by JetStream
	PublishErrors uint64
	Duplicates    uint64                // published batches JetStream dropped as duplicates (same MsgID)
	Groups        map[string]GroupStats // by group; "" is the broadcast subscriptions together
}

// GroupStats is what one group's subscription did on this bus.
type GroupStats struct {
	Owned         []int  // partitions held now (named groups)
	Delivered     uint64 // handler calls that returned nil
	HandlerErrors uint64
	Redeliveries  uint64 // batches handed to the handler again (after an error, a crash, a handover)
	Dropped       uint64 // undecodable batches, and batches past MaxDeliver
	Pending       uint64 // messages waiting behind the last one delivered, over owned partitions
}

// Stats returns the bus's counters.
func (b *Bus) Stats() Stats {
	s := Stats{Published: b.pubs.Load(), PublishErrors: b.pubErrs.Load(), Duplicates: b.pubDups.Load(), Groups: map[string]GroupStats{}}
	b.mu.Lock()
	defer b.mu.Unlock()
	for g, st := range b.stats {
		gs := GroupStats{
			Delivered:     st.delivered.Load(),
			HandlerErrors: st.handlerErrors.Load(),
			Redeliveries:  st.redeliveries.Load(),
			Dropped:       st.dropped.Load(),
			Pending:       st.pending.Load(),
		}
		if m := b.members[g]; m != nil {
			gs.Owned = m.ownedSnapshot()
			gs.Pending = m.lag()
		}
		s.Groups[g] = gs
	}
	return s
}

// broadcastLabel stands for the empty group in metric labels, where "" would drop the label.
const broadcastLabel = "_broadcast"

var (
	descOwned = prometheus.NewDesc("iomt_bus_partitions_owned",
		"Partitions of a subscriber group owned by this process.", []string{"group"}, nil)
	descPartitions = prometheus.NewDesc("iomt_bus_partitions",
		"Partitions of the stream.", nil, nil)
	descPublished = prometheus.NewDesc("iomt_bus_published_total",
		"Batches published and acknowledged by JetStream.", nil, nil)
	descPublishErrors = prometheus.NewDesc("iomt_bus_publish_errors_total",
		"Batches whose publication failed.", nil, nil)
	descDuplicates = prometheus.NewDesc("iomt_bus_publish_duplicates_total",
		"Published batches dropped by JetStream as duplicates of an earlier one.", nil, nil)
	descDelivered = prometheus.NewDesc("iomt_bus_delivered_total",
		"Batches handled successfully by a subscriber group on this process.", []string{"group"}, nil)
	descHandlerErrors = prometheus.NewDesc("iomt_bus_handler_errors_total",
		"Handler calls that returned an error.", []string{"group"}, nil)
	descRedeliveries = prometheus.NewDesc("iomt_bus_redeliveries_total",
		"Batches delivered again after an error, a crash or a handover.", []string{"group"}, nil)
	descDropped = prometheus.NewDesc("iomt_bus_dropped_total",
		"Batches dropped: undecodable, or still failing after MaxDeliver deliveries.", []string{"group"}, nil)
	descPending = prometheus.NewDesc("iomt_bus_consumer_pending",
		"Batches waiting behind the last one delivered, over the partitions owned here.", []string{"group"}, nil)
	descConnected = prometheus.NewDesc("iomt_bus_connected",
		"1 while connected to a NATS server.", nil, nil)
)

// Describe implements prometheus.Collector.
func (b *Bus) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descOwned, descPartitions, descPublished, descPublishErrors, descDuplicates,
		descDelivered, descHandlerErrors, descRedeliveries, descDropped, descPending, descConnected} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (b *Bus) Collect(ch chan<- prometheus.Metric) {
	s := b.Stats()
	gauge := func(d *prometheus.Desc, v float64, l ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, l...)
	}
	counter := func(d *prometheus.Desc, v uint64, l ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), l...)
	}
	gauge(descPartitions, float64(b.opts.Partitions))
	counter(descPublished, s.Published)
	counter(descPublishErrors, s.PublishErrors)
	counter(descDuplicates, s.Duplicates)
	connected := 0.0
	if b.nc.IsConnected() {
		connected = 1
	}
	gauge(descConnected, connected)
	groups := make([]string, 0, len(s.Groups))
	for g := range s.Groups {
		groups = append(groups, g)
	}
	sort.Strings(groups)
	for _, g := range groups {
		gs := s.Groups[g]
		label := g
		if g == "" {
			label = broadcastLabel
		} else {
			gauge(descOwned, float64(len(gs.Owned)), label)
		}
		counter(descDelivered, gs.Delivered, label)
		counter(descHandlerErrors, gs.HandlerErrors, label)
		counter(descRedeliveries, gs.Redeliveries, label)
		counter(descDropped, gs.Dropped, label)
		gauge(descPending, float64(gs.Pending), label)
	}
}

var _ prometheus.Collector = (*Bus)(nil)
