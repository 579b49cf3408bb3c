// Package notify carries out the deliveries the alarm engine's router decides on: signed
// webhooks with retries, e-mail over SMTP, and commands to devices. Each notifier does I/O
// under a context and is safe for concurrent use; secrets are never logged.
package notify

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/iomt/iomt/alarm"
)

// Notifier sends one delivery of one alarm. It returns nil once the receiver has accepted it;
// retrying the same delivery (same Delivery.ID) is safe.
type Notifier interface {
	Notify(ctx context.Context, d alarm.Delivery, a alarm.Alarm) error
}

// Payload is what webhooks receive (and what the dashboard stream can send as it is).
type Payload struct {
	Delivery string      `json:"delivery"` // the idempotency key, also in X-Iomt-Delivery
	Reason   string      `json:"reason"`
	Tier     int         `json:"tier"`
	Member   string      `json:"member,omitempty"`
	Role     string      `json:"role,omitempty"`
	Team     string      `json:"team,omitempty"`
	Sent     time.Time   `json:"sent"`
	Alarm    alarm.Alarm `json:"alarm"`
}

// Dispatcher sends a change's deliveries through the notifier of each channel.
type Dispatcher struct {
	Notifiers map[alarm.Channel]Notifier
	// Done, if set, is told the outcome of every delivery carried out (nil: delivered), for
	// metrics.
	Done func(d alarm.Delivery, err error)
}

// Dispatch sends every delivery of ch; deliveries of channels without a notifier are skipped
// (the dashboard is usually fed from the change stream itself). Errors are joined, each
// naming its delivery.
func (d *Dispatcher) Dispatch(ctx context.Context, ch alarm.Change) error {
	var errs []error
	for _, dl := range ch.Deliveries {
		n := d.Notifiers[dl.Channel]
		if n == nil {
			continue
		}
		err := n.Notify(ctx, dl, ch.Alarm)
		if d.Done != nil {
			d.Done(dl, err)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("delivery %s (%s to %s): %w", dl.ID, dl.Channel, target(dl), err))
		}
	}
	return errors.Join(errs...)
}

// ErrNotConfigured is the error of a delivery through a channel this node has not been set up
// for (a webhook without a signing secret, an e-mail without a relay).
var ErrNotConfigured = errors.New("channel not configured on this node")

// Unconfigured stands for a channel the node was not set up for: each delivery fails at once
// with ErrNotConfigured and the reason, so that it is counted and logged as failed instead of
// being skipped in silence while the alarm escalates with no one told.
type Unconfigured struct {
	Why string // what would configure it, e.g. "set --alarm-webhook-secret"
}

// Notify implements Notifier.
func (u Unconfigured) Notify(context.Context, alarm.Delivery, alarm.Alarm) error {
	return fmt.Errorf("%w: %s", ErrNotConfigured, u.Why)
}

func target(d alarm.Delivery) string {
	switch {
	case d.Member != "":
		return d.Member
	case d.Command != nil:
		return d.Command.Target
	}
	return d.Address
}
