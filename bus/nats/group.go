package nats

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/iomt/iomt"
)

// groupStats counts what a group's subscription did on this bus.
type groupStats struct {
	delivered     atomic.Uint64 // handler returned nil
	handlerErrors atomic.Uint64
	redeliveries  atomic.Uint64 // batches handed to the handler more than once
	dropped       atomic.Uint64 // undecodable, or past MaxDeliver
	pending       atomic.Uint64 // broadcast: messages behind the last one delivered
}

// member is this process's membership of a named group: it holds leases on some partitions
// and consumes them. Only run's goroutine touches leases and view.
type member struct {
	b     *Bus
	group string
	h     func(context.Context, iomt.Batch) error
	stats *groupStats
	log   *slog.Logger

	leases map[int]*lease
	view   map[string]time.Time // live keys of the group in the bucket → when last seen written
	lost   chan *lease          // leases whose consumer gave up on its own
	wg     sync.WaitGroup       // consumers and releases

	mu      sync.Mutex
	cons    []jetstream.Consumer // durable per partition
	owned   []int
	pending []atomic.Uint64 // per partition: messages behind the last one delivered
}

// lease is a partition this member owns.
type lease struct {
	p        int
	rev      uint64       // revision of our last write of the key
	handled  uint64       // stream sequence of the last batch handled; consumer goroutine only
	deadline atomic.Int64 // Unix ns after which the lease may have expired: stop handling
	cancel   context.CancelFunc
	done     chan struct{} // closed when the consumer goroutine has returned

	mu      sync.Mutex
	current jetstream.Msg // being handled, for in-progress pings
}

func (m *member) leaseKey(p int) string      { return fmt.Sprintf("%s.%02d", m.group, p) }
func (m *member) durable(p int) string       { return fmt.Sprintf("%s_p%02d", m.group, p) }
func (m *member) memberKey(id string) string { return m.group + ".members." + id }

// ackWait is how long JetStream waits for an ack before delivering again. It bounds how long a
// new owner waits for the batch a dead owner was handling; in-progress pings extend it for a
// live handler that takes longer.
func (m *member) ackWait() time.Duration { return max(m.b.ttl, time.Second) }

func newMember(b *Bus, group string, h func(context.Context, iomt.Batch) error, st *groupStats) *member {
	return &member{
		b: b, group: group, h: h, stats: st,
		log:     b.log.With("group", group),
		leases:  map[int]*lease{},
		view:    map[string]time.Time{},
		lost:    make(chan *lease, b.opts.Partitions),
		cons:    make([]jetstream.Consumer, b.opts.Partitions),
		pending: make([]atomic.Uint64, b.opts.Partitions),
	}
}

// prepare creates the group's durable consumers (so that every batch published after Subscribe
// returns is kept for the group) and returns the member's main loop.
func (m *member) prepare(ctx context.Context) (func(), error) {
	for p := range m.b.opts.Partitions {
		c, err := m.b.js.CreateOrUpdateConsumer(ctx, m.b.opts.Stream, m.consumerConfig(p))
		if err != nil {
			return nil, fmt.Errorf("nats: group %s: consumer %s: %w", m.group, m.durable(p), err)
		}
		m.mu.Lock()
		m.cons[p] = c
		m.mu.Unlock()
	}
	return func() { m.run(ctx) }, nil
}

func (m *member) consumerConfig(p int) jetstream.ConsumerConfig {
	maxDeliver := m.b.opts.MaxDeliver
	if maxDeliver <= 0 {
		maxDeliver = -1
	}
	return jetstream.ConsumerConfig{
		Durable:       m.durable(p),
		Description:   fmt.Sprintf("iomt group %s, partition %d", m.group, p),
		FilterSubject: m.b.subjects[p],
		// A new group starts with what is published from now on; an existing one resumes.
		DeliverPolicy: jetstream.DeliverNewPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       m.ackWait(),
		// One batch in flight: JetStream delivers a partition strictly in order, even when two
		// members briefly both pull during a handover.
		MaxAckPending: 1,
		MaxDeliver:    maxDeliver,
	}
}

func (m *member) ownedSnapshot() []int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]int(nil), m.owned...)
}

func (m *member) setOwned() {
	o := slices.Sorted(maps.Keys(m.leases))
	m.mu.Lock()
	m.owned = o
	m.mu.Unlock()
}

