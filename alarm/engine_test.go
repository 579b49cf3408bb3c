package alarm

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/iomt/iomt"
	"github.com/iomt/iomt/codes"
)

const (
	spo2 = "59408-5"
	hr   = "8867-4"
)

// feed sends one reading a second for d and returns every change, ticking as it goes.
func feed(e *Engine, c *fakeClock, patient, device, code string, v float64, d time.Duration) []Change {
	var out []Change
	for end := c.now.Add(d); c.now.Before(end); {
		c.Add(time.Second)
		out = append(out, e.Observe(batch(patient, device, c.now, obs(code, v)))...)
		out = append(out, e.Tick(c.now)...)
	}
	return out
}

func kinds(chs []Change) []string {
	var ks []string
	for _, c := range chs {
		ks = append(ks, string(c.Kind)+":"+c.Alarm.Rule+":"+c.Alarm.Priority.String())
	}
	return ks
}

func TestDefaultRulesCompile(t *testing.T) {
	r, err := DefaultRules()
	if err != nil {
		t.Fatal(err)
	}
	if r.Version() != 1 || len(r.Set().Rules) < 20 {
		t.Errorf("version %d, %d rules", r.Version(), len(r.Set().Rules))
	}
}

func TestValidationDelay(t *testing.T) {
	c := newClock()
	e := newEngine(t, c, Config{})
	// A 10 s dip is shorter than the 15 s delay: no alarm.
	if chs := feed(e, c, "p", "ox", spo2, 87, 10*time.Second); len(chs) != 0 {
		t.Fatalf("brief dip alarmed: %v", kinds(chs))
	}
	feed(e, c, "p", "ox", spo2, 97, 5*time.Second)
	chs := feed(e, c, "p", "ox", spo2, 87, 30*time.Second)
	if got := kinds(chs); len(got) != 1 || got[0] != "raised:spo2-low:medium" {
		t.Fatalf("sustained dip: %v", got)
	}
	if a := chs[0].Alarm; a.Value != 87 || a.Limit != 90 || a.Device != "ox" || a.Code != spo2 || !strings.Contains(a.Message, "87") {
		t.Errorf("alarm %+v", a)
	}
}

func TestHysteresisAndSelfClearing(t *testing.T) {
	c := newClock()
	e := newEngine(t, c, Config{})
	feed(e, c, "p", "ox", spo2, 88, 20*time.Second)
	// 90.5 is above the limit but inside the 1 % hysteresis: still present.
	if chs := feed(e, c, "p", "ox", spo2, 90.5, time.Minute); len(chs) != 0 {
		t.Fatalf("inside hysteresis: %v", kinds(chs))
	}
	chs := feed(e, c, "p", "ox", spo2, 91, 2*time.Second)
	if got := kinds(chs); len(got) != 1 || got[0] != "resolved:spo2-low:medium" {
		t.Fatalf("clearing: %v", got)
	}
	a := chs[0].Alarm
	if a.State != Resolved || a.ConditionActive || a.Transitions[len(a.Transitions)-1].Who != System {
		t.Errorf("self-cleared alarm %+v", a)
	}
	if len(e.Alarms(Filter{})) != 0 {
		t.Error("resolved alarm still listed")
	}
}

