package alarm

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/iomt/iomt"
	"github.com/iomt/iomt/analytics/news2"
	"github.com/iomt/iomt/codes"
)

// Routing decides who hears of an alarm and when it moves to the next tier. *Router is the
// implementation; tests may supply their own.
type Routing interface {
	// Route returns the notifications to send for the alarm at its current escalation level,
	// because of what just happened to it (raised, priority raised, escalated, silence expired).
	Route(a *Alarm, why ChangeKind, now time.Time) []Delivery
	// Escalation is how long the alarm may stay unacknowledged at its current level before it
	// moves to the next; false if there is no next tier.
	Escalation(a *Alarm) (time.Duration, bool)
}

// Config configures an Engine.
type Config struct {
	// Rules apply to tenants without rules of their own; nil: the embedded adult defaults.
	Rules *Rules
	// Router, if set, turns raises and escalations into Deliveries and drives escalation.
	Router Routing
	// Clock is the wall clock for lifecycle operations and arrivals; default time.Now. Tick is
	// given its time explicitly.
	Clock func() time.Time
	// MaxSilence bounds a silence or snooze (default 1h): a silenced alarm must come back.
	MaxSilence time.Duration
	Logger     *slog.Logger
}

// Engine evaluates alarm rules on readings and events as they arrive and keeps one state
// machine per patient, rule and (for per-device rules) device. It does no I/O and starts no
// goroutines; all time comes from readings, Config.Clock and Tick. It is safe for concurrent
// use, but one patient's readings must be given in order (the bus partitions by patient).
type Engine struct {
	mu       sync.Mutex
	defaults *Rules
	tenants  map[string]*Rules
	router   Routing
	clock    func() time.Time
	maxSil   time.Duration
	log      *slog.Logger
	patients map[string]*patient
	alarms   map[string]*Alarm // unresolved alarms by ID
	silences []Silence
	overCost map[string]bool // rules whose expressions were stopped at MaxCost, logged once
}