// run keeps the member registered, its leases renewed and its share of partitions taken,
// until ctx ends; then it hands its partitions back.
func (m *member) run(ctx context.Context) {
	ttl := m.b.ttl
	tick := time.NewTicker(max(ttl/3, 100*time.Millisecond))
	defer tick.Stop()
	var w jetstream.KeyWatcher
	watch := func() {
		var err error
		if w, err = m.b.kv.Watch(ctx, m.group+".>"); err != nil {
			w = nil
			if ctx.Err() == nil {
				m.log.Warn("nats lease watch failed; retrying", "err", err)
			}
		}
	}
	defer func() {
		if w != nil {
			_ = w.Stop()
		}
		m.shutdown()
	}()
	m.renew(ctx)
	watch()
	for {
		var updates <-chan jetstream.KeyValueEntry
		if w != nil {
			updates = w.Updates()
		}
		select {
		case <-ctx.Done():
			return
		case e, ok := <-updates:
			switch {
			case !ok:
				w = nil // watch again on the next tick
			case e == nil:
				m.balance(ctx) // the current keys are in the view
			case e.Operation() == jetstream.KeyValuePut:
				_, known := m.view[e.Key()]
				m.view[e.Key()] = time.Now()
				if !known && strings.HasPrefix(e.Key(), m.group+".members.") {
					m.balance(ctx) // a member joined: give it its share now
				}
			default:
				delete(m.view, e.Key())
				m.balance(ctx) // a partition was handed back: take it now if under our share
			}
		case <-tick.C:
			if w == nil {
				watch()
			}
			m.renew(ctx)
			m.balance(ctx)
		case l := <-m.lost:
			if m.leases[l.p] == l {
				m.release(l, true)
			}
		}
	}
}

// renew writes the member's registration and extends every lease it holds.
func (m *member) renew(ctx context.Context) {
	kv, ttl := m.b.kv, m.b.ttl
	rctx, cancel := context.WithTimeout(ctx, max(ttl/2, 200*time.Millisecond))
	defer cancel()
	if _, err := kv.Put(rctx, m.memberKey(m.b.opts.Member), []byte(m.b.opts.Member)); err != nil && ctx.Err() == nil {
		m.log.Warn("nats member registration failed", "err", err)
		cancel()
		rctx, cancel = context.WithTimeout(ctx, max(ttl/2, 200*time.Millisecond))
		defer cancel()
		m.b.restoreLeases(rctx)
	}
	// The updates go out together: one after another they would take 16 round trips, and on a
	// loaded server the last ones would miss their deadline though the server was answering.
	type renewal struct {
		rev   uint64
		err   error
		start time.Time
	}
	parts := slices.Sorted(maps.Keys(m.leases))
	results := make([]renewal, len(parts))
	var wg sync.WaitGroup
	for i, p := range parts {
		key, rev := m.leaseKey(p), m.leases[p].rev
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			nrev, err := kv.Update(rctx, key, []byte(m.b.opts.Member), rev)
			results[i] = renewal{nrev, err, start}
		}()
	}
	wg.Wait()
	for i, p := range parts {
		l := m.leases[p]
		rev, err, start := results[i].rev, results[i].err, results[i].start
		switch {
		case err == nil:
			l.rev = rev
			l.deadline.Store(start.Add(ttl).UnixNano())
		case ctx.Err() != nil:
			return
		case errors.Is(err, jetstream.ErrKeyRevisionMismatch) || errors.Is(err, jetstream.ErrKeyExists) ||
			errors.Is(err, jetstream.ErrKeyNotFound):
			// A renewal that timed out here may have succeeded on the server: if the key is
			// still ours, carry on from its revision.
			if e, gerr := kv.Get(rctx, m.leaseKey(p)); gerr == nil && string(e.Value()) == m.b.opts.Member {
				if rev, err = kv.Update(rctx, m.leaseKey(p), []byte(m.b.opts.Member), e.Revision()); err == nil {
					l.rev = rev
					l.deadline.Store(start.Add(ttl).UnixNano())
					continue
				}
			}
			m.log.Warn("nats lease lost: taken by another member, or gone", "partition", p, "err", err)
			m.release(l, false)
		case time.Now().UnixNano() > l.deadline.Load():
			m.log.Warn("nats lease expired: could not renew it in time", "partition", p, "err", err)
			m.release(l, false)
		default:
			m.log.Debug("nats lease renewal failed; retrying", "partition", p, "err", err)
		}
	}
}

