package sensing

import (
	"math"
	"reflect"
	"testing"
	"time"

	"github.com/iomt/iomt/analytics/news2"
	"github.com/iomt/iomt/codes"
)

func TestBuiltinScenarios(t *testing.T) {
	all := Builtin()
	for _, name := range []string{"stable-adult", "sepsis", "af-onset", "t1d-nocturnal-hypo", "device-fault"} {
		sc, ok := all[name]
		if !ok {
			t.Errorf("builtin %q missing", name)
			continue
		}
		p := NewPatient(sc, 1, t0)
		es := run(p, 0, 2*time.Minute)
		if len(es) == 0 {
			t.Errorf("%s: nothing emitted in 2 minutes", name)
		}
		for _, e := range es {
			for _, s := range e.Samples {
				if s.Unit == "" || math.IsNaN(s.Value) {
					t.Fatalf("%s: bad sample %+v", name, s)
				}
			}
		}
	}
}

func TestDeterministic(t *testing.T) {
	for name, sc := range Builtin() {
		a := run(NewPatient(sc, 42, t0), 0, 3*time.Minute)
		// Advancing in uneven steps must give the same emissions.
		p := NewPatient(sc, 42, t0)
		var b []Emission
		for _, d := range []time.Duration{700 * time.Millisecond, 2 * time.Second, 2500 * time.Millisecond, 90 * time.Second, 3 * time.Minute} {
			b = p.AdvanceAppend(b, t0.Add(d))
		}
		if !reflect.DeepEqual(a, b) {
			t.Errorf("%s: same seed, different slicing of time: different emissions (%d vs %d)", name, len(a), len(b))
		}
		c := run(NewPatient(sc, 43, t0), 0, 3*time.Minute)
		if reflect.DeepEqual(a, c) {
			t.Errorf("%s: seeds 42 and 43 give identical emissions", name)
		}
	}
}

func TestEmissionShape(t *testing.T) {
	p := NewPatient(builtin(t, "stable-adult"), 9, t0)
	es := run(p, 0, 20*time.Minute)
	seq := map[string]uint64{}
	var last time.Time
	ecgN := 0
	for _, e := range es {
		if e.Time.Before(last) {
			t.Fatalf("emissions out of time order: %v after %v", e.Time, last)
		}
		last = e.Time
		if e.Seq != seq[e.Device]+1 {
			t.Fatalf("%s: seq %d after %d", e.Device, e.Seq, seq[e.Device])
		}
		seq[e.Device] = e.Seq
		for _, c := range e.Chunks {
			if c.Code == CodeECGII {
				ecgN += len(c.Values)
				if c.Period != 4*time.Millisecond {
					t.Fatalf("ECG period %v", c.Period)
				}
			}
		}
	}
	// 250 Hz by a clock running 20 ppm fast, for 20 minutes, within a message.
	if want := 250 * 1200.0; math.Abs(float64(ecgN)-want) > 300 {
		t.Errorf("%d ECG samples in 20 minutes, want about %.0f", ecgN, want)
	}
	if _, v := series(es, BPMonitor, CodeSystolic); len(v) < 1 || len(v) > 2 {
		t.Errorf("%d cuff readings in 20 minutes with a 15-minute schedule", len(v))
	}
	if _, v := series(es, Thermometer, CodeBodyTemp); len(v) < 19 || len(v) > 21 {
		t.Errorf("%d temperatures in 20 minutes, want one a minute", len(v))
	}
	if _, v := series(es, Scale, CodeWeight); len(v) != 1 || math.Abs(v[0]-74) > 1 {
		t.Errorf("weight %v", v)
	}
	if _, v := series(es, PulseOximeter, CodeSpO2); mean(v) < 95 || mean(v) > 99 {
		t.Errorf("SpO2 mean %.1f", mean(v))
	}
	// Pulse rate and heart rate come from the same beats.
	_, hr := series(es, ECGPatch, CodeHeartRate)
	_, pr := series(es, PulseOximeter, CodePulseRate)
	if math.Abs(mean(hr)-mean(pr)) > 1 {
		t.Errorf("mean HR %.1f, mean pulse rate %.1f", mean(hr), mean(pr))
	}
}

