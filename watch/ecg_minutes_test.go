package watch_test

import (
	"context"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/iomt/iomt"
	"github.com/iomt/iomt/sensing"
	"github.com/iomt/iomt/watch"
)

// sinusThenAF is 72/min sinus rhythm without ectopics, then AF at 110/min from minute 4.
const sinusThenAF = `
name: sinus-then-af
baseline: {hr: 72, pvc: 0}
devices:
  - kind: ecg-patch
    first: 0s
timeline:
  - at: 4m
    rhythm: af
    set: {hr: 110}
`

var minutesT0 = time.Date(2026, 11, 24, 8, 0, 0, 0, time.UTC)

// runMinutes feeds d of a scenario's lead II to a watcher, one second a batch, through
// deliver (nil: every batch), and returns the minute summaries it told and, per minute, the
// mean of the heart rates the simulated patch reported (the generator's true beat rate).
func runMinutes(t *testing.T, scenario string, d time.Duration, deliver func(second int) bool) ([]watch.ECGMinute, map[time.Time]float64) {
	t.Helper()
	sc, err := sensing.LoadScenario(strings.NewReader(scenario))
	if err != nil {
		t.Fatal(err)
	}
	var got []watch.ECGMinute
	w := watch.NewECG(func(watch.Rhythm) {}, nil)
	w.Minutes = func(m watch.ECGMinute) { got = append(got, m) }
	sum, n := map[time.Time]float64{}, map[time.Time]int{}
	p := sensing.NewPatient(sc, 7, minutesT0)
	second := 0
	for now := minutesT0.Add(time.Second); !now.After(minutesT0.Add(d)); now = now.Add(time.Second) {
		for _, e := range p.Advance(now) {
			for _, s := range e.Samples {
				if s.Code == sensing.CodeHeartRate {
					m := s.Time.Truncate(time.Minute)
					sum[m] += s.Value
					n[m]++
				}
			}
			for _, c := range e.Chunks {
				if c.Code != sensing.CodeECGII {
					continue
				}
				wf := iomt.Waveform{Patient: "p1", Device: "patch", Code: c.Code, Start: c.Start, Period: c.Period, Scale: 0.001, Unit: "mV"}
				for _, v := range c.Values {
					wf.Samples = append(wf.Samples, int32(math.Round(v/0.001)))
				}
				if deliver == nil || deliver(second) {
					_ = w.Deliver(context.Background(), iomt.Batch{Tenant: "t1", Patient: "p1", Device: "patch", Waveforms: []iomt.Waveform{wf}})
				}
				second++
			}
		}
	}
	truth := map[time.Time]float64{}
	for m, s := range sum {
		truth[m] = s / float64(n[m])
	}
	return got, truth
}