// balance gives back the partitions over the member's share and takes free ones up to it.
func (m *member) balance(ctx context.Context) {
	if ctx.Err() != nil {
		return
	}
	ttl, parts := m.b.ttl, m.b.opts.Partitions
	now := time.Now()
	live := func(key string) bool {
		t, ok := m.view[key]
		return ok && now.Sub(t) < ttl
	}
	members := 1 // ourselves, even before our registration comes back through the watch
	self := m.memberKey(m.b.opts.Member)
	for k, t := range m.view {
		if now.Sub(t) > 10*ttl {
			delete(m.view, k) // long expired: a member that died, its leases
			continue
		}
		if k != self && strings.HasPrefix(k, m.group+".members.") && live(k) {
			members++
		}
	}
	share := (parts + members - 1) / members
	defer m.setOwned()
	for len(m.leases) > share {
		owned := slices.Sorted(maps.Keys(m.leases))
		l := m.leases[owned[len(owned)-1]]
		m.log.Info("nats partition handed over to balance the group", "partition", l.p, "members", members)
		m.release(l, true)
	}
	if len(m.leases) >= share {
		return
	}
	var free []int
	for p := range parts {
		if m.leases[p] == nil && !live(m.leaseKey(p)) {
			free = append(free, p)
		}
	}
	// Random order, so that members starting together do not all race for the same keys.
	rand.Shuffle(len(free), func(i, j int) { free[i], free[j] = free[j], free[i] })
	cctx, cancel := context.WithTimeout(ctx, max(ttl/2, 200*time.Millisecond))
	defer cancel()
	for _, p := range free {
		if len(m.leases) >= share {
			return
		}
		start := time.Now()
		rev, err := m.b.kv.Create(cctx, m.leaseKey(p), []byte(m.b.opts.Member))
		if errors.Is(err, jetstream.ErrKeyExists) {
			continue // held, or not yet expired on the server: try again on the next tick
		}
		if err != nil {
			if ctx.Err() == nil {
				m.log.Debug("nats lease create failed", "partition", p, "err", err)
			}
			return
		}
		m.acquire(p, rev, start)
	}
}

func (m *member) acquire(p int, rev uint64, start time.Time) {
	lctx, cancel := context.WithCancel(context.Background())
	l := &lease{p: p, rev: rev, cancel: cancel, done: make(chan struct{})}
	l.deadline.Store(start.Add(m.b.ttl).UnixNano())
	m.leases[p] = l
	// Owned must list the partition before its first batch reaches a handler: handlers that
	// check ownership would otherwise refuse it.
	m.setOwned()
	m.log.Info("nats partition acquired", "partition", p)
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		defer close(l.done)
		m.consume(lctx, l)
	}()
}

// release stops consuming l's partition and, when del is set, deletes the lease once the
// handler has returned, so that another member takes the partition at once.
func (m *member) release(l *lease, del bool) {
	delete(m.leases, l.p)
	m.setOwned()
	l.cancel()
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		<-l.done
		if !del {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), max(m.b.ttl, time.Second))
		defer cancel()
		err := m.b.kv.Delete(ctx, m.leaseKey(l.p), jetstream.LastRevision(l.rev))
		if err != nil && !errors.Is(err, jetstream.ErrKeyRevisionMismatch) && !m.b.nc.IsClosed() {
			m.log.Debug("nats lease release failed; it will expire", "partition", l.p, "err", err)
		}
	}()
}

// shutdown hands every partition back and unregisters the member.
func (m *member) shutdown() {
	for _, l := range m.leases {
		m.release(l, true)
	}
	m.wg.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), max(m.b.ttl, time.Second))
	defer cancel()
	if err := m.b.kv.Delete(ctx, m.memberKey(m.b.opts.Member)); err != nil && !m.b.nc.IsClosed() {
		m.log.Debug("nats member unregistration failed; it will expire", "err", err)
	}
}

// consume handles l's partition until ctx ends.
func (m *member) consume(ctx context.Context, l *lease) {
	// In-progress pings keep a slow handler's batch from being delivered again meanwhile.
	go func() {
		t := time.NewTicker(m.ackWait() / 3)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				l.mu.Lock()
				if l.current != nil {
					_ = l.current.InProgress()
				}
				l.mu.Unlock()
			}
		}
	}()
	retry := newBackoff(100*time.Millisecond, 5*time.Second)
	for ctx.Err() == nil {
		m.mu.Lock()
		c := m.cons[l.p]
		m.mu.Unlock()
		// Small, short-lived pull requests: nats-server before 2.10 keeps a dead member's pull
		// requests until they expire and spends redeliveries on them, delaying the takeover.
		it, err := c.Messages(jetstream.PullMaxMessages(4), jetstream.PullExpiry(max(2*m.b.ttl, 2*time.Second)))
		if err != nil {
			if errors.Is(err, jetstream.ErrConsumerNotFound) || errors.Is(err, jetstream.ErrConsumerDeleted) {
				m.recreate(ctx, l.p)
			} else if ctx.Err() == nil {
				m.log.Warn("nats consumer failed; retrying", "partition", l.p, "err", err)
			}
			retry.sleep(ctx)
			continue
		}
		err = m.drain(ctx, l, it)
		if ctx.Err() != nil {
			return
		}
		if m.b.nc.IsClosed() {
			m.giveUp(ctx, l)
			return
		}
		if errors.Is(err, jetstream.ErrConsumerDeleted) || errors.Is(err, jetstream.ErrConsumerNotFound) {
			m.recreate(ctx, l.p)
		} else {
			m.log.Warn("nats consumer interrupted; resuming", "partition", l.p, "err", err)
		}
		retry.sleep(ctx)
	}
}