func TestNIBPOnDemand(t *testing.T) {
	sc := builtin(t, "stable-adult")
	sc.Device(BPMonitor).Interval = 0
	p := NewPatient(sc, 1, t0)
	es := run(p, 0, 5*time.Minute)
	if _, v := series(es, BPMonitor, CodeSystolic); len(v) != 0 {
		t.Fatalf("%d readings without a schedule or request", len(v))
	}
	if err := p.RequestNIBP(t0.Add(6 * time.Minute)); err != nil {
		t.Fatal(err)
	}
	es = run(p, 5*time.Minute, 7*time.Minute)
	ts, v := series(es, BPMonitor, CodeSystolic)
	if len(v) != 1 || math.Abs(ts[0]-400) > 1 {
		t.Fatalf("want one reading at 6m40s (cuff takes 40 s), got %v at %v", v, ts)
	}
	if err := p.Measure(ECGPatch, t0); err == nil {
		t.Error("an ECG patch accepted an on-demand measurement")
	}
}

// news2Score scores the latest observations with iomt's NEWS2 (RCP Chart 1, SpO2 scale 1, on
// air, alert).
func news2Score(t *testing.T, latest map[string]float64) int {
	t.Helper()
	r, err := news2.Score(news2.Vitals{RespRate: latest[CodeRespRate], SpO2: latest[CodeSpO2],
		SBP: latest[CodeSystolic], Pulse: latest[CodeHeartRate], Temp: latest[CodeBodyTemp], ACVPU: news2.Alert})
	if err != nil {
		t.Fatal(err)
	}
	return r.Total
}

func TestSepsisNEWS2Climbs(t *testing.T) {
	p := NewPatient(builtin(t, "sepsis"), 3, t0)
	latest := map[string]float64{} // by code: the five parameters the devices measure
	scored := map[string]bool{CodeRespRate: true, CodeSpO2: true, CodeSystolic: true, CodeHeartRate: true, CodeBodyTemp: true}
	firstMedium, firstHigh := -1.0, -1.0
	maxEarly, minLate := 0, 100
	for m := 1; m <= 80; m++ {
		for _, e := range p.Advance(t0.Add(time.Duration(m) * time.Minute)) {
			for _, s := range e.Samples {
				if scored[s.Code] && !(s.Code == CodeHeartRate && e.Device != ECGPatch) {
					latest[s.Code] = s.Value
				}
			}
		}
		if len(latest) < 5 {
			continue
		}
		score := news2Score(t, latest)
		switch {
		case m <= 10:
			maxEarly = max(maxEarly, score)
		case m >= 70:
			minLate = min(minLate, score)
		}
		if score >= 5 && score <= 6 && firstMedium < 0 {
			firstMedium = float64(m)
		}
		if score >= 7 && firstHigh < 0 {
			firstHigh = float64(m)
		}
	}
	t.Logf("NEWS2: at most %d in the first 10 min, medium from minute %.0f, high from minute %.0f, at least %d after 70 min",
		maxEarly, firstMedium, firstHigh, minLate)
	if maxEarly > 2 {
		t.Errorf("NEWS2 %d in the first 10 minutes, want low", maxEarly)
	}
	if firstMedium < 0 || firstHigh < 0 || firstMedium >= firstHigh {
		t.Errorf("NEWS2 should reach medium (5–6) before high (≥7): medium at %v, high at %v", firstMedium, firstHigh)
	}
	if minLate < 7 {
		t.Errorf("NEWS2 %d after 70 minutes, want high", minLate)
	}
}

