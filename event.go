package iomt

import (
	"context"
	"encoding/json"
	"time"
)

// Event is something an analysis concluded about a patient (a CGM alert, for one), told to the
// live views and alert lists of every node, wherever the analysis ran.
type Event struct {
	Tenant  string          `json:"tenant,omitempty"`
	Patient string          `json:"patient"`
	Kind    string          `json:"kind"` // the live stream's event name, e.g. "cgm-alert"
	Time    time.Time       `json:"time"`
	Data    json.RawMessage `json:"data"`
}

// Events fans events out to every node. Delivery is at most once: events are for people
// watching now; what must not be lost is stored.
type Events interface {
	PublishEvent(ctx context.Context, e Event) error
	// SubscribeEvents calls h with every event published after it returns, until ctx ends.
	SubscribeEvents(ctx context.Context, h func(context.Context, Event)) error
}