// Each minute of good signal is summarised once, in order: the heart rate from the R-R
// intervals within 2/min of the simulated 72/min, AF burden 0 in sinus rhythm and about 100
// once AF has set in, SDNN only where there is no AF; and what is stored is that heart rate
// and SDNN under the watcher's own device and codes, never heart rate 8867-4.
func TestECGMinutesSinusThenAF(t *testing.T) {
	got, truth := runMinutes(t, sinusThenAF, 10*time.Minute, nil)
	byStart := map[time.Time]watch.ECGMinute{}
	for i, m := range got {
		t.Logf("%s hr %.1f (patch %.1f) af %v %.0f %% sdnn %.1f ms, %d intervals, good %v",
			m.Start.Format("15:04"), m.HeartRate, truth[m.Start], m.AFKnown, m.AFBurden, m.SDNN, m.Intervals, m.Good)
		if i > 0 && !m.Start.After(got[i-1].Start) {
			t.Errorf("minute %v told after %v", m.Start, got[i-1].Start)
		}
		if !m.Start.Equal(m.Start.Truncate(time.Minute)) || m.Patient != "p1" || m.Device != "patch" || m.Tenant != "t1" || m.Lead != sensing.CodeECGII {
			t.Errorf("minute %+v", m)
		}
		byStart[m.Start] = m
	}
	for i := range 9 {
		start := minutesT0.Add(time.Duration(i) * time.Minute)
		m, ok := byStart[start]
		if !ok {
			t.Errorf("minute %s not summarised", start.Format("15:04"))
			continue
		}
		// In sinus rhythm, within 2/min of the rate the patch reports. In AF the patch's rate,
		// averaged over 8-beat rates, overstates an irregular rhythm (the mean of 1/RR
		// exceeds 1/mean RR), so there the scripted 110/min is the reference, within its
		// natural wandering.
		if d := m.HeartRate - truth[start]; i < 4 && math.Abs(d) > 2 {
			t.Errorf("minute %s: heart rate %.1f/min, the patch's %.1f/min", start.Format("15:04"), m.HeartRate, truth[start])
		}
		if !m.AFKnown {
			t.Errorf("minute %s: AF burden unknown", start.Format("15:04"))
		}
		obs := m.Observations()
		switch {
		case i < 4: // sinus
			if math.Abs(m.HeartRate-72) > 5 || m.AFBurden != 0 || m.SDNN <= 0 || m.SDNN > 200 {
				t.Errorf("sinus minute %s: %+v", start.Format("15:04"), m)
			}
			if len(obs) != 2 || obs[1].Code != watch.ECGSDNNCode || obs[1].Unit != "ms" || obs[1].Value != math.Round(m.SDNN*10)/10 {
				t.Errorf("sinus minute %s stores %+v", start.Format("15:04"), obs)
			}
		case i >= 5: // a minute after the onset, the AF decision has caught up
			if m.AFBurden < 95 || m.SDNN != 0 || math.Abs(m.HeartRate-110) > 6 {
				t.Errorf("AF minute %s: %+v", start.Format("15:04"), m)
			}
			if len(obs) != 1 {
				t.Errorf("AF minute %s stores %+v, want the heart rate alone", start.Format("15:04"), obs)
			}
		}
		if len(obs) == 0 || obs[0].Code != watch.ECGHeartRateCode || obs[0].Device != watch.ECGDevice || obs[0].Unit != "/min" ||
			obs[0].Patient != "p1" || !obs[0].Time.Equal(start) || obs[0].Value != math.Round(m.HeartRate*10)/10 {
			t.Errorf("minute %s stores %+v", start.Format("15:04"), obs)
		}
	}
}

// A flat line (electrodes off) is not summarised, nor is a minute mostly lost in transit.
// Minutes wait for the AF decision, but not for ever: a minute before lead-off goes out
// without AF burden, and the minutes before a gap go out when the monitor restarts.
func TestECGMinutesNeedGoodSignal(t *testing.T) {
	got, _ := runMinutes(t, `
name: lead-off
baseline: {hr: 72, pvc: 0}
devices:
  - kind: ecg-patch
    first: 0s
timeline:
  - at: 3m
    device: ecg-patch
    fault: lead-off
    for: 3m
`, 6*time.Minute, nil)
	for _, m := range got {
		if !m.Start.Before(minutesT0.Add(3*time.Minute)) || m.Good < 45*time.Second {
			t.Errorf("summarised %+v: no good signal then", m)
		}
	}
	if len(got) != 3 {
		t.Fatalf("%d minutes summarised, want the 3 before the lead came off", len(got))
	}
	// With no beats after it, the AF decision never reaches the end of 08:02: two minutes of
	// signal later it goes out with its heart rate, without AF burden or SDNN.
	if m := got[2]; m.AFKnown || m.SDNN != 0 || m.HeartRate == 0 || len(m.Observations()) != 1 {
		t.Errorf("last minute before lead-off %+v", m)
	}
	if m := got[1]; !m.AFKnown || m.SDNN == 0 {
		t.Errorf("second minute %+v", m)
	}

	// 2 min 10 s delivered, a gap of 70 s, then 50 s more. The AF decision had not reached
	// the end of 08:01 when the signal stopped: the restart settles it. 08:02 and 08:03 had
	// 10 and 40 s of signal.
	got, _ = runMinutes(t, sinusThenAF, 250*time.Second, func(s int) bool { return s < 130 || s >= 200 })
	var starts []string
	for _, m := range got {
		starts = append(starts, m.Start.Format("15:04"))
		if !m.AFKnown || m.HeartRate == 0 {
			t.Errorf("minute %+v", m)
		}
	}
	if strings.Join(starts, " ") != "08:00 08:01" {
		t.Errorf("summarised minutes %v, want 08:00 08:01", starts)
	}
}