// NewEngine returns an engine with cfg.
func NewEngine(cfg Config) (*Engine, error) {
	if cfg.Rules == nil {
		r, err := DefaultRules()
		if err != nil {
			return nil, err
		}
		cfg.Rules = r
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.MaxSilence == 0 {
		cfg.MaxSilence = time.Hour
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Engine{defaults: cfg.Rules, tenants: map[string]*Rules{}, router: cfg.Router, clock: cfg.Clock,
		maxSil: cfg.MaxSilence, log: cfg.Logger, patients: map[string]*patient{}, alarms: map[string]*Alarm{}}, nil
}

// patient is one patient's evaluation state.
type patient struct {
	tenant, id string
	rules      *Rules
	vitals     map[string]float64 // latest value by code, from devices with a good signal
	vtime      map[string]time.Time
	trackers   map[trackKey]*tracker
	devices    map[string]*devState
	taken      time.Time      // newest reading time
	arrival    time.Time      // when it arrived
	news2      map[string]any // cached for the current vitals; nil: recompute
	// scale is the patient's SpO2 scale as the NEWS2 scorer last told it (NEWS2Event); 0
	// while unknown.
	scale news2.Scale
}

type trackKey struct{ rule, device string }

// devState is when a device was last heard from and how often it usually sends.
type devState struct {
	last time.Time
	gap  time.Duration // smoothed interval between arrivals
}

// silentFor is how long the device may be silent before an offline rule with minimum after
// applies: three usual intervals, so a cuff measuring every 15 minutes is not "offline" at 2.
func (d *devState) silentFor(after time.Duration) time.Duration { return max(after, 3*d.gap) }

// tracker is the state machine of one rule for one patient (and device).
type tracker struct {
	// onset[p] is since when a level of at least p has held without a break; zero: not now.
	onset   [High + 1]time.Time
	present bool // the condition holds (between raising and clearing, hysteresis included)
	last    time.Time
	value   float64
	limit   float64
	device  string
	alarm   *Alarm
	// sensors holds, for a signal-quality rule, the event kinds asserted and not yet cleared on
	// the device (an ECG's lead-off, an oximeter's probe-off): one sensor's all-clear does not
	// end another's condition.
	sensors map[string]bool
}

func (t *tracker) pending() bool {
	for p := Low; p <= High; p++ {
		if !t.onset[p].IsZero() && (t.alarm == nil || p > t.alarm.Priority) {
			return true
		}
	}
	return false
}

// SetRules gives a tenant its own compiled rules. Alarms of rules that no longer exist are
// resolved; alarms of kept rules carry on under the new version.
func (e *Engine) SetRules(tenant string, r *Rules) []Change {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.tenants[tenant] = r
	var out []Change
	now := e.clock()
	for _, p := range e.sortedPatients() {
		if p.tenant != tenant {
			continue
		}
		p.rules, p.news2 = r, nil
		for _, k := range sortedTrackers(p.trackers) {
			if r.byID(k.rule) != nil {
				continue
			}
			if t := p.trackers[k]; t.alarm != nil {
				out = append(out, e.resolve(t.alarm, System, now, fmt.Sprintf("rule %s removed in rule set version %d", k.rule, r.Version())))
			}
			delete(p.trackers, k)
		}
	}
	return out
}

func (e *Engine) rulesFor(tenant string) *Rules {
	if r := e.tenants[tenant]; r != nil {
		return r
	}
	return e.defaults
}

func (e *Engine) patient(tenant, id string) *patient {
	p := e.patients[id]
	if p == nil {
		if tenant == "" {
			tenant = iomt.DefaultTenant
		}
		p = &patient{tenant: tenant, id: id, rules: e.rulesFor(tenant), vitals: map[string]float64{},
			vtime: map[string]time.Time{}, trackers: map[trackKey]*tracker{}, devices: map[string]*devState{}}
		e.patients[id] = p
	}
	return p
}

func (p *patient) tracker(rule, device string) *tracker {
	k := trackKey{rule, device}
	t := p.trackers[k]
	if t == nil {
		t = &tracker{device: device}
		p.trackers[k] = t
	}
	return t
}

// poor reports whether a signal-quality condition holds on the device.
func (p *patient) poor(device string) bool {
	if device == "" {
		return false
	}
	for _, c := range p.rules.quality {
		if t := p.trackers[trackKey{c.ID, device}]; t != nil && t.present {
			return true
		}
	}
	return false
}

// deviceOf is the device an observation came from: its own, else its batch's.
func deviceOf(o iomt.Observation, b iomt.Batch) string {
	if o.Device != "" {
		return o.Device
	}
	return b.Device
}

// clockAt is the patient's time at wall time now: the newest reading's time plus the time
// since it arrived, so that a device replaying stored readings is judged by its own times.
func (p *patient) clockAt(now time.Time) time.Time {
	if p.taken.IsZero() {
		return now
	}
	return p.taken.Add(now.Sub(p.arrival))
}

// Observe evaluates a batch of readings as it arrives and returns what changed.
func (e *Engine) Observe(b iomt.Batch) []Change {
	if len(b.Observations) == 0 {
		return nil
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	now := e.clock()
	arrived := b.Received
	if arrived.IsZero() {
		arrived = now
	}
	var out []Change
	patientID := b.Patient
	if patientID == "" {
		patientID = b.Observations[0].Patient
	}
	p := e.patient(b.Tenant, patientID)
	r := p.rules
	if b.Device != "" {
		out = e.deviceSeen(out, p, b.Device, arrived, now)
	}
	// An oximeter's own word on its sensor comes first, so that the readings of the same batch
	// are judged with it: a value read with the probe off raises nothing.
	for _, o := range b.Observations {
		off, poor, ok := codes.OximeterQualityOf(o)
		if !ok {
			continue
		}
		dev := deviceOf(o, b)
		for _, q := range []struct {
			kind   string
			active bool
		}{{"probe-off", off}, {"noise", poor}} {
			out = e.eventFor(out, p, SignalQualityEvent, map[string]any{"device": dev, "kind": q.kind, "active": q.active}, o.Time, now)
		}
	}
	var newest time.Time
	for i := range b.Observations {
		o := &b.Observations[i]
		if o.Time.After(newest) {
			newest = o.Time
		}
		dev := deviceOf(*o, b)
		if dev != b.Device && dev != "" {
			out = e.deviceSeen(out, p, dev, arrived, now)
		}
		poor := p.poor(dev)
		if !poor {
			if cur, ok := p.vtime[o.Code]; !ok || !o.Time.Before(cur) {
				p.vitals[o.Code], p.vtime[o.Code] = o.Value, o.Time
				p.news2 = nil
			}
		}
		for _, c := range r.byCode[o.Code] {
			rc := r.rule(p.id, c)
			if !rc.enabled() {
				continue
			}
			key := ""
			if rc.PerDevice {
				key = dev
			}
			t := p.tracker(rc.ID, key)
			if poor && rc.Category == Physiological {
				// Readings of a device with a poor signal neither raise nor clear; a pending
				// condition must hold again on good signal for the full delay.
				t.onset = [High + 1]time.Time{}
				continue
			}
			level, limit, cleared := threshold(rc, o.Value)
			if a := t.alarm; a != nil && a.Device != "" && a.Device != dev {
				// Only the source that raised an alarm clears it: a cuff's heart rate of 120
				// does not end a tachycardia the ECG still sees.
				cleared = false
			}
			t.value, t.last = o.Value, o.Time
			if level > 0 {
				t.limit = limit
			}
			if t.alarm == nil || level > 0 {
				t.device = dev
			}
			out = e.step(out, p, rc, t, o.Time, level, cleared, now)
		}
	}
	if newest.After(p.taken) {
		p.taken, p.arrival = newest, arrived
	}
	if len(r.conditions) > 0 {
		out = e.conditions(out, p, newest, b.Device, now)
	}
	return out
}

// Status feeds a device's self-report (battery) as the reading MDC_ATTR_VAL_BATT_CHARGE, which
// ingest keeps out of batches.
func (e *Engine) Status(tenant, patient string, s iomt.DeviceStatus) []Change {
	if s.Battery == nil {
		return nil
	}
	return e.Observe(iomt.Batch{Tenant: tenant, Patient: patient, Device: s.Device, Received: s.LastSeen,
		Observations: []iomt.Observation{{Patient: patient, Device: s.Device, Code: BatteryCode, Time: s.LastSeen, Value: *s.Battery, Unit: "%"}}})
}

// BatteryCode is the catalog ID of a device's battery charge.
const BatteryCode = "MDC_ATTR_VAL_BATT_CHARGE"

// sameArrival: arrivals of one device closer than this are one message seen twice (its
// readings and its battery report travel separately), not a device sending that often; counted
// as gaps they would make a cuff measuring every 15 minutes "offline" after 2.
const sameArrival = 100 * time.Millisecond

// deviceSeen records an arrival from a device and clears its offline conditions.
func (e *Engine) deviceSeen(out []Change, p *patient, dev string, arrived, now time.Time) []Change {
	d := p.devices[dev]
	if d == nil {
		d = &devState{}
		p.devices[dev] = d
	} else if g := arrived.Sub(d.last); g >= sameArrival {
		if d.gap == 0 {
			d.gap = g
		} else {
			d.gap += (g - d.gap) / 4
		}
	}
	if arrived.After(d.last) {
		d.last = arrived
	}
	for _, c := range p.rules.offline {
		if t := p.trackers[trackKey{c.ID, dev}]; t != nil && (t.present || t.pending()) {
			rc := p.rules.rule(p.id, c)
			t.value = 0
			out = e.step(out, p, rc, t, arrived, 0, true, now)
		}
	}
	return out
}

// threshold places a value in a rule's bands: the priority of the furthest band crossed, its
// limit, and whether the value is back inside the first band by the hysteresis.
func threshold(c *compiled, v float64) (Priority, float64, bool) {
	var level Priority
	var limit float64
	for _, b := range c.Below {
		if v < b.Limit && b.Priority > level {
			level, limit = b.Priority, b.Limit
		}
	}
	for _, b := range c.Above {
		if v > b.Limit && b.Priority > level {
			level, limit = b.Priority, b.Limit
		}
	}
	cleared := true
	if len(c.Below) > 0 && v < c.Below[0].Limit+c.Hysteresis {
		cleared = false
	}
	if len(c.Above) > 0 && v > c.Above[0].Limit-c.Hysteresis {
		cleared = false
	}
	return level, limit, cleared
}

// step advances one tracker by one observation of its condition at time t: level is the
// priority the condition has now (0: none), cleared whether it is gone (past hysteresis).
func (e *Engine) step(out []Change, p *patient, c *compiled, t *tracker, at time.Time, level Priority, cleared bool, now time.Time) []Change {
	for q := Low; q <= High; q++ {
		switch {
		case q <= level && t.onset[q].IsZero():
			t.onset[q] = at
		case q > level:
			t.onset[q] = time.Time{}
		}
	}
	if level > 0 {
		t.present = true
		if t.alarm != nil {
			// A repeat changes nothing to tell, but is kept with the next snapshot.
			t.alarm.ConditionSeen = at
		}
	} else if cleared {
		t.present = false
	}
	out = e.settle(out, p, c, t, at, now)
	if level == 0 && cleared && t.alarm != nil && t.alarm.ConditionActive {
		a := t.alarm
		a.ConditionActive, a.Cleared = false, at
		why := fmt.Sprintf("condition cleared (%s)", trimFloat(t.value))
		if c.Kind != Threshold {
			why = "condition cleared"
		}
		if a.Latching {
			note(a, System, at, why+"; latched until resolved")
			out = append(out, Change{Kind: ConditionClear, Alarm: clone(a)})
		} else {
			out = append(out, e.resolve(a, System, at, why))
		}
	}
	if t.alarm != nil && t.alarm.State == Resolved {
		t.alarm = nil
	}
	return out
}

// settle raises or worsens the tracker's alarm when a level has held for the validation delay.
func (e *Engine) settle(out []Change, p *patient, c *compiled, t *tracker, at, now time.Time) []Change {
	var eff Priority
	for q := High; q >= Low; q-- {
		if on := t.onset[q]; !on.IsZero() && at.Sub(on) >= c.Delay.D() {
			eff = q
			break
		}
	}
	if eff == 0 {
		return out
	}
	a := t.alarm
	switch {
	case a == nil:
		return append(out, e.raise(p, c, t, eff, at, now))
	case eff > a.Priority:
		old := a.Priority
		a.Priority, a.Value, a.Limit = eff, t.value, t.limit
		a.Message = message(c.Message, a)
		why := fmt.Sprintf("priority %s → %s: %s", old, eff, a.Message)
		if a.State == Acknowledged {
			// The acknowledgement covered a lesser condition: the worse one needs a person again.
			record(a, Active, System, at, why)
			a.Acked = time.Time{}
		} else {
			note(a, System, at, why)
		}
		if !a.ConditionActive {
			a.ConditionActive, a.Cleared = true, time.Time{}
		}
		ch := Change{Kind: PriorityRaised}
		e.notify(&ch, a, c, now)
		return append(out, ch)
	case !a.ConditionActive:
		a.ConditionActive, a.Cleared = true, time.Time{}
		note(a, System, at, "condition returned")
		return append(out, Change{Kind: ConditionReturn, Alarm: clone(a)})
	}
	return out
}

func alarmID(tenant, patient, rule, device string, at time.Time) string {
	h := sha256.New()
	for _, s := range []string{tenant, patient, rule, device, strconv.FormatInt(at.UnixMilli(), 10)} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	return "al_" + hex.EncodeToString(h.Sum(nil)[:12])
}

func (e *Engine) raise(p *patient, c *compiled, t *tracker, pr Priority, at, now time.Time) Change {
	dev := t.device
	a := &Alarm{
		Tenant: p.tenant, Patient: p.id, Device: dev, Rule: c.ID, RuleVersion: p.rules.Version(),
		Category: c.Category, Priority: pr, State: Active, Latching: c.Latching, Raised: at,
		ConditionSeen: at, ConditionActive: true, Value: t.value, Limit: t.limit, Code: c.Code, Event: c.Event,
	}
	a.ID = alarmID(p.tenant, p.id, c.ID, dev, at)
	a.Message = message(c.Message, a)
	a.Transitions = []Transition{{To: Active, Who: System, When: at, Why: a.Message}}
	for _, s := range e.silences {
		if s.Until.After(now) && s.matches(a) && s.Until.After(a.SilencedUntil) {
			a.SilencedUntil = s.Until
		}
	}
	t.alarm = a
	e.alarms[a.ID] = a
	ch := Change{Kind: Raised}
	e.notify(&ch, a, c, now)
	e.log.Debug("alarm raised", "alarm", a.ID, "patient", a.Patient, "rule", a.Rule, "priority", a.Priority.String())
	return ch
}

// notify routes a raise or a priority rise (unless silenced), adds the rule's device command
// and arms the escalation timer; it fills ch with the alarm's snapshot.
func (e *Engine) notify(ch *Change, a *Alarm, c *compiled, now time.Time) {
	if e.router != nil && !a.Silenced(now) {
		ch.Deliveries = e.router.Route(a, ch.Kind, now)
		e.arm(a, now)
	}
	if c != nil && c.Command != nil {
		ch.Deliveries = append(ch.Deliveries, commandDelivery(a, c.Command, ch.Kind))
	}
	ch.Alarm = clone(a)
}

// arm sets when an unacknowledged alarm next escalates.
func (e *Engine) arm(a *Alarm, now time.Time) {
	a.NextEscalation = time.Time{}
	if e.router == nil || a.State != Active {
		return
	}
	if d, ok := e.router.Escalation(a); ok {
		a.NextEscalation = now.Add(d)
	}
}

func (e *Engine) resolve(a *Alarm, who string, at time.Time, why string) Change {
	record(a, Resolved, who, at, why)
	a.Resolved, a.NextEscalation = at, time.Time{}
	delete(e.alarms, a.ID)
	return Change{Kind: ResolvedChange, Alarm: clone(a)}
}

// conditions evaluates the patient's condition rules once per batch.
func (e *Engine) conditions(out []Change, p *patient, at time.Time, device string, now time.Time) []Change {
	r := p.rules
	p.purge(at)
	act := &activation{p: p, device: device}
	for _, c := range r.conditions {
		rc := r.rule(p.id, c)
		if !rc.enabled() {
			continue
		}
		var level Priority
		for i, prog := range rc.levels {
			if e.eval(rc.ID, prog, act) {
				level = rc.Levels[i].Priority
				break
			}
		}
		cleared := level == 0
		if rc.clearWhen != nil {
			cleared = level == 0 && e.eval(rc.ID, rc.clearWhen, act)
		}
		t := p.tracker(rc.ID, "")
		if level == 0 && !t.present && !t.pending() {
			continue
		}
		if level > 0 {
			t.value, t.device = news2Total(act), device
		}
		t.last = at
		out = e.step(out, p, rc, t, at, level, cleared, now)
	}
	return out
}

// purge forgets readings too old to stand for the patient's current state.
func (p *patient) purge(at time.Time) {
	for code, t := range p.vtime {
		if at.Sub(t) > p.rules.freshFor(code) {
			delete(p.vitals, code)
			delete(p.vtime, code)
			p.news2 = nil
		}
	}
}

// Event evaluates an analytics event (iomt.Event) against the event rules of its kind.
func (e *Engine) Event(ev iomt.Event) []Change {
	e.mu.Lock()
	defer e.mu.Unlock()
	if ev.Kind == NEWS2Event {
		e.learnScale(ev)
	}
	var data map[string]any
	if len(ev.Data) > 0 {
		if err := json.Unmarshal(ev.Data, &data); err != nil {
			e.log.Warn("alarm: event data is not a JSON object", "patient", ev.Patient, "kind", ev.Kind, "err", err)
			return nil
		}
	}
	return e.event(nil, ev.Tenant, ev.Patient, ev.Kind, data, ev.Time)
}

// event evaluates an event of kind with data against the patient's event rules of that kind,
// appending to out; at zero means the patient's clock now. A patient without such rules is
// not created for it.
func (e *Engine) event(out []Change, tenant, patient, kind string, data map[string]any, at time.Time) []Change {
	rules := e.rulesFor(tenant).byEvent[kind]
	if p := e.patients[patient]; p != nil {
		rules = p.rules.byEvent[kind]
	}
	if len(rules) == 0 {
		return out
	}
	return e.eventFor(out, e.patient(tenant, patient), kind, data, at, e.clock())
}

// eventFor is event for a patient at hand, at wall time now.
func (e *Engine) eventFor(out []Change, p *patient, kind string, data map[string]any, at, now time.Time) []Change {
	rules := p.rules.byEvent[kind]
	if data == nil {
		data = map[string]any{}
	}
	device, _ := data["device"].(string)
	if at.IsZero() {
		at = p.clockAt(now)
	}
	act := &activation{p: p, device: device, event: data, kind: kind}
	for _, c := range rules {
		rc := p.rules.rule(p.id, c)
		if !rc.enabled() {
			continue
		}
		if rc.Category == Physiological && p.poor(device) {
			continue
		}
		key := ""
		if rc.PerDevice {
			key = device
		}
		matched := rc.when == nil || e.eval(rc.ID, rc.when, act)
		cleared := rc.clear != nil && e.eval(rc.ID, rc.clear, act)
		t := p.tracker(rc.ID, key)
		if rc.Quality {
			sensor, _ := data["kind"].(string)
			switch {
			case cleared:
				delete(t.sensors, sensor)
				if len(t.sensors) > 0 {
					continue
				}
			case matched:
				if t.sensors == nil {
					t.sensors = map[string]bool{}
				}
				t.sensors[sensor] = true
			}
		}
		var level Priority
		switch {
		case cleared:
		case matched:
			level = rc.Priority
			if v, ok := number(data); ok {
				t.value = v
			}
			t.device = device
		default:
			continue
		}
		t.last = at
		out = e.step(out, p, rc, t, at, level, cleared, now)
	}
	return out
}

// SignalQualityEvent is the kind of the events the quality rules read:
// {"device", "kind": lead-off|probe-off|noise|saturation, "active"}. Observe also makes them
// of an oximeter's own status (codes.OximeterStatus).
const SignalQualityEvent = "signal-quality"

// NEWS2Event is the kind of the NEWS2 scorer's events (watch.NEWS2Score); the engine learns
// each patient's SpO2 scale from their "scale" field, which the scorer reads from the registry.
const NEWS2Event = "news2"

// learnScale keeps the SpO2 scale a NEWS2 event was scored on (1 or 2; 0, unknown to the
// scorer too, changes nothing), so that the news2 variable scores SpO2 as the chart does for
// that patient.
func (e *Engine) learnScale(ev iomt.Event) {
	var d struct {
		Scale news2.Scale `json:"scale"`
	}
	if json.Unmarshal(ev.Data, &d) != nil || (d.Scale != news2.Scale1 && d.Scale != news2.Scale2) {
		return
	}
	p := e.patient(ev.Tenant, ev.Patient)
	if p.scale != d.Scale {
		p.scale, p.news2 = d.Scale, nil
	}
}

// number finds the value an event carries, for the alarm's Value.
func number(data map[string]any) (float64, bool) {
	for _, k := range []string{"value", "mgdl", "total", "predicted"} {
		if v, ok := data[k].(float64); ok {
			return v, true
		}
	}
	return 0, false
}

// Tick advances the time-driven parts to wall time now: validation delays of conditions that
// last without new readings, event holds, offline devices, escalation and silence expiry.
// Call it every second or so.
func (e *Engine) Tick(now time.Time) []Change {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []Change
	e.silences = slices.DeleteFunc(e.silences, func(s Silence) bool { return !s.Until.After(now) })
	for _, p := range e.sortedPatients() {
		at := p.clockAt(now)
		r := p.rules
		for _, c := range r.offline {
			rc := r.rule(p.id, c)
			if !rc.enabled() {
				continue
			}
			for _, dev := range sortedKeys(p.devices) {
				d := p.devices[dev]
				if d.gap == 0 || now.Sub(d.last) < d.silentFor(rc.After.D()) {
					continue
				}
				t := p.tracker(rc.ID, dev)
				if t.present && !t.pending() {
					continue
				}
				t.value, t.device = now.Sub(d.last).Round(time.Second).Seconds(), dev
				out = e.step(out, p, rc, t, now, rc.Priority, false, now)
			}
		}
		for _, k := range sortedTrackers(p.trackers) {
			t := p.trackers[k]
			c := r.byID(k.rule)
			if c == nil || c.Kind == Offline {
				continue
			}
			rc := r.rule(p.id, c)
			if c.Kind == EventKind && rc.clear == nil && t.present && at.Sub(t.last) >= rc.Hold.D() {
				out = e.step(out, p, rc, t, at, 0, true, now)
				continue
			}
			if t.pending() {
				out = e.settle(out, p, rc, t, at, now)
			}
		}
	}
	for _, id := range sortedKeys(e.alarms) {
		a := e.alarms[id]
		if !a.SilencedUntil.IsZero() && !now.Before(a.SilencedUntil) {
			a.SilencedUntil = time.Time{}
			note(a, System, now, "silence expired")
			ch := Change{Kind: SilenceExpired}
			if a.State == Active {
				e.notify(&ch, a, nil, now)
			} else {
				ch.Alarm = clone(a)
			}
			out = append(out, ch)
			continue
		}
		if a.State != Active || a.NextEscalation.IsZero() || now.Before(a.NextEscalation) || a.Silenced(now) {
			continue
		}
		a.Level++
		note(a, System, now, fmt.Sprintf("not acknowledged: escalated to tier %d", a.Level+1))
		ch := Change{Kind: Escalated, Deliveries: e.router.Route(a, Escalated, now)}
		e.arm(a, now)
		ch.Alarm = clone(a)
		out = append(out, ch)
	}
	return out
}

func (r *Rules) byID(id string) *compiled { return r.ids[id] }

func (e *Engine) sortedPatients() []*patient {
	ps := make([]*patient, 0, len(e.patients))
	for _, id := range sortedKeys(e.patients) {
		ps = append(ps, e.patients[id])
	}
	return ps
}

func sortedTrackers(m map[trackKey]*tracker) []trackKey {
	ks := make([]trackKey, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.SortFunc(ks, func(a, b trackKey) int {
		return cmp.Or(strings.Compare(a.rule, b.rule), strings.Compare(a.device, b.device))
	})
	return ks
}

// Acknowledge records that who is dealing with the alarm; escalation stops.
func (e *Engine) Acknowledge(id, who, why string) (Change, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	a, err := e.find(id, who)
	if err != nil {
		return Change{}, err
	}
	if a.State != Active {
		return Change{}, fmt.Errorf("%w: alarm %s is %s, only an active alarm can be acknowledged", ErrInvalidTransition, id, a.State)
	}
	now := e.clock()
	record(a, Acknowledged, who, now, why)
	a.Acked, a.NextEscalation = now, time.Time{}
	return Change{Kind: AcknowledgedBy, Alarm: clone(a)}, nil
}

// Resolve closes an alarm whose condition has cleared (a latched alarm, or one that someone
// resolves before the engine sees the clearing reading). An alarm whose condition still holds
// cannot be resolved: it would be raised again at once; acknowledge or silence it instead.
func (e *Engine) Resolve(id, who, why string) (Change, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	a, err := e.find(id, who)
	if err != nil {
		return Change{}, err
	}
	if a.ConditionActive {
		return Change{}, fmt.Errorf("%w: alarm %s: its condition still holds; acknowledge or silence it instead", ErrInvalidTransition, id)
	}
	if why == "" {
		return Change{}, fmt.Errorf("%w: alarm %s: resolving needs a reason", ErrInvalidTransition, id)
	}
	ch := e.resolve(a, who, e.clock(), why)
	if p := e.patients[a.Patient]; p != nil {
		for _, t := range p.trackers {
			if t.alarm == a {
				t.alarm = nil
			}
		}
	}
	return ch, nil
}

func (e *Engine) find(id, who string) (*Alarm, error) {
	if who == "" {
		return nil, fmt.Errorf("%w: alarm %s: who is required", ErrInvalidTransition, id)
	}
	a := e.alarms[id]
	if a == nil {
		return nil, fmt.Errorf("alarm %s (unresolved alarms only): %w", id, iomt.ErrNotFound)
	}
	return a, nil
}

// Scope says which alarms a silence covers. Alarm names one alarm; otherwise Patient is
// required and Rule and Device narrow it. A scope wider than one alarm also covers alarms
// raised while it lasts.
type Scope struct {
	Alarm   string `json:"alarm,omitempty"`
	Patient string `json:"patient,omitempty"`
	Rule    string `json:"rule,omitempty"`
	Device  string `json:"device,omitempty"`
}

// Silence pauses the notifications (and escalation) of the alarms in its scope until Until;
// the alarms stay visible and keep being evaluated.
type Silence struct {
	Scope `json:"scope"`
	Who   string    `json:"who"`
	Why   string    `json:"why"`
	Until time.Time `json:"until"`
}

func (s Silence) matches(a *Alarm) bool {
	if s.Alarm != "" {
		return s.Alarm == a.ID
	}
	return s.Patient == a.Patient && (s.Rule == "" || s.Rule == a.Rule) && (s.Device == "" || s.Device == a.Device)
}

// Silence applies a silence (snooze) and returns the alarms it silenced.
func (e *Engine) Silence(s Silence) ([]Change, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	now := e.clock()
	// Milliseconds, as stored: the silence restored after a restart is the same silence.
	s.Until = s.Until.Truncate(time.Millisecond)
	// A silence asked for wrongly is bad input (the API's 422), not a conflict with the
	// alarm's state.
	switch {
	case s.Who == "":
		return nil, fmt.Errorf("%w: silence: who is required", iomt.ErrInvalid)
	case s.Alarm == "" && s.Patient == "":
		return nil, fmt.Errorf("%w: silence: the scope needs an alarm or a patient", iomt.ErrInvalid)
	case !s.Until.After(now):
		return nil, fmt.Errorf("%w: silence: until %s is not in the future", iomt.ErrInvalid, s.Until.Format(time.RFC3339))
	case s.Until.Sub(now) > e.maxSil:
		return nil, fmt.Errorf("%w: silence: %s is longer than the longest allowed, %s", iomt.ErrInvalid,
			s.Until.Sub(now).Round(time.Second), e.maxSil)
	}
	if s.Alarm != "" && e.alarms[s.Alarm] == nil {
		return nil, fmt.Errorf("silence: alarm %s (unresolved alarms only): %w", s.Alarm, iomt.ErrNotFound)
	}
	var out []Change
	for _, id := range sortedKeys(e.alarms) {
		a := e.alarms[id]
		if !s.matches(a) {
			continue
		}
		a.SilencedUntil, a.NextEscalation = s.Until, time.Time{}
		why := fmt.Sprintf("silenced until %s", s.Until.UTC().Format(time.RFC3339))
		if s.Why != "" {
			why += ": " + s.Why
		}
		note(a, s.Who, now, why)
		out = append(out, Change{Kind: SilencedBy, Alarm: clone(a)})
	}
	if s.Alarm == "" {
		e.keepSilence(s)
	}
	return out, nil
}

// keepSilence holds a scoped silence for the alarms raised while it lasts, once.
func (e *Engine) keepSilence(s Silence) {
	if !slices.ContainsFunc(e.silences, func(h Silence) bool { return h.Scope == s.Scope && h.Until.Equal(s.Until) }) {
		e.silences = append(e.silences, s)
	}
}

// RestoreSilences puts back the patient-scoped silences still in force (from the wiring's
// store, after a restart or a partition takeover), so that alarms raised while they last are
// silenced. A silence already held (same scope and end, to the millisecond) is not added
// twice. The alarms they silenced carry their own SilencedUntil and come back with Restore.
func (e *Engine) RestoreSilences(ss []Silence) {
	e.mu.Lock()
	defer e.mu.Unlock()
	now := e.clock()
	for _, s := range ss {
		s.Until = s.Until.Truncate(time.Millisecond)
		if s.Alarm != "" || s.Patient == "" || !s.Until.After(now) {
			continue
		}
		e.keepSilence(s)
	}
}

// Silences returns the patient-scoped silences in force for a patient ("" for every patient),
// soonest to end first.
func (e *Engine) Silences(patient string) []Silence {
	e.mu.Lock()
	defer e.mu.Unlock()
	now := e.clock()
	var out []Silence
	for _, s := range e.silences {
		if (patient == "" || s.Patient == patient) && s.Until.After(now) {
			out = append(out, s)
		}
	}
	slices.SortStableFunc(out, func(x, y Silence) int { return x.Until.Compare(y.Until) })
	return out
}

// Tenant returns the tenant of a patient the engine holds readings or alarms of.
func (e *Engine) Tenant(patient string) (string, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if p := e.patients[patient]; p != nil {
		return p.tenant, true
	}
	for _, a := range e.alarms {
		if a.Patient == patient {
			return a.Tenant, true
		}
	}
	return "", false
}

// Filter selects unresolved alarms; zero fields match everything.
type Filter struct {
	Tenant, Patient string
	MinPriority     Priority
	State           State
}

// Alarms returns the unresolved alarms that match f, highest priority first, then oldest.
func (e *Engine) Alarms(f Filter) []Alarm {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []Alarm
	for _, a := range e.alarms {
		if (f.Tenant == "" || f.Tenant == a.Tenant) && (f.Patient == "" || f.Patient == a.Patient) &&
			a.Priority >= f.MinPriority && (f.State == "" || f.State == a.State) {
			out = append(out, clone(a))
		}
	}
	slices.SortFunc(out, func(x, y Alarm) int {
		if x.Priority != y.Priority {
			return int(y.Priority - x.Priority)
		}
		if c := x.Raised.Compare(y.Raised); c != 0 {
			return c
		}
		return strings.Compare(x.ID, y.ID)
	})
	return out
}

// Unresolved counts the unresolved alarms by priority, without copying them.
func (e *Engine) Unresolved() map[iomt.AlarmPriority]int {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := map[iomt.AlarmPriority]int{}
	for _, a := range e.alarms {
		n[a.Priority]++
	}
	return n
}

// Alarm returns one unresolved alarm.
func (e *Engine) Alarm(id string) (Alarm, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	a := e.alarms[id]
	if a == nil {
		return Alarm{}, false
	}
	return clone(a), true
}

// Forget drops a patient's state (discharged, or their partition moved to another node),
// resolving their alarms with the reason given.
func (e *Engine) Forget(patient, why string) []Change {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []Change
	now := e.clock()
	for _, id := range sortedKeys(e.alarms) {
		if a := e.alarms[id]; a.Patient == patient {
			out = append(out, e.resolve(a, System, now, why))
		}
	}
	delete(e.patients, patient)
	return out
}

// Restore puts unresolved alarms back after a restart (from the wiring's store), so that
// they are de-duplicated against, escalate and can be acknowledged.
func (e *Engine) Restore(as []Alarm) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for i := range as {
		a := clone(&as[i])
		if a.State == Resolved {
			continue
		}
		e.alarms[a.ID] = &a
		p := e.patient(a.Tenant, a.Patient)
		key := ""
		if c := p.rules.byID(a.Rule); c != nil && p.rules.rule(p.id, c).PerDevice {
			key = a.Device
		}
		t := p.tracker(a.Rule, key)
		t.alarm, t.present, t.device = &a, a.ConditionActive, a.Device
		// An event rule's hold counts from the condition's last assertion, not from zero
		// (which would clear a condition still present the moment the engine ticks).
		t.last = a.Raised
		if a.ConditionSeen.After(t.last) {
			t.last = a.ConditionSeen
		}
	}
}

// Release drops a patient's state without touching their alarms' lifecycle: their partition
// moved to another node, which restores the unresolved alarms and the silences from the store.
func (e *Engine) Release(patient string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for id, a := range e.alarms {
		if a.Patient == patient {
			delete(e.alarms, id)
		}
	}
	e.silences = slices.DeleteFunc(e.silences, func(s Silence) bool { return s.Patient == patient })
	delete(e.patients, patient)
}

// Patients lists the patients the engine holds state for (readings, alarms or silences).
func (e *Engine) Patients() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	seen := map[string]bool{}
	for _, p := range e.patients {
		seen[p.id] = true
	}
	for _, a := range e.alarms {
		seen[a.Patient] = true
	}
	for _, s := range e.silences {
		seen[s.Patient] = true
	}
	return sortedKeys(seen)
}

// SetRouter replaces the routing (teams, rosters, policies); nil routes to no one. Alarms
// already raised keep their escalation times and follow the new policies from their next step.
func (e *Engine) SetRouter(r Routing) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.router = r
}

// Redeliver returns again the deliveries of a routing event (raised, escalated, ...) of an
// unresolved alarm whose notifications may not have gone out (the node stopped while sending
// them). The alarm is as it was then, so the deliveries carry the same IDs and receivers drop
// what they already had.
func (e *Engine) Redeliver(id string, why ChangeKind, now time.Time) (Change, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	a := e.alarms[id]
	if a == nil {
		return Change{}, false
	}
	ch := Change{Kind: why}
	if e.router != nil && !a.Silenced(now) && why != AcknowledgedBy && why != SilencedBy && why != ResolvedChange {
		ch.Deliveries = e.router.Route(a, why, now)
	}
	if r := e.rulesFor(a.Tenant); r != nil {
		if c := r.byID(a.Rule); c != nil {
			if rc := r.rule(a.Patient, c); rc.Command != nil && (why == Raised || why == PriorityRaised) {
				ch.Deliveries = append(ch.Deliveries, commandDelivery(a, rc.Command, why))
			}
		}
	}
	ch.Alarm = clone(a)
	return ch, true
}
