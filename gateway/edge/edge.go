// Package edge keeps care from going blind when the gateway cannot reach the cloud. Alarms is
// a gateway.Sink wrapper: every pack goes on to the next Sink (the spool) unchanged, and while
// the uplink is down the readings are also judged by local rules (SpO2 < 85 %, HR > 150 or
// < 40 /min, systolic < 90 mm[Hg] by default). Once the uplink has been down longer than a
// threshold, a reading that breaks a rule raises a local alert: a Warn log line and a JSON POST
// to a local webhook (a nurse-call bridge, a pager gateway). Alerts are de-duplicated per
// device and rule, repeated no more often than a re-alert interval, and followed by an "all
// clear" when a later reading no longer breaks the rule, or a "handover" when the uplink
// returns and the cloud's alarm engine takes over.
//
// Alerting never blocks or fails the data path: rules are judged in memory after the next
// Sink has answered, and webhook deliveries go through a bounded queue drained by Run.
package edge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/iomt/iomt/codes"
	"github.com/iomt/iomt/gateway"
	"github.com/iomt/iomt/wire/senml"
)

// Config is what Alarms needs. UplinkDown is required.
type Config struct {
	// UplinkDown reports whether the uplink is down and since when. The uplink owns that
	// knowledge; Alarms asks on every pack and every tick, so it must be cheap.
	UplinkDown func() (since time.Time, down bool)
	// Rules are the alarm conditions; nil means DefaultRules(). They are checked as
	// ParseRules checks a file.
	Rules []Rule
	// Threshold is how long the uplink must have been down before local alerts fire; 0 means
	// 60 seconds. Readings judged earlier fire when it passes if they still break the rule.
	Threshold time.Duration
	// Realert is the least time between two alerts for one device and rule while the
	// condition lasts; 0 means 5 minutes.
	Realert time.Duration
	// WebhookURL receives every alert as a JSON POST; empty means log only.
	WebhookURL string
	// Client posts to the webhook; nil means a client with a 5-second timeout.
	Client *http.Client
	// QueueSize bounds the alerts waiting for the webhook; when full the oldest is dropped
	// (and counted), so a dead webhook costs memory for QueueSize alerts at most. 0 means 256.
	QueueSize int
	// Attempts is how often one alert is tried before it is given up; 0 means 6.
	Attempts int
	// Backoff is the first retry's delay, doubled for each further one up to MaxBackoff, each
	// drawn with full jitter; 0 means 500 ms and 30 s.
	Backoff, MaxBackoff time.Duration
	// Gateway names this gateway in alerts; may be empty.
	Gateway string
	Catalog *codes.Catalog // nil: codes.New()
	Logger  *slog.Logger   // nil: discard
	// Registerer receives the metrics; nil leaves them unregistered.
	Registerer prometheus.Registerer
	// Now is the clock, for tests; nil means time.Now.
	Now func() time.Time
}

// Event says what an Alert announces.
type Event string

// The events, in the order one condition goes through them.
const (
	Raised   Event = "alert"    // a reading breaks the rule (first time)
	Repeated Event = "realert"  // it still does, Realert after the last alert
	Cleared  Event = "clear"    // a later reading no longer breaks it
	Handover Event = "handover" // the uplink is back: the cloud's alarms take over
)

// Alert is what the webhook receives, as JSON.
type Alert struct {
	Event     Event     `json:"event"`
	Rule      string    `json:"rule"`
	Condition string    `json:"condition"` // "59408-5 < 85"
	Device    string    `json:"device"`
	Code      string    `json:"code"`
	Display   string    `json:"display"`
	Value     float64   `json:"value"` // the reading that raised, repeated or cleared the alert
	Unit      string    `json:"unit"`
	Reading   time.Time `json:"reading_time"`
	At        time.Time `json:"alert_time"`
	// UplinkDownSince is when the uplink went down; zero (omitted) for a handover.
	UplinkDownSince *time.Time `json:"uplink_down_since,omitempty"`
	Gateway         string     `json:"gateway,omitempty"`
}

// Alarms is a gateway.Sink that judges readings locally while the uplink is down. Create it
// with New and run Run for the webhook; without Run alerts are still logged.
type Alarms struct {
	next   gateway.Sink
	cfg    Config
	cat    *codes.Catalog
	log    *slog.Logger
	now    func() time.Time
	byCode map[string][]int // catalog id → indexes in cfg.Rules
	// waves says a rule is about a waveform code; without one, waveform packs (hundreds of
	// samples) are not decoded at all.
	waves   bool
	metrics *metrics
	queue   *queue

	mu      sync.Mutex
	states  map[stateKey]*state
	pending int  // states breaking a rule that have not alerted yet
	wasDown bool // the uplink was down at the last look, so states may be live
}