func TestNocturnalHypoAndRecovery(t *testing.T) {
	sc := builtin(t, "t1d-nocturnal-hypo")
	start := sc.SuggestedStart(time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC))
	if start.Hour() != 18 {
		t.Fatalf("suggested start %v", start)
	}
	p := NewPatient(sc, 5, start)
	es := p.Advance(start.Add(18 * time.Hour))
	night := func(ts time.Time) bool { return ts.Hour() >= 22 || ts.Hour() < 6 }
	nightMin, morning, peak := 1000.0, 0.0, 0.0
	readings := 0
	for _, e := range es {
		for _, s := range e.Samples {
			if s.Code != CodeCGM {
				continue
			}
			readings++
			if night(s.Time) {
				nightMin = min(nightMin, s.Value)
			}
			if s.Time.Hour() == 5 {
				morning = s.Value
			}
			if s.Time.Hour() >= 7 {
				peak = max(peak, s.Value)
			}
		}
	}
	t.Logf("%d CGM readings; night minimum %.0f mg/dL, 05:xx %.0f, after breakfast up to %.0f", readings, nightMin, morning, peak)
	if readings < 18*12-2 || readings > 18*12+1 {
		t.Errorf("%d CGM readings in 18 h, want one every 5 minutes", readings)
	}
	if nightMin >= 70 {
		t.Errorf("no hypoglycaemia at night: minimum %.0f", nightMin)
	}
	if morning < 80 {
		t.Errorf("not recovered by 05:00: %.0f", morning)
	}
	if peak < 250 {
		t.Errorf("no hyperglycaemia after the unbolused breakfast: peak %.0f", peak)
	}
	if _, v := series(es, Glucometer, CodeBloodGlucose); len(v) != 3 {
		t.Errorf("%d fingerstick readings, want 3", len(v))
	}
}

