package nats

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	natsgo "github.com/nats-io/nats.go"

	"github.com/iomt/iomt"
)

// Events travel on plain NATS subjects, not JetStream: they are for people watching now, and a
// node that was down has no one to show them to (iomt.Events is at-most-once).

// eventSubject is where events are published: beside the stream's subjects, never under them
// (the stream takes Subject.*), so JetStream does not store them: iomt.v1.obs → iomt.v1.events.
func (b *Bus) eventSubject() string {
	if p, ok := strings.CutSuffix(b.opts.Subject, ".obs"); ok {
		return p + ".events"
	}
	return b.opts.Subject + "-events"
}

// PublishEvent implements iomt.Events: every node's event subscribers hear e.
func (b *Bus) PublishEvent(ctx context.Context, e iomt.Event) error {
	if b.closed.Load() {
		return ErrClosed
	}
	data, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("nats: encode event: %w", err)
	}
	if err := b.nc.Publish(b.eventSubject(), data); err != nil {
		return fmt.Errorf("nats: publish event: %w", err)
	}
	return nil
}

// SubscribeEvents implements iomt.Events; h is called from one goroutine, in arrival order.
func (b *Bus) SubscribeEvents(ctx context.Context, h func(context.Context, iomt.Event)) error {
	if b.closed.Load() {
		return ErrClosed
	}
	sub, err := b.nc.Subscribe(b.eventSubject(), func(m *natsgo.Msg) {
		var e iomt.Event
		if err := json.Unmarshal(m.Data, &e); err != nil {
			b.log.Warn("nats: undecodable event", "err", err)
			return
		}
		h(ctx, e)
	})
	if err != nil {
		return fmt.Errorf("nats: subscribe to events: %w", err)
	}
	// The subscription is live once the server has it: flush so an event published right
	// after SubscribeEvents returns is not missed.
	if err := b.nc.FlushTimeout(5 * time.Second); err != nil {
		_ = sub.Unsubscribe()
		return fmt.Errorf("nats: subscribe to events: %w", err)
	}
	go func() {
		select {
		case <-ctx.Done():
		case <-b.connDone:
		}
		_ = sub.Unsubscribe()
	}()
	return nil
}

// Partition returns the partition of a patient on this bus.
func (b *Bus) Partition(patient string) int { return Partition(patient, b.opts.Partitions) }
