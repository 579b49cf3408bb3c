package alarm

import (
	"testing"
	"time"

	"github.com/iomt/iomt/sensing"
)

// A scripted deteriorating patient (sensing's sepsis scenario: HR, RR and temperature rise,
// SBP and SpO2 fall over an hour) raises the right alarms at the right priorities, each once.
func TestSepsisDeterioration(t *testing.T) {
	sc := sensing.Builtin()["sepsis"]
	clock := newClock()
	e := newEngine(t, clock, Config{})
	p := sensing.NewPatient(sc, 3, t0)
	var all []Change
	for now := t0.Add(time.Second); !now.After(t0.Add(80 * time.Minute)); now = now.Add(time.Second) {
		clock.Set(now)
		for _, em := range p.Advance(now) {
			all = append(all, e.Observe(emissionBatch("p1", em))...)
		}
		all = append(all, e.Tick(now)...)
	}
	raised := count(all, Raised)
	for _, c := range all {
		if c.Kind == Raised || c.Kind == PriorityRaised || c.Kind == ResolvedChange {
			t.Logf("%s %-16s %-10s %-6s %s", c.Alarm.Transitions[len(c.Alarm.Transitions)-1].When.Sub(t0), c.Kind, c.Alarm.Rule, c.Alarm.Priority, c.Alarm.Transitions[len(c.Alarm.Transitions)-1].Why)
		}
	}
	t.Logf("raised: %v; %d changes in all", raised, len(all))

	total := 0
	for _, n := range raised {
		total += n
	}
	if total > 8 {
		t.Errorf("%d alarms raised over 80 minutes, want at most 8 (no flood)", total)
	}
	for _, r := range []string{"news2", "sbp-low", "rr-high", "temp-high"} {
		if raised[r] == 0 {
			t.Errorf("no %s alarm", r)
		}
	}
	var news2Max Priority
	var commands int
	for _, c := range all {
		if c.Alarm.Raised.Before(t0.Add(10 * time.Minute)) {
			t.Errorf("alarm %s raised at %s, during the stable first 10 minutes", c.Alarm.Rule, c.Alarm.Raised.Sub(t0))
		}
		if c.Kind == Raised && c.Alarm.Priority == High {
			t.Errorf("%s raised at high priority; only NEWS2 should reach high", c.Alarm.Rule)
		}
		if c.Alarm.Rule == "news2" {
			news2Max = max(news2Max, c.Alarm.Priority)
			for _, d := range c.Deliveries {
				if d.Channel == DeviceCmd && d.Command.Name == "measure-bp" && d.Command.Target == "bp-monitor" {
					commands++
				}
			}
		}
	}
	if news2Max != High {
		t.Errorf("NEWS2 alarm reached %s, want high", news2Max)
	}
	if commands == 0 {
		t.Error("NEWS2 rising sent no measure-bp command")
	}
	if got := e.Alarms(Filter{Patient: "p1", MinPriority: High}); len(got) != 1 || got[0].Rule != "news2" {
		t.Errorf("unresolved high-priority alarms at the end: %+v", got)
	}
}

// The device-fault scenario's oximeter probe comes off at 12 min for 2 min: its status raises
// the sensor-off alarm on that oximeter, which resolves once the probe is back on.
func TestDeviceFaultProbeOff(t *testing.T) {
	sc := sensing.Builtin()["device-fault"]
	clock := newClock()
	e := newEngine(t, clock, Config{})
	p := sensing.NewPatient(sc, 3, t0)
	var offRaised, offResolved time.Duration
	for now := t0.Add(time.Second); !now.After(t0.Add(16 * time.Minute)); now = now.Add(time.Second) {
		clock.Set(now)
		var chs []Change
		for _, em := range p.Advance(now) {
			chs = append(chs, e.Observe(emissionBatch("p1", em))...)
		}
		chs = append(chs, e.Tick(now)...)
		for _, c := range chs {
			if c.Alarm.Rule != "lead-off" || c.Alarm.Device != "p1-pulse-oximeter" {
				continue
			}
			switch c.Kind {
			case Raised:
				offRaised = now.Sub(t0)
			case ResolvedChange:
				offResolved = now.Sub(t0)
			}
		}
	}
	if offRaised < 12*time.Minute || offRaised > 12*time.Minute+15*time.Second {
		t.Errorf("sensor-off alarm for the oximeter raised at %v, want 10 s after the probe came off at 12m", offRaised)
	}
	if offResolved < 14*time.Minute || offResolved > 14*time.Minute+5*time.Second {
		t.Errorf("sensor-off alarm resolved at %v, want when the probe is back on at 14m", offResolved)
	}
}
