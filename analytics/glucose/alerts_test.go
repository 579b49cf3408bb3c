package glucose

import (
	"math"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)

// series builds readings every 5 minutes from t0.
func series(v ...float64) []Reading {
	rs := make([]Reading, len(v))
	for i, x := range v {
		rs[i] = Reading{Time: t0.Add(time.Duration(i) * 5 * time.Minute), MgdL: x}
	}
	return rs
}

// ramp is n readings every 5 minutes from start, changing by perMin mg/dL per minute.
func ramp(start time.Time, from, perMin float64, n int) []Reading {
	rs := make([]Reading, n)
	for i := range rs {
		rs[i] = Reading{Time: start.Add(time.Duration(i) * 5 * time.Minute), MgdL: from + perMin*5*float64(i)}
	}
	return rs
}

type alertLog []Alert

func (l alertLog) kinds() string {
	var b strings.Builder
	for _, a := range l {
		b.WriteString(string(a.Kind) + "@" + a.Time.Sub(t0).String() + " ")
	}
	return strings.TrimSpace(b.String())
}

func feed(t *testing.T, m *Monitor, rs []Reading, only ...Kind) alertLog {
	t.Helper()
	var out alertLog
	for _, r := range rs {
		for _, a := range m.Observe(r) {
			if len(only) == 0 || contains(only, a.Kind) {
				out = append(out, a)
			}
		}
	}
	return out
}

func contains(ks []Kind, k Kind) bool {
	for _, x := range ks {
		if x == k {
			return true
		}
	}
	return false
}