type stateKey struct {
	device string
	rule   int
}

// state is what Alarms knows of one device and rule during one outage.
type state struct {
	breaking  bool      // the latest reading breaks the rule
	active    bool      // an alert went out and no clear or handover since
	lastAlert time.Time // when the last alert or realert went out
	value     float64   // the latest reading
	at        time.Time // its time: older readings (replays, late packs) are not judged
}

// New wraps next. It returns an error for a missing UplinkDown or an invalid rule.
func New(next gateway.Sink, cfg Config) (*Alarms, error) {
	if next == nil || cfg.UplinkDown == nil {
		return nil, errors.New("edge: New needs the next Sink and Config.UplinkDown")
	}
	a := &Alarms{next: next, cat: cfg.Catalog, log: cfg.Logger, now: cfg.Now, states: map[stateKey]*state{}}
	if a.cat == nil {
		a.cat = codes.New()
	}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	if a.now == nil {
		a.now = time.Now
	}
	if cfg.Rules == nil {
		cfg.Rules = DefaultRules()
	}
	rules, err := checkRules(cfg.Rules, a.cat)
	if err != nil {
		return nil, err
	}
	cfg.Rules = rules
	if cfg.Threshold <= 0 {
		cfg.Threshold = time.Minute
	}
	if cfg.Realert <= 0 {
		cfg.Realert = 5 * time.Minute
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{Timeout: 5 * time.Second}
	}
	if cfg.QueueSize <= 0 {
		cfg.QueueSize = 256
	}
	if cfg.Attempts <= 0 {
		cfg.Attempts = 6
	}
	if cfg.Backoff <= 0 {
		cfg.Backoff = 500 * time.Millisecond
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = 30 * time.Second
	}
	a.cfg = cfg
	a.byCode = map[string][]int{}
	for i, r := range rules {
		a.byCode[r.Code] = append(a.byCode[r.Code], i)
		if c, ok := a.cat.ByID(r.Code); ok && c.Kind == codes.Waveform {
			a.waves = true
		}
	}
	if a.metrics, err = newMetrics(cfg.Registerer); err != nil {
		return nil, err
	}
	a.queue = newQueue(cfg.QueueSize)
	return a, nil
}

// Accept implements gateway.Sink: the pack goes to the next Sink and its answer is returned
// as is. While the uplink is down the readings are judged too, whatever that answer: a
// reading the spool could not take is still a reading the patient had.
func (a *Alarms) Accept(ctx context.Context, device string, pack []byte, class gateway.Class) error {
	err := a.next.Accept(ctx, device, pack, class)
	since, down := a.cfg.UplinkDown()
	if !down {
		a.handover()
		return err
	}
	if class != gateway.Waveform || a.waves {
		a.judge(device, pack, since)
	}
	return err
}

// judge applies the rules to the readings of one pack.
func (a *Alarms) judge(device string, pack []byte, since time.Time) {
	now := a.now()
	p, err := senml.DecodeJSON(pack)
	if err != nil {
		a.log.Debug("edge: pack not judged", "device", device, "err", err)
		return
	}
	recs, err := p.Resolve(now)
	if err != nil {
		a.log.Debug("edge: pack not judged", "device", device, "err", err)
		return
	}
	armed := now.Sub(since) >= a.cfg.Threshold
	var out []Alert
	a.mu.Lock()
	a.wasDown = true
	for _, r := range recs {
		if r.Value == nil {
			continue
		}
		name := r.Name
		if j := strings.LastIndexAny(name, ":/"); j >= 0 {
			name = name[j+1:]
		}
		c, ok := a.cat.Lookup(name)
		if !ok {
			continue
		}
		idx := a.byCode[c.ID]
		if len(idx) == 0 {
			continue
		}
		v := *r.Value
		if r.Unit != "" && r.Unit != c.Unit {
			if v, err = a.cat.Convert(c, v, r.Unit); err != nil {
				continue
			}
		}
		for _, i := range idx {
			if al, ok := a.step(device, i, c, v, r.At(), now, since, armed); ok {
				out = append(out, al)
			}
		}
	}
	if armed && a.pending > 0 {
		out = append(out, a.firePending(now, since)...)
	}
	a.emit(out)
	a.mu.Unlock()
}