// recreate puts back a durable consumer deleted behind our back (by an operator, or expired):
// it restarts with new batches, so the gap is logged as an error.
func (m *member) recreate(ctx context.Context, p int) {
	c, err := m.b.js.CreateOrUpdateConsumer(ctx, m.b.opts.Stream, m.consumerConfig(p))
	if err != nil {
		if ctx.Err() == nil {
			m.log.Warn("nats consumer re-creation failed", "partition", p, "err", err)
		}
		return
	}
	m.log.Error("nats durable consumer was missing and has been re-created: batches published meanwhile are not delivered to the group", "partition", p, "consumer", m.durable(p))
	m.mu.Lock()
	m.cons[p] = c
	m.mu.Unlock()
}

// giveUp asks the member's loop to release l.
func (m *member) giveUp(ctx context.Context, l *lease) {
	select {
	case m.lost <- l:
	case <-ctx.Done():
	}
}

// drain handles the messages of one iterator until ctx ends or the iterator fails.
func (m *member) drain(ctx context.Context, l *lease, it jetstream.MessagesContext) error {
	for {
		msg, err := it.Next(jetstream.NextContext(ctx))
		if err != nil {
			if ctx.Err() != nil {
				m.handBack(it)
				return ctx.Err()
			}
			it.Stop()
			return err
		}
		if time.Now().UnixNano() > l.deadline.Load() {
			// The lease may already be another member's: leave the batch to it.
			_ = msg.Nak()
			m.handBack(it)
			m.giveUp(ctx, l)
			<-ctx.Done()
			return ctx.Err()
		}
		m.handle(ctx, l, msg)
	}
}

// handBack stops the iterator and gives back, for immediate redelivery to the next owner, a
// batch already delivered to it but not handled.
func (m *member) handBack(it jetstream.MessagesContext) {
	it.Drain()
	for {
		msg, err := it.Next(jetstream.NextMaxWait(100 * time.Millisecond))
		if err != nil {
			it.Stop()
			return
		}
		_ = msg.Nak()
	}
}

func (m *member) handle(ctx context.Context, l *lease, msg jetstream.Msg) {
	md, err := msg.Metadata()
	if err != nil {
		m.log.Error("nats message without metadata skipped", "partition", l.p, "err", err)
		_ = msg.Term()
		return
	}
	m.pending[l.p].Store(md.NumPending)
	if md.Sequence.Stream <= l.handled {
		// With one batch in flight a partition's sequence only grows, so this is a batch we
		// handled already, delivered again: nats-server 2.9 does so after a redelivery.
		m.log.Debug("nats batch delivered again after it was handled; skipped", "partition", l.p, "seq", md.Sequence.Stream)
		_ = msg.Ack()
		return
	}
	batch, err := decodeBatch(msg.Data())
	if err != nil {
		m.stats.dropped.Add(1)
		m.log.Error("nats undecodable message dropped", "partition", l.p, "seq", md.Sequence.Stream, "err", err)
		_ = msg.Term()
		return
	}
	if md.NumDelivered > 1 {
		m.stats.redeliveries.Add(1)
	}
	l.mu.Lock()
	l.current = msg
	l.mu.Unlock()
	err = m.h(ctx, batch)
	l.mu.Lock()
	l.current = nil
	l.mu.Unlock()
	if err == nil {
		l.handled = md.Sequence.Stream
		m.stats.delivered.Add(1)
		if err := msg.Ack(); err != nil {
			m.log.Debug("nats ack failed; the batch will be delivered again", "partition", l.p, "err", err)
		}
		return
	}
	m.stats.handlerErrors.Add(1)
	switch {
	case ctx.Err() != nil:
		// Handing the partition over: the next owner retries at once.
		_ = msg.Nak()
	case m.b.opts.MaxDeliver > 0 && md.NumDelivered >= uint64(m.b.opts.MaxDeliver):
		m.stats.dropped.Add(1)
		m.log.Error("nats batch dropped: handler failed on every delivery", "partition", l.p, "patient", batch.Patient,
			"device", batch.Device, "deliveries", md.NumDelivered, "err", err)
		_ = msg.Term()
	default:
		d := redeliveryDelay(md.NumDelivered + 1)
		m.log.Warn("nats handler failed; batch will be delivered again", "partition", l.p, "patient", batch.Patient,
			"deliveries", md.NumDelivered, "retry_in", d, "err", err)
		_ = msg.NakWithDelay(d)
	}
}

// lag is the number of messages behind the last delivered one, over the owned partitions.
func (m *member) lag() uint64 {
	var n uint64
	for _, p := range m.ownedSnapshot() {
		n += m.pending[p].Load()
	}
	return n
}