func newMonitor(t *testing.T, s Settings) *Monitor {
	t.Helper()
	m, err := NewMonitor(s)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestThresholdAlertsLatchAndEscalate(t *testing.T) {
	m := newMonitor(t, DefaultSettings())
	got := feed(t, m, series(90, 80, 68, 66, 60, 52, 50, 58, 64, 75, 68), UrgentLow, LowAlert)
	// Low once at 68, urgent low at 52 (low stays latched, silent), a new low only after
	// glucose came back into range and fell again.
	want := "low@10m0s urgent_low@25m0s low@50m0s"
	if got.kinds() != want {
		t.Errorf("got  %s\nwant %s", got.kinds(), want)
	}
}

func TestPerPatientThresholds(t *testing.T) {
	s := DefaultSettings()
	s.Low, s.UrgentLow, s.High, s.UrgentHigh = 80, 60, 200, 280
	m := newMonitor(t, s)
	got := feed(t, m, series(100, 78, 100, 210, 290), LowAlert, HighAlert, UrgentHigh)
	if want := "low@5m0s high@15m0s urgent_high@20m0s"; got.kinds() != want {
		t.Errorf("got  %s\nwant %s", got.kinds(), want)
	}
	// The defaults (high 250, urgent high 300) would have raised only a high at 290.
	m = newMonitor(t, DefaultSettings())
	got = feed(t, m, series(100, 78, 100, 210, 290), LowAlert, HighAlert, UrgentHigh)
	if want := "high@20m0s"; got.kinds() != want {
		t.Errorf("defaults: got %s, want %s", got.kinds(), want)
	}
}

func TestRateAlerts(t *testing.T) {
	m := newMonitor(t, DefaultSettings())
	// Flat, then rising 3 mg/dL/min, then flat, then falling 2.5 mg/dL/min.
	rs := series(120, 120, 121, 120, 135, 150, 165, 180, 181, 180, 181, 170, 157, 145, 132)
	got := feed(t, m, rs, RisingFast, FallingFast)
	if want := "rising_fast@25m0s falling_fast@1h5m0s"; got.kinds() != want {
		t.Errorf("got  %s\nwant %s", got.kinds(), want)
	}
	if r, ok := Rate(series(100, 95, 90, 85)); !ok || math.Abs(r+1) > 1e-9 {
		t.Errorf("Rate = %v, %v; want -1 mg/dL/min", r, ok)
	}
	// One noisy jump is not a trend.
	if _, ok := Rate(series(100, 130)); ok {
		t.Error("rate from two readings")
	}
}

func TestStaleAndSignalLoss(t *testing.T) {
	m := newMonitor(t, DefaultSettings())
	feed(t, m, series(120))
	check := func(after time.Duration, want string) {
		t.Helper()
		got := alertLog(m.Tick(t0.Add(after))).kinds()
		if got != want {
			t.Errorf("Tick(+%v) = %q, want %q", after, got, want)
		}
	}
	check(14*time.Minute, "")
	check(15*time.Minute, "stale@15m0s")
	check(20*time.Minute, "")
	check(30*time.Minute, "signal_loss@30m0s")
	check(40*time.Minute, "")
	// A reading clears both; the next silence raises them again.
	m.Observe(Reading{Time: t0.Add(41 * time.Minute), MgdL: 118})
	check(56*time.Minute, "stale@56m0s")
}

func TestSnoozeExpires(t *testing.T) {
	m := newMonitor(t, DefaultSettings())
	var log alertLog
	for i, v := range []float64{260, 262, 265, 263, 264, 266, 261, 262, 263, 240} {
		r := Reading{Time: t0.Add(time.Duration(i) * 5 * time.Minute), MgdL: v}
		log = append(log, m.Observe(r)...)
		if i == 0 {
			// Acknowledged at once: silence highs for 20 minutes.
			m.Snooze(HighAlert, r.Time.Add(20*time.Minute))
		}
	}
	// Raised at 0, silenced until 20m, raised again at 20m while still high; a snooze of
	// one kind leaves others alone.
	if want := "high@0s high@20m0s"; log.kinds() != want {
		t.Errorf("got  %s\nwant %s", log.kinds(), want)
	}
	if m.Active(HighAlert) {
		t.Error("high still active after glucose fell to 240")
	}
}

func TestReplaysIgnored(t *testing.T) {
	m := newMonitor(t, DefaultSettings())
	rs := series(100, 60)
	feed(t, m, rs)
	if got := m.Observe(rs[1]); got != nil {
		t.Errorf("duplicate reading raised %v", got)
	}
	if got := m.Observe(Reading{Time: t0.Add(-time.Hour), MgdL: 40}); got != nil {
		t.Errorf("older reading raised %v", got)
	}
}

func TestPredictedLowAhead(t *testing.T) {
	m := newMonitor(t, DefaultSettings())
	// Falling 1.5 mg/dL/min from 160: crosses 70 after 60 minutes.
	rs := ramp(t0, 160, -1.5, 16)
	got := feed(t, m, rs, PredictedLow, LowAlert)
	if len(got) != 2 || got[0].Kind != PredictedLow || got[1].Kind != LowAlert {
		t.Fatalf("got %s", got.kinds())
	}
	// The forecast damps the trend (a fall slows as it goes), so a steady linear fall is
	// announced about two readings before it crosses 70, not at the full horizon.
	lead := got[1].Time.Sub(got[0].Time)
	if lead < 5*time.Minute || lead > 35*time.Minute {
		t.Errorf("predicted low %v before the low", lead)
	}
	if p := got[0].Predicted; p >= 70 {
		t.Errorf("forecast %v not below 70", p)
	}
	// Once raised it holds while the fall goes on: one alert, not one per reading.
	if n := len(feed(t, newMonitor(t, DefaultSettings()), ramp(t0, 160, -1.5, 14), PredictedLow)); n != 1 {
		t.Errorf("%d predicted-low alerts during one fall", n)
	}

	// A slow drift that levels off above 70 raises nothing.
	m = newMonitor(t, DefaultSettings())
	if got := feed(t, m, series(110, 105, 100, 96, 93, 91, 90, 90, 91, 90), PredictedLow); len(got) != 0 {
		t.Errorf("false predicted low: %s", got.kinds())
	}
	// Too few recent readings: no forecast, no alert.
	if _, ok := (Trend{}).PredictMin(series(100, 80), 30*time.Minute); ok {
		t.Error("trend from two readings")
	}
	gappy := []Reading{{t0, 120}, {t0.Add(5 * time.Minute), 110}, {t0.Add(20 * time.Minute), 90}, {t0.Add(25 * time.Minute), 85}}
	if _, ok := (Trend{}).PredictMin(gappy, 30*time.Minute); ok {
		t.Error("trend across a 15-minute gap")
	}
}

// forecasts is a Predictor that returns a scripted forecast for each minute after t0.
type forecasts map[int]float64

func (forecasts) Name() string { return "scripted" }

func (f forecasts) PredictMin(hist []Reading, _ time.Duration) (float64, bool) {
	v, ok := f[int(hist[len(hist)-1].Time.Sub(t0).Minutes())]
	return v, ok
}

// A predicted low that clears and comes back within PredictedLowRearm is not raised again;
// after it, it is.
func TestPredictedLowRearm(t *testing.T) {
	s := DefaultSettings()
	s.Predictor = forecasts{0: 65, 1: 65, 2: 80, 3: 66, 4: 80, 5: 66, 13: 66, 14: 66, 15: 80}
	m := newMonitor(t, s)
	var rs []Reading
	for i := range 16 {
		rs = append(rs, Reading{Time: t0.Add(time.Duration(i) * time.Minute), MgdL: 100})
	}
	got := feed(t, m, rs, PredictedLow)
	// Raised at 0, cleared at 2; back at 3 and 5 (held), clear at 4 (the hold counts from
	// the clearance at 2, not from 4: it was not raised in between); raised again at 13.
	if got.kinds() != "predicted_low@0s predicted_low@13m0s" {
		t.Errorf("got %s", got.kinds())
	}
}

func TestAR2Recurrence(t *testing.T) {
	// y = ln(bg/140): ln(100/140) = −0.33647, ln(95/140) = −0.38776;
	// −0.723·(−0.33647) + 1.716·(−0.38776) = −0.42213 → 140·e^−0.42213 = 91.8 mg/dL.
	got, ok := AR2{}.PredictMin(series(100, 95), 5*time.Minute)
	if !ok || math.Abs(got-91.80) > 0.01 {
		t.Fatalf("AR2 one step = %.3f, %v; want 91.80", got, ok)
	}
	// Six steps keep falling and the minimum is the last.
	six, _ := AR2{}.PredictMin(series(100, 95), 30*time.Minute)
	if !(six < got) {
		t.Errorf("30-minute minimum %.1f not below the 5-minute one %.1f", six, got)
	}
	// Over a gap (more than 9 minutes) it starts, as Nightscout's delta plugin does, from the
	// glucose 5 minutes back on the line between the two readings — not from the older reading
	// as if it were 5 minutes old, which would triple this trend.
	gap, ok := (AR2{}).PredictMin([]Reading{{t0, 100}, {t0.Add(15 * time.Minute), 95}}, 30*time.Minute)
	line, _ := (AR2{}).PredictMin(series(95+5.0/3, 95), 30*time.Minute)
	if !ok || math.Abs(gap-line) > 1e-9 {
		t.Errorf("AR2 across a 15-minute gap = %.3f, %v; want %.3f", gap, ok, line)
	}
	// Nine minutes apart is still "the previous reading"; nine and a half is interpolated.
	nine, _ := (AR2{}).PredictMin([]Reading{{t0, 100}, {t0.Add(9 * time.Minute), 95}}, 30*time.Minute)
	if direct, _ := (AR2{}).PredictMin(series(100, 95), 30*time.Minute); nine != direct {
		t.Errorf("9 minutes apart: %.3f, want %.3f as 5 minutes apart", nine, direct)
	}
	later, _ := (AR2{}).PredictMin([]Reading{{t0, 100}, {t0.Add(570 * time.Second), 95}}, 30*time.Minute)
	if line, _ := (AR2{}).PredictMin(series(95+5*5/9.5, 95), 30*time.Minute); math.Abs(later-line) > 1e-9 {
		t.Errorf("9.5 minutes apart: %.3f, want %.3f", later, line)
	}
	for _, pair := range [][]float64{{40, 35}, {35, 40}} {
		if _, ok := (AR2{}).PredictMin(series(pair...), 30*time.Minute); ok {
			t.Errorf("AR2 from %v: a reading below 36 mg/dL", pair)
		}
	}
}

func TestSettingsRefused(t *testing.T) {
	cases := []struct {
		edit func(*Settings)
		want string
	}{
		{func(s *Settings) { s.Low = 50 }, "urgent low < low"},
		{func(s *Settings) { s.UrgentHigh = 500 }, "≤ 400 mg/dL"},
		{func(s *Settings) { s.FallRate = 0 }, "rates must be positive"},
		{func(s *Settings) { s.SignalLoss = 10 * time.Minute }, "stale (15m0s) < signal loss (10m0s)"},
		{func(s *Settings) { s.Horizon = 2 * time.Hour }, "horizon 2h0m0s outside 5m–60m"},
	}
	for _, c := range cases {
		s := DefaultSettings()
		c.edit(&s)
		if _, err := NewMonitor(s); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("err = %v, want it to say %q", err, c.want)
		}
	}
}