func TestDeviceFaults(t *testing.T) {
	sc := builtin(t, "device-fault")
	p := NewPatient(sc, 2, t0)
	es := run(p, 0, 50*time.Minute)
	at := func(e Emission) float64 { return e.Time.Sub(t0).Seconds() }
	var leadOff, probeOff int
	wasOff := false
	type report struct{ t, level float64 }
	var batt []report
	for _, e := range es {
		hasFault := func(f string) bool {
			for _, x := range e.Faults {
				if x == f {
					return true
				}
			}
			return false
		}
		switch e.Device {
		case ECGPatch:
			v := e.Chunks[0].Values
			if hasFault(FaultLeadOff) {
				leadOff++
				want := 0.0
				if at(e) > 600 {
					want = ECGRailMV
				}
				for _, x := range v {
					if x != want {
						t.Fatalf("lead-off at %.0fs: sample %v, want %v", at(e), x, want)
					}
				}
				for _, s := range e.Samples {
					if s.Code == CodeHeartRate {
						t.Fatalf("heart rate reported with the leads off")
					}
				}
			} else if percentile(v, 1)-percentile(v, 0) < 0.3 && at(e) > 5 {
				t.Errorf("ECG at %.0fs has no beat: range %.2f mV", at(e), percentile(v, 1)-percentile(v, 0))
			}
			if e.Battery != nil {
				batt = append(batt, report{at(e), *e.Battery})
			}
		case PulseOximeter:
			status := -1.0
			for _, s := range e.Samples {
				if s.Code == CodeOximeterStatus {
					status = s.Value
				}
			}
			if hasFault(FaultProbeOff) {
				probeOff++
				// The status says so; no SpO2 or pulse rate.
				if len(e.Samples) != 1 || status != codes.OxSensorOff {
					t.Fatalf("probe off, yet %v", e.Samples)
				}
				wasOff = true
			} else if wasOff {
				// The first message after: the status once more, clear.
				if status != 0 {
					t.Fatalf("probe back on: status %v in %v", status, e.Samples)
				}
				wasOff = false
			} else if status != -1 {
				t.Fatalf("status %v with the probe on", status)
			}
			if t0.Add(20*time.Minute).Before(e.Time) && e.Time.Before(t0.Add(25*time.Minute)) {
				t.Fatalf("offline oximeter sent at %v", e.Time)
			}
		}
	}
	if leadOff < 88 || leadOff > 92 {
		t.Errorf("%d lead-off messages, want 90 (60 s flat, 30 s rail)", leadOff)
	}
	if probeOff < 119 || probeOff > 121 {
		t.Errorf("%d probe-off messages, want 120", probeOff)
	}
	// Battery: starts at 30 %, drains 40 %/h, reported every minute, dies at 45 minutes.
	prev, n, lastT := 101.0, 0, 0.0
	for _, r := range batt {
		if r.level > prev {
			t.Errorf("battery rose to %v at %.0fs", r.level, r.t)
		}
		prev, lastT = r.level, r.t
		n++
	}
	if n < 40 || prev > 2 || lastT > 45*60 {
		t.Errorf("%d battery reports, last %v %% at %vs", n, prev, lastT)
	}
	if p.Online(ECGPatch, t0.Add(30*time.Minute)) == false || p.Online(ECGPatch, t0.Add(46*time.Minute)) {
		t.Error("ECG patch should be online at 30 min and dead at 46")
	}
	if p.Online(PulseOximeter, t0.Add(22*time.Minute)) || !p.Online(PulseOximeter, t0.Add(26*time.Minute)) {
		t.Error("oximeter should be offline from 20 to 25 minutes")
	}
	// Store and forward: on reconnection the oximeter sends what it measured while away, with
	// the device's own timestamps.
	var burst []Emission
	for _, e := range es {
		if e.Device == PulseOximeter && e.Time.After(t0.Add(25*time.Minute)) && e.Time.Before(t0.Add(25*time.Minute+2*time.Second)) {
			burst = append(burst, e)
		}
	}
	if len(burst) < 300 {
		t.Fatalf("%d oximeter messages on reconnection, want the ~300 kept while offline", len(burst))
	}
	if first := burst[0].Samples[0].Time; first.After(t0.Add(20*time.Minute + 2*time.Second)) {
		t.Errorf("first forwarded reading measured at %v", first)
	}
	// Clock: the ECG patch runs 150 ppm fast from +2.5 s, so after 40 min its stamps are 2.86 s ahead.
	for _, e := range es {
		if e.Device == ECGPatch && e.Time.After(t0.Add(40*time.Minute)) {
			skew := e.Chunks[0].Start.Add(time.Duration(len(e.Chunks[0].Values)) * e.Chunks[0].Period).Sub(e.Time).Seconds()
			if math.Abs(skew-2.86) > 0.1 {
				t.Errorf("device clock ahead by %.2f s at 40 min, want 2.86", skew)
			}
			break
		}
	}
}

func TestOnlineUnknownDevice(t *testing.T) {
	p := NewPatient(builtin(t, "stable-adult"), 1, t0)
	if p.Online(CGM, t0) {
		t.Error("a device the patient lacks is online")
	}
	if got := p.Devices(); !reflect.DeepEqual(got, []string{ECGPatch, PulseOximeter, Thermometer, BPMonitor, Scale}) {
		t.Errorf("Devices() = %v", got)
	}
}

func TestFallReported(t *testing.T) {
	p := NewPatient(builtin(t, "elderly-fall"), 4, t0)
	es := p.Advance(t0.Add(40 * time.Minute))
	ts, v := series(es, ActivityTracker, CodeFall)
	if len(v) != 1 || v[0] != 1 || math.Abs(ts[0]-1200) > 1 {
		t.Fatalf("falls %v at %v, want one at 1200 s", v, ts)
	}
	_, steps := series(es, ActivityTracker, CodeSteps)
	total := 0.0
	for _, s := range steps {
		total += s
	}
	if total < 600 || total > 800 {
		t.Errorf("%.0f steps in 10 minutes at 70/min", total)
	}
}