// step advances one device and rule with a reading; a.mu is held.
func (a *Alarms) step(device string, i int, c codes.Code, v float64, at, now, since time.Time, armed bool) (Alert, bool) {
	k := stateKey{device, i}
	s := a.states[k]
	if s == nil {
		s = &state{}
		a.states[k] = s
	}
	if at.Before(s.at) {
		return Alert{}, false
	}
	wasPending := s.breaking && !s.active
	s.value, s.at = v, at
	s.breaking = a.cfg.Rules[i].violated(v)
	nowPending := s.breaking && !s.active
	switch {
	case s.breaking && !s.active && armed:
		s.active, s.lastAlert, nowPending = true, now, false
		a.adjustPending(wasPending, nowPending)
		return a.alert(Raised, device, i, c, s, now, &since), true
	case s.breaking && s.active && now.Sub(s.lastAlert) >= a.cfg.Realert:
		s.lastAlert = now
		return a.alert(Repeated, device, i, c, s, now, &since), true
	case !s.breaking && s.active:
		s.active = false
		return a.alert(Cleared, device, i, c, s, now, &since), true
	}
	a.adjustPending(wasPending, nowPending)
	return Alert{}, false
}

func (a *Alarms) adjustPending(was, now bool) {
	switch {
	case was && !now:
		a.pending--
	case !was && now:
		a.pending++
	}
}

// firePending raises the alerts judged before the threshold passed; a.mu is held.
func (a *Alarms) firePending(now, since time.Time) []Alert {
	var out []Alert
	for k, s := range a.states {
		if s.breaking && !s.active {
			s.active, s.lastAlert = true, now
			c, _ := a.cat.ByID(a.cfg.Rules[k.rule].Code)
			out = append(out, a.alert(Raised, k.device, k.rule, c, s, now, &since))
		}
	}
	a.pending = 0
	return out
}

// handover ends every active alert once the uplink is back, and forgets the outage.
func (a *Alarms) handover() {
	a.mu.Lock()
	if !a.wasDown {
		a.mu.Unlock()
		return
	}
	now := a.now()
	var out []Alert
	for k, s := range a.states {
		if s.active {
			c, _ := a.cat.ByID(a.cfg.Rules[k.rule].Code)
			out = append(out, a.alert(Handover, k.device, k.rule, c, s, now, nil))
		}
	}
	clear(a.states)
	a.pending, a.wasDown = 0, false
	a.emit(out)
	a.mu.Unlock()
}

// tick lets time alone move alerts on: the threshold passing and the uplink returning.
func (a *Alarms) tick() {
	since, down := a.cfg.UplinkDown()
	if !down {
		a.handover()
		return
	}
	now := a.now()
	a.mu.Lock()
	a.wasDown = true
	var out []Alert
	if a.pending > 0 && now.Sub(since) >= a.cfg.Threshold {
		out = a.firePending(now, since)
	}
	a.emit(out)
	a.mu.Unlock()
}

func (a *Alarms) alert(ev Event, device string, i int, c codes.Code, s *state, now time.Time, since *time.Time) Alert {
	r := a.cfg.Rules[i]
	return Alert{
		Event: ev, Rule: r.Name, Condition: fmt.Sprintf("%s %s %g", r.Code, r.Op, r.Threshold),
		Device: device, Code: c.ID, Display: c.Display, Value: s.value, Unit: c.Unit,
		Reading: s.at.UTC(), At: now.UTC(), UplinkDownSince: since, Gateway: a.cfg.Gateway,
	}
}

// emit logs the alerts and queues them for the webhook; it never blocks. It runs under a.mu
// so that one device's alert and clear from concurrent packs reach the queue in order.
func (a *Alarms) emit(out []Alert) {
	for _, al := range out {
		a.metrics.alerts.WithLabelValues(string(al.Event)).Inc()
		attrs := []any{"event", al.Event, "rule", al.Rule, "condition", al.Condition, "device", al.Device,
			"value", al.Value, "unit", al.Unit, "reading_time", al.Reading}
		switch al.Event {
		case Raised, Repeated:
			a.log.Warn("edge alarm: the uplink is down and a reading breaks a local rule", attrs...)
		case Cleared:
			a.log.Info("edge alarm cleared", attrs...)
		case Handover:
			a.log.Info("edge alarm handed over: the uplink is back", attrs...)
		}
		if a.cfg.WebhookURL == "" {
			continue
		}
		if a.queue.push(al) {
			a.metrics.webhook.WithLabelValues("dropped").Inc()
			a.log.Warn("edge alarm webhook queue full: oldest alert dropped", "size", a.cfg.QueueSize)
		}
		a.metrics.queued.Set(float64(a.queue.len()))
	}
}