func TestLowsAndEvaluation(t *testing.T) {
	// Two hours flat at 120, a steady fall into a 25-minute low, recovery; then a 10-minute dip
	// that is not a real low.
	var rs []Reading
	rs = append(rs, ramp(t0, 120, 0, 24)...)
	fall := ramp(t0.Add(2*time.Hour), 120, -1.2, 10) // 120 → 66 in 45 min
	rs = append(rs, fall...)
	at := fall[len(fall)-1].Time
	for i, v := range []float64{62, 60, 63, 66, 74, 85, 100, 110, 115, 118, 120} {
		rs = append(rs, Reading{Time: at.Add(time.Duration(i+1) * 5 * time.Minute), MgdL: v})
	}
	at = rs[len(rs)-1].Time
	for i, v := range []float64{120, 120, 68, 72, 120, 120} {
		rs = append(rs, Reading{Time: at.Add(time.Duration(i+1) * 5 * time.Minute), MgdL: v})
	}
	lows := Lows(rs)
	if len(lows) != 1 {
		t.Fatalf("lows %+v, want one", lows)
	}
	if d := lows[0].End.Sub(lows[0].Start); d != 25*time.Minute || lows[0].Nadir != 60 {
		t.Errorf("low lasts %v with nadir %v", d, lows[0].Nadir)
	}
	for _, p := range []Predictor{Trend{}, AR2{}} {
		res, err := EvaluatePredictor(rs, p, 30*time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		// Both warn before the low and neither cries wolf on the flat hours or the short dip.
		if res.Alerts != 1 || res.FalseAlerts != 0 || !res.Lows[0].Warned || res.Lows[0].Lead < 5*time.Minute {
			t.Errorf("%s: %+v", p.Name(), res)
		}
		if (res.Lows[0].Lead >= 15*time.Minute) != (res.Caught15 == 1) {
			t.Errorf("%s: caught %d with lead %v", p.Name(), res.Caught15, res.Lows[0].Lead)
		}
	}
}