func TestDeduplicationAndPriorityEscalation(t *testing.T) {
	c := newClock()
	e := newEngine(t, c, Config{})
	chs := feed(e, c, "p", "ox", spo2, 88, 5*time.Minute)
	if got := kinds(chs); len(got) != 1 {
		t.Fatalf("5 minutes of one condition: %v, want one alarm", got)
	}
	id := chs[0].Alarm.ID
	if _, err := e.Acknowledge(id, "nurse-ann", "going to the bedside"); err != nil {
		t.Fatal(err)
	}
	// Worse: below 85 for longer than the delay raises the same alarm's priority, and the
	// acknowledgement (of a lesser condition) no longer holds.
	chs = feed(e, c, "p", "ox", spo2, 82, 20*time.Second)
	if got := kinds(chs); len(got) != 1 || got[0] != "priority-raised:spo2-low:high" {
		t.Fatalf("worsening: %v", got)
	}
	a := chs[0].Alarm
	if a.ID != id || a.State != Active || a.Value != 82 || a.Limit != 85 {
		t.Errorf("after worsening: %+v", a)
	}
	// Getting better (but still low) does not lower the priority.
	if chs := feed(e, c, "p", "ox", spo2, 88, time.Minute); len(chs) != 0 {
		t.Errorf("improving: %v", kinds(chs))
	}
}

func TestSuppressionWhilePoorSignal(t *testing.T) {
	c := newClock()
	e := newEngine(t, c, Config{})
	leadOff := func(active bool) []Change {
		d, _ := json.Marshal(map[string]any{"device": "ecg", "kind": "lead-off", "active": active})
		return e.Event(iomt.Event{Tenant: iomt.DefaultTenant, Patient: "p", Kind: "signal-quality", Time: c.now, Data: d})
	}
	leadOff(true)
	// A flat line or rail reads as absurd rates: they must not alarm while the lead is off.
	chs := feed(e, c, "p", "ecg", hr, 190, time.Minute)
	if got := count(chs, Raised); got["hr-high"] != 0 || got["lead-off"] != 1 {
		t.Fatalf("during lead-off: %v", kinds(chs))
	}
	// Another device's readings are not suppressed.
	if got := count(feed(e, c, "p", "ox", spo2, 80, 30*time.Second), Raised); got["spo2-low"] != 1 {
		t.Errorf("other device suppressed: %v", got)
	}
	chs = leadOff(false)
	if got := kinds(chs); len(got) != 1 || got[0] != "resolved:lead-off:low" {
		t.Fatalf("lead back on: %v", got)
	}
	// Good signal again: the condition must hold for the full delay before it alarms.
	if chs := feed(e, c, "p", "ecg", hr, 190, 5*time.Second); len(chs) != 0 {
		t.Fatalf("alarmed before the delay: %v", kinds(chs))
	}
	if got := count(feed(e, c, "p", "ecg", hr, 190, 10*time.Second), Raised); got["hr-high"] != 1 {
		t.Errorf("after lead-off: %v", got)
	}
}

func TestLatching(t *testing.T) {
	c := newClock()
	e := newEngine(t, c, Config{})
	chs := e.Observe(batch("p", "band", c.now, obs("MDC_AI_TYPE_SENSOR_FALL", 1)))
	if got := kinds(chs); len(got) != 1 || got[0] != "raised:fall:high" {
		t.Fatalf("fall: %v", got)
	}
	id := chs[0].Alarm.ID
	if _, err := e.Resolve(id, "nurse-ann", "patient back in bed"); !errors.Is(err, ErrInvalidTransition) {
		t.Errorf("resolve while the condition holds: %v", err)
	}
	c.Add(time.Minute)
	chs = e.Observe(batch("p", "band", c.now, obs("MDC_AI_TYPE_SENSOR_FALL", 0)))
	if got := kinds(chs); len(got) != 1 || got[0] != "condition-cleared:fall:high" {
		t.Fatalf("fall over: %v", got)
	}
	if a, ok := e.Alarm(id); !ok || a.State != Active {
		t.Fatalf("latched alarm gone: %+v", a)
	}
	if _, err := e.Resolve(id, "nurse-ann", ""); !errors.Is(err, ErrInvalidTransition) {
		t.Errorf("resolve without a reason: %v", err)
	}
	ch, err := e.Resolve(id, "nurse-ann", "patient back in bed, no injury")
	if err != nil {
		t.Fatal(err)
	}
	last := ch.Alarm.Transitions[len(ch.Alarm.Transitions)-1]
	if last.From != Active || last.To != Resolved || last.Who != "nurse-ann" || last.Why != "patient back in bed, no injury" || !last.When.Equal(c.now) {
		t.Errorf("transition %+v", last)
	}
	if _, err := e.Resolve(id, "nurse-ann", "again"); !errors.Is(err, iomt.ErrNotFound) {
		t.Errorf("second resolve: %v", err)
	}
}

