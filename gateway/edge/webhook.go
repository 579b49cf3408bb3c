package edge

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"
)

// queue is a bounded FIFO of alerts that drops its oldest when full: the newest alert says
// most about the patient now.
type queue struct {
	mu    sync.Mutex
	items []Alert
	max   int
	ready chan struct{} // one token: something was pushed
}

func newQueue(max int) *queue {
	return &queue{max: max, ready: make(chan struct{}, 1)}
}

// push adds al and reports whether the oldest alert was dropped for it.
func (q *queue) push(al Alert) (dropped bool) {
	q.mu.Lock()
	if len(q.items) >= q.max {
		q.items = q.items[1:]
		dropped = true
	}
	q.items = append(q.items, al)
	q.mu.Unlock()
	select {
	case q.ready <- struct{}{}:
	default:
	}
	return dropped
}

func (q *queue) pop() (Alert, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.items) == 0 {
		return Alert{}, false
	}
	al := q.items[0]
	q.items[0] = Alert{}
	q.items = q.items[1:]
	return al, true
}

func (q *queue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.items)
}

// Run delivers queued alerts to the webhook, one at a time in order, and once a second lets
// time move alerts on (the threshold passing, the uplink returning). It returns nil when ctx
// is done; alerts still queued then are lost, as they were logged already.
func (a *Alarms) Run(ctx context.Context) error {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		for {
			al, ok := a.queue.pop()
			if !ok {
				break
			}
			a.metrics.queued.Set(float64(a.queue.len()))
			a.deliver(ctx, al)
			if ctx.Err() != nil {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-a.queue.ready:
		case <-tick.C:
			a.tick()
		}
	}
}

// deliver posts one alert, retrying with exponential backoff and full jitter. A 4xx other
// than 408 and 429 means the receiver refuses this alert: trying again will not help.
func (a *Alarms) deliver(ctx context.Context, al Alert) {
	body, err := json.Marshal(al)
	if err != nil {
		a.log.Error("edge alarm webhook: encoding alert", "err", err)
		return
	}
	delay := a.cfg.Backoff
	for attempt := 1; ; attempt++ {
		retry, err := a.post(ctx, body)
		if err == nil {
			a.metrics.webhook.WithLabelValues("delivered").Inc()
			return
		}
		if !retry || attempt >= a.cfg.Attempts || ctx.Err() != nil {
			a.metrics.webhook.WithLabelValues("failed").Inc()
			a.log.Error("edge alarm webhook: alert not delivered", "event", al.Event, "rule", al.Rule, "device", al.Device, "attempts", attempt, "err", err)
			return
		}
		wait := rand.N(delay) + 1 // full jitter: spread retries of many gateways
		a.log.Warn("edge alarm webhook: retrying", "event", al.Event, "rule", al.Rule, "device", al.Device, "attempt", attempt, "in", wait, "err", err)
		select {
		case <-ctx.Done():
			a.metrics.webhook.WithLabelValues("failed").Inc()
			return
		case <-time.After(wait):
		}
		delay = min(2*delay, a.cfg.MaxBackoff)
	}
}

// post sends one attempt and says whether a failure is worth retrying.
func (a *Alarms) post(ctx context.Context, body []byte) (retry bool, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.cfg.WebhookURL, bytes.NewReader(body))
	if err != nil {
		return false, fmt.Errorf("building the request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := a.cfg.Client.Do(req)
	if err != nil {
		return true, fmt.Errorf("posting to the webhook: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return false, nil
	case resp.StatusCode == http.StatusRequestTimeout || resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
		return true, fmt.Errorf("webhook answered %s", resp.Status)
	}
	return false, fmt.Errorf("webhook refused the alert: %s", resp.Status)
}
