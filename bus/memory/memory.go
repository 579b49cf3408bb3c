// Package memory is the in-process implementation of iomt.Bus, for a single node on embedded
// defaults. Batches are partitioned by patient: each subscriber group has one goroutine per
// partition, so one patient's batches reach a group in publish order.
package memory

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"

	"github.com/iomt/iomt"
)

// Options tune the bus; the zero value is usable.
type Options struct {
	Partitions int // default 16
	Buffer     int // batches queued per partition and group before Publish waits; default 1024
}

// Bus is an in-process, partitioned publish/subscribe bus.
type Bus struct {
	partitions int
	all        []int // every partition, for Owned
	buffer     int

	mu         sync.RWMutex
	groups     map[string]*group
	broadcasts int // names the broadcast subscriptions
	eventSubs  []*eventSub
	closed     bool
	wg         sync.WaitGroup
}

type group struct {
	queues  []chan iomt.Batch
	handler func(context.Context, iomt.Batch) error
	cancel  context.CancelFunc
	done    chan struct{}
}

// ErrClosed is returned by Publish and Subscribe after Close.
var ErrClosed = errors.New("bus: closed")

// New returns an empty bus.
func New(o Options) *Bus {
	if o.Partitions <= 0 {
		o.Partitions = 16
	}
	if o.Buffer <= 0 {
		o.Buffer = 1024
	}
	all := make([]int, o.Partitions)
	for i := range all {
		all[i] = i
	}
	return &Bus{partitions: o.Partitions, buffer: o.Buffer, groups: map[string]*group{}, all: all}
}

// Partition returns the partition a patient's batches travel on (iomt.Partition).
func Partition(patient string, partitions int) int { return iomt.Partition(patient, partitions) }

// Publish queues b for every subscribed group, waiting while a group's partition queue is full
// (back-pressure rather than loss) until ctx ends.
func (b *Bus) Publish(ctx context.Context, batch iomt.Batch) error {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.closed {
		return ErrClosed
	}
	p := Partition(batch.Patient, b.partitions)
	// Groups with room first: a group that has fallen behind must not hold up the others
	// (the alarm engine must not wait for an analysis that lags).
	var full []*group
	for _, g := range b.groups {
		select {
		case g.queues[p] <- batch:
		default:
			full = append(full, g)
		}
	}
	// Then wait for whichever full group makes room first (rare, so reflection's cost is
	// fine here), until each has the batch or is gone.
	for len(full) > 0 {
		cases := []reflect.SelectCase{{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(ctx.Done())}}
		for _, g := range full {
			cases = append(cases,
				reflect.SelectCase{Dir: reflect.SelectSend, Chan: reflect.ValueOf(g.queues[p]), Send: reflect.ValueOf(batch)},
				reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(g.done)})
		}
		i, _, _ := reflect.Select(cases)
		if i == 0 {
			return fmt.Errorf("bus: publish to %d lagging groups: %w", len(full), ctx.Err())
		}
		full = slices.Delete(full, (i-1)/2, (i-1)/2+1)
	}
	return nil
}

// Subscribe registers h for group until ctx ends. A second Subscribe with the same group name
// while the first is active is refused: the in-process bus has a single member per group.
// The empty group is a broadcast subscription: any number of them, each its own.
func (b *Bus) Subscribe(ctx context.Context, name string, h func(context.Context, iomt.Batch) error) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return ErrClosed
	}
	if name == "" {
		b.broadcasts++
		name = fmt.Sprintf("\x00broadcast-%d", b.broadcasts)
	}
	if _, ok := b.groups[name]; ok {
		return fmt.Errorf("bus: group %q already has a subscriber", name)
	}
	ctx, cancel := context.WithCancel(ctx)
	g := &group{queues: make([]chan iomt.Batch, b.partitions), handler: h, cancel: cancel, done: make(chan struct{})}
	for i := range g.queues {
		g.queues[i] = make(chan iomt.Batch, b.buffer)
	}
	b.groups[name] = g
	var workers sync.WaitGroup
	for i := range g.queues {
		workers.Add(1)
		b.wg.Add(1)
		go func(q chan iomt.Batch) {
			defer b.wg.Done()
			defer workers.Done()
			for {
				select {
				case <-ctx.Done():
					return
				case batch := <-q:
					// A handler error is the consumer's to report; the in-process bus keeps no
					// redelivery state, since the store already holds the batch durably.
					_ = g.handler(ctx, batch)
				}
			}
		}(g.queues[i])
	}
	go func() {
		<-ctx.Done()
		close(g.done)
		b.mu.Lock()
		if b.groups[name] == g {
			delete(b.groups, name)
		}
		b.mu.Unlock()
		workers.Wait()
	}()
	return nil
}

// Close stops every subscription and waits for handlers to return.
func (b *Bus) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	gs := make([]*group, 0, len(b.groups))
	for _, g := range b.groups {
		gs = append(gs, g)
	}
	b.mu.Unlock()
	for _, g := range gs {
		g.cancel()
	}
	b.wg.Wait()
	return nil
}

// Owned lists the partitions of group this bus serves: all of them while the group has its
// (single) subscriber. The slice is shared and must not be changed: the alarm path asks for
// it with every batch.
func (b *Bus) Owned(group string) []int {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if _, ok := b.groups[group]; !ok {
		return nil
	}
	return b.all
}

// PublishEvent implements iomt.Events: every event subscriber hears e before it returns.
func (b *Bus) PublishEvent(ctx context.Context, e iomt.Event) error {
	b.mu.RLock()
	if b.closed {
		b.mu.RUnlock()
		return ErrClosed
	}
	subs := slices.Clone(b.eventSubs)
	b.mu.RUnlock()
	for _, s := range subs {
		if s.ctx.Err() == nil {
			s.h(ctx, e)
		}
	}
	return nil
}

// SubscribeEvents implements iomt.Events.
func (b *Bus) SubscribeEvents(ctx context.Context, h func(context.Context, iomt.Event)) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return ErrClosed
	}
	s := &eventSub{ctx: ctx, h: h}
	b.eventSubs = append(b.eventSubs, s)
	go func() {
		<-ctx.Done()
		b.mu.Lock()
		defer b.mu.Unlock()
		b.eventSubs = slices.DeleteFunc(b.eventSubs, func(x *eventSub) bool { return x == s })
	}()
	return nil
}

type eventSub struct {
	ctx context.Context
	h   func(context.Context, iomt.Event)
}

// Partition returns the partition a patient's batches travel on.
func (b *Bus) Partition(patient string) int { return Partition(patient, b.partitions) }