func TestLifecycleErrors(t *testing.T) {
	c := newClock()
	e := newEngine(t, c, Config{})
	id := feed(e, c, "p", "ox", spo2, 80, 20*time.Second)[0].Alarm.ID
	if _, err := e.Acknowledge(id, "", "x"); !errors.Is(err, ErrInvalidTransition) {
		t.Errorf("anonymous ack: %v", err)
	}
	if _, err := e.Acknowledge(id, "ann", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Acknowledge(id, "bob", ""); !errors.Is(err, ErrInvalidTransition) || !strings.Contains(err.Error(), "acknowledged") {
		t.Errorf("double ack: %v", err)
	}
	if _, err := e.Acknowledge("al_nope", "ann", ""); !errors.Is(err, iomt.ErrNotFound) {
		t.Errorf("unknown: %v", err)
	}
	for _, s := range []Silence{
		{Scope: Scope{Patient: "p"}, Who: "ann", Until: c.now.Add(-time.Minute)},
		{Scope: Scope{Patient: "p"}, Who: "ann", Until: c.now.Add(3 * time.Hour)},
		{Scope: Scope{}, Who: "ann", Until: c.now.Add(time.Minute)},
		{Scope: Scope{Patient: "p"}, Until: c.now.Add(time.Minute)},
	} {
		if _, err := e.Silence(s); !errors.Is(err, iomt.ErrInvalid) {
			t.Errorf("silence %+v: %v", s, err)
		}
	}
}

func TestOfflineAdaptsToInterval(t *testing.T) {
	c := newClock()
	e := newEngine(t, c, Config{})
	// A thermometer sending every minute, then nothing.
	for range 5 {
		e.Observe(batch("p", "thermo", c.now, obs("8310-5", 37)))
		c.Add(time.Minute)
	}
	var chs []Change
	for range 100 { // 160 s since the last reading: under three intervals
		c.Add(time.Second)
		chs = append(chs, e.Tick(c.now)...)
	}
	if len(chs) != 0 {
		t.Fatalf("offline before 3 intervals / 2 min: %v", kinds(chs))
	}
	for range 30 {
		c.Add(time.Second)
		chs = append(chs, e.Tick(c.now)...)
	}
	if got := kinds(chs); len(got) != 1 || got[0] != "raised:device-offline:low" || chs[0].Alarm.Category != Technical {
		t.Fatalf("offline: %v", got)
	}
	chs = e.Observe(batch("p", "thermo", c.now, obs("8310-5", 37)))
	if got := kinds(chs); len(got) != 1 || got[0] != "resolved:device-offline:low" {
		t.Fatalf("back: %v", got)
	}
}

func TestPatientOverride(t *testing.T) {
	rs, err := DefaultRuleSet()
	if err != nil {
		t.Fatal(err)
	}
	off := false
	// A COPD patient with a prescribed target of 88–92 %.
	rs.Patients = map[string]map[string]Override{
		"copd": {"spo2-low": {Below: []Band{{84, Medium}, {80, High}}, Why: "target 88-92 % (Dr Rao)"}},
		"calm": {"hr-high": {Enabled: &off}},
	}
	rs.Version = 2
	r, err := Compile(rs, codes.New())
	if err != nil {
		t.Fatal(err)
	}
	c := newClock()
	e := newEngine(t, c, Config{Rules: r})
	if chs := feed(e, c, "copd", "ox", spo2, 86, time.Minute); len(chs) != 0 {
		t.Errorf("COPD patient at 86 %%: %v", kinds(chs))
	}
	if got := count(feed(e, c, "other", "ox2", spo2, 86, time.Minute), Raised); got["spo2-low"] != 1 {
		t.Errorf("other patient at 86 %%: %v", got)
	}
	var chs []Change
	for _, ch := range feed(e, c, "copd", "ox", spo2, 83, time.Minute) {
		if ch.Alarm.Rule == "spo2-low" {
			chs = append(chs, ch)
		}
	}
	if len(chs) != 1 || chs[0].Alarm.RuleVersion != 2 || chs[0].Alarm.Limit != 84 {
		t.Errorf("COPD patient at 83 %%: %v", kinds(chs))
	}
	if got := count(feed(e, c, "calm", "ecg", hr, 170, time.Minute), Raised); got["hr-high"] != 0 {
		t.Errorf("disabled rule: %v", got)
	}
}

func TestRuleRefusals(t *testing.T) {
	for _, tc := range []struct{ doc, want string }{
		{`version: 1
rules: [{id: r1, kind: condition, levels: [{when: "news2.total >=", priority: high}]}]`, "rule r1: levels[0].when: CEL: ERROR"},
		{`version: 1
rules: [{id: r2, kind: condition, levels: [{when: "vitals['8867-4'] + 1.0", priority: high}]}]`, "rule r2: levels[0].when: CEL expression"},
		{`version: 1
rules: [{id: r3, kind: condition, levels: [{when: "unknown_var > 1", priority: high}]}]`, "undeclared reference to 'unknown_var'"},
		{`version: 1
rules: [{id: r4, kind: event, event: cgm-alert, when: "event.kind ==", priority: low}]`, "rule r4: when: CEL"},
		{`version: 1
rules: [{id: r5, kind: threshold, code: nope, above: [{limit: 1, priority: low}]}]`, `rule r5: code: unknown code "nope"`},
		{`version: 1
rules: [{id: r6, kind: threshold, code: spo2, below: [{limit: 85, priority: high}, {limit: 90, priority: medium}]}]`, "rule r6: below: band 2 (90 medium) must be lower"},
		{`version: 1
rules: [{id: r7, kind: threshold, code: hr, above: [{limit: 999, priority: low}]}]`, "outside the code's possible range"},
		{`version: 1
rules: [{id: r8, kind: threshold, code: hr, above: [{limit: 100, priority: low}], when: "true"}]`, "rule r8: when: does not apply to a threshold rule"},
		{`version: 1
rules: [{id: r9, kind: magic}]`, `rule r9: kind: must be threshold, event, condition or offline, got "magic"`},
		{`version: 1
rules: [{id: a, kind: offline, after: 1m}, {id: a, kind: offline, after: 1m}]`, "rule a: id: used by more than one rule"},
		{`version: 0
rules: []`, "rule set: version: must be 1 or more"},
		{`version: 1
rules: [{id: r10, kind: offline, after: 1m, delay: soon}]`, `duration "soon"`},
		{`version: 1
rules: [{id: r11, kind: offline, after: 1m, prority: high}]`, "field prority not found"},
		{`version: 1
rules: [{id: r12, kind: threshold, code: spo2, below: [{limit: 90, priority: medium}]}]
patients: {p1: {r12: {below: [{limit: 90, priority: urgent}]}}}`, `priority must be low, medium or high, got "urgent"`},
		{`version: 1
rules: [{id: r13, kind: threshold, code: spo2, below: [{limit: 90, priority: medium}]}]
patients: {p1: {r14: {enabled: false}}}`, "rule r14: patients.p1: override of a rule the set does not have"},
	} {
		rs, err := ParseRuleSetBytes([]byte(tc.doc))
		if err == nil {
			_, err = Compile(rs, nil)
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s\n  got %v\n  want %q", tc.doc, err, tc.want)
		} else if !errors.Is(err, iomt.ErrInvalid) {
			t.Errorf("%v does not match iomt.ErrInvalid", err)
		}
	}
}

func TestConditionRule(t *testing.T) {
	doc := `version: 1
rules:
  - id: shock-index
    kind: condition
    levels: [{when: 'vitals["8867-4"] > 130 && vitals["59408-5"] < 92', priority: high}]
    delay: 10s`
	rs, err := ParseRuleSetBytes([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	r, err := Compile(rs, nil)
	if err != nil {
		t.Fatal(err)
	}
	c := newClock()
	e := newEngine(t, c, Config{Rules: r})
	// Only one of the two readings: the missing one makes the condition false, not an error.
	if chs := feed(e, c, "p", "ecg", hr, 140, 30*time.Second); len(chs) != 0 {
		t.Fatalf("%v", kinds(chs))
	}
	chs := feed(e, c, "p", "ox", spo2, 90, 30*time.Second)
	if got := kinds(chs); len(got) != 1 || got[0] != "raised:shock-index:high" {
		t.Fatalf("%v", got)
	}
}

func TestEventRules(t *testing.T) {
	c := newClock()
	e := newEngine(t, c, Config{})
	ev := func(kind string, data map[string]any) []Change {
		d, _ := json.Marshal(data)
		return e.Event(iomt.Event{Patient: "p", Kind: kind, Time: c.now, Data: d})
	}
	chs := ev("cgm-alert", map[string]any{"kind": "urgent_low", "mgdl": 48})
	if got := kinds(chs); len(got) != 1 || got[0] != "raised:cgm-urgent-low:high" || chs[0].Alarm.Value != 48 {
		t.Fatalf("urgent low: %v", got)
	}
	// Repeats are de-duplicated.
	if chs := ev("cgm-alert", map[string]any{"kind": "urgent_low", "mgdl": 45}); len(chs) != 0 {
		t.Errorf("repeat: %v", kinds(chs))
	}
	chs = ev("cgm-alert", map[string]any{"kind": "low", "mgdl": 65})
	if got := kinds(chs); len(got) != 1 || got[0] != "raised:cgm-low:medium" {
		t.Fatalf("low: %v", got)
	}
	// A hold-based event clears itself after its hold (15m) without a repeat.
	c.Add(16 * time.Minute)
	if got := kinds(e.Tick(c.now)); len(got) != 2 || got[1] != "condition-cleared:cgm-urgent-low:high" || got[0] != "resolved:cgm-low:medium" {
		t.Errorf("after hold: %v", got)
	}
	// AF with an explicit end and a validation delay of 30 s.
	ev("ecg-rhythm", map[string]any{"kind": "af", "active": true, "device": "ecg"})
	c.Add(31 * time.Second)
	if got := kinds(e.Tick(c.now)); len(got) != 1 || got[0] != "raised:af:medium" {
		t.Fatalf("af: %v", got)
	}
	if got := kinds(ev("ecg-rhythm", map[string]any{"kind": "af", "active": false, "device": "ecg"})); len(got) != 1 || got[0] != "resolved:af:medium" {
		t.Fatalf("af end: %v", got)
	}
	if chs := ev("no-rule-for-this", map[string]any{}); chs != nil {
		t.Error(kinds(chs))
	}
}

func TestSetRulesRemovesAlarmsOfDroppedRules(t *testing.T) {
	c := newClock()
	e := newEngine(t, c, Config{})
	feed(e, c, "p", "ox", spo2, 80, 20*time.Second)
	rs, _ := DefaultRuleSet()
	rs.Version = 2
	rs.Rules = []Rule{rs.Rules[1]}
	r, err := Compile(rs, nil)
	if err != nil {
		t.Fatal(err)
	}
	chs := e.SetRules(iomt.DefaultTenant, r)
	if got := kinds(chs); len(got) != 1 || got[0] != "resolved:spo2-low:high" || !strings.Contains(chs[0].Alarm.Transitions[len(chs[0].Alarm.Transitions)-1].Why, "removed in rule set version 2") {
		t.Errorf("%v", got)
	}
}

// A nurse's charted new confusion completes the NEWS2 the news2 rule sees: vitals scoring 4
// raise nothing, the same vitals with confusion (3 more) raise a high alarm after the delay.
func TestNEWS2UsesChartedConsciousness(t *testing.T) {
	clock := newClock()
	e := newEngine(t, clock, Config{})
	vitals := func(at time.Time) iomt.Batch {
		// RR 22 (2), SpO2 95 (1), SBP 120 (0), HR 95 (1), temp 37 (0): 4.
		return batch("p1", "mon", at, obs("9279-1", 22), obs("59408-5", 95), obs("8480-6", 120), obs("8867-4", 95), obs("8310-5", 37))
	}
	// The NEWS2 scorer tells the patient's scale with its first assessment.
	e.Event(iomt.Event{Patient: "p1", Kind: NEWS2Event, Time: clock.Now(), Data: []byte(`{"scale":1}`)})
	var all []Change
	for i := 0; i < 120; i++ {
		clock.Add(time.Second)
		all = append(all, e.Observe(vitals(clock.Now()))...)
		all = append(all, e.Tick(clock.Now())...)
	}
	if n := count(all, Raised)["news2"]; n != 0 {
		t.Fatalf("NEWS2 4 raised %d news2 alarms", n)
	}
	all = append(all, e.Observe(batch("p1", "iomt-chart", clock.Now(), obs("1104441000000107", 2)))...)
	for i := 0; i < 120; i++ {
		clock.Add(time.Second)
		all = append(all, e.Observe(vitals(clock.Now()))...)
		all = append(all, e.Tick(clock.Now())...)
	}
	if n := count(all, Raised)["news2"]; n != 1 {
		t.Fatalf("NEWS2 7 with charted confusion raised %d news2 alarms, want 1", n)
	}
	for _, c := range all {
		if c.Kind == Raised && c.Alarm.Rule == "news2" && c.Alarm.Priority != High {
			t.Fatalf("news2 alarm at %s, want high (total 7)", c.Alarm.Priority)
		}
	}
}

// The news2 variable scores SpO2 on the patient's scale as the NEWS2 scorer tells it, and on
// the lower of the two scales' scores while it is unknown, so that it stays a lower bound: a
// patient with hypercapnic respiratory failure at 89 % on air scores 0 for SpO2, not 3.
func TestNEWS2OnThePatientsScale(t *testing.T) {
	clock := newClock()
	e := newEngine(t, clock, Config{})
	total := func(spo2 float64, charted ...observation) (int64, int64) {
		t.Helper()
		clock.Add(time.Second)
		// RR 16, SBP 120, HR 70, temp 37: all 0; only SpO2 (and oxygen) score.
		e.Observe(batch("p1", "mon", clock.Now(), obs("9279-1", 16), obs("59408-5", spo2), obs("8480-6", 120), obs("8867-4", 70), obs("8310-5", 37)))
		if len(charted) > 0 {
			e.Observe(batch("p1", "iomt-chart", clock.Now(), charted...))
		}
		m := e.patients["p1"].news2Map()
		return m["total"].(int64), m["scale"].(int64)
	}
	scale := func(data string) {
		e.Event(iomt.Event{Patient: "p1", Kind: NEWS2Event, Time: clock.Now(), Data: []byte(data)})
	}
	for _, c := range []struct {
		event string // the scorer's event before the reading; "" none
		spo2  float64
		o2    float64 // charted oxygen flow, l/min; 0 none
		total int64
		scale int64
	}{
		{"", 89, 0, 0, 0},            // unknown: scale 1 scores 3, scale 2 on air 0
		{"", 80, 0, 3, 0},            // both scales score 3
		{`{"scale":2}`, 89, 0, 0, 2}, // scale 2, target 88–92 % on air
		{`{"scale":0}`, 89, 0, 0, 2}, // the scorer did not know: the scale stands
		{`{"scale":1}`, 89, 0, 3, 1},
		// A charted oxygen flow stays fresh for an hour: the cases on oxygen come last.
		{`{"scale":2}`, 97, 2, 2 + 3, 2}, // scale 2, 97 % on oxygen scores 3, plus 2 for oxygen
		{`{"scale":1}`, 97, 2, 2, 1},     // scale 1: 97 % scores 0, on oxygen or not
	} {
		if c.event != "" {
			scale(c.event)
		}
		var charted []observation
		if c.o2 > 0 {
			charted = append(charted, obs("3151-8", c.o2))
		}
		if got, sc := total(c.spo2, charted...); got != c.total || sc != c.scale {
			t.Errorf("after %q, SpO2 %v, O2 %v: news2.total %d on scale %d, want %d on scale %d", c.event, c.spo2, c.o2, got, sc, c.total, c.scale)
		}
	}
}

// A cuff measuring every 15 minutes, whose battery report arrives a moment before or after its
// readings, is not offline 2 minutes after a measurement; it is after three missed intervals.
func TestSlowDeviceNotOfflineEarly(t *testing.T) {
	clock := newClock()
	e := newEngine(t, clock, Config{})
	var all []Change
	measure := func() {
		now := clock.Now()
		batt := 90.0
		all = append(all, e.Status("", "p1", iomt.DeviceStatus{Device: "cuff", LastSeen: now, Battery: &batt})...)
		clock.Add(time.Millisecond)
		b := batch("p1", "cuff", now, obs("8480-6", 120), obs("8462-4", 80))
		b.Received = clock.Now() // the readings' batch arrives a moment after the battery report
		all = append(all, e.Observe(b)...)
	}
	for i := 0; i < 4; i++ {
		measure()
		for s := 0; s < 15*60; s += 10 {
			clock.Add(10 * time.Second)
			all = append(all, e.Tick(clock.Now())...)
		}
	}
	if n := count(all, Raised)["device-offline"]; n != 0 {
		t.Fatalf("a cuff measuring every 15 minutes raised %d offline alarms", n)
	}
	for s := 0; s < 50*60; s += 10 {
		clock.Add(10 * time.Second)
		all = append(all, e.Tick(clock.Now())...)
	}
	if n := count(all, Raised)["device-offline"]; n != 1 {
		t.Fatalf("a cuff silent for 50 minutes raised %d offline alarms, want 1", n)
	}
}

// An event alarm held by its rule's hold (cgm-low: 15 min) keeps its hold across a restart:
// restored into a new engine, it is not cleared at the first tick, but once the hold has run
// from the event that raised it.
func TestRestoredEventAlarmKeepsItsHold(t *testing.T) {
	c := newClock()
	e := newEngine(t, c, Config{})
	d, _ := json.Marshal(map[string]any{"kind": "low", "mgdl": 65})
	chs := e.Event(iomt.Event{Patient: "p", Kind: "cgm-alert", Time: c.now, Data: d})
	if got := kinds(chs); len(got) != 1 || got[0] != "raised:cgm-low:medium" {
		t.Fatalf("low: %v", got)
	}
	stored := chs[0].Alarm

	c.Add(5 * time.Minute) // the node restarts
	e2 := newEngine(t, c, Config{})
	e2.Restore([]Alarm{stored})
	if got := kinds(e2.Tick(c.now)); len(got) != 0 {
		t.Fatalf("first tick after the restore: %v, want nothing (the hold has 10 min to run)", got)
	}
	c.Add(11 * time.Minute)
	if got := kinds(e2.Tick(c.now)); len(got) != 1 || got[0] != "resolved:cgm-low:medium" {
		t.Fatalf("after the hold: %v", got)
	}
}
