package glucose

import (
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/iomt/iomt"
)

// Kind names an alert.
type Kind string

// Alert kinds.
const (
	UrgentLow    Kind = "urgent_low"
	LowAlert     Kind = "low"
	HighAlert    Kind = "high"
	UrgentHigh   Kind = "urgent_high"
	RisingFast   Kind = "rising_fast"
	FallingFast  Kind = "falling_fast"
	Stale        Kind = "stale"         // no reading for Settings.Stale
	SignalLoss   Kind = "signal_loss"   // no reading for Settings.SignalLoss
	PredictedLow Kind = "predicted_low" // forecast below Settings.Low within Settings.Horizon
)

// PredictedLowClearance is how far above the low threshold the forecast must rise, in mg/dL,
// before a raised predicted-low alert clears.
const PredictedLowClearance = 5.0

// PredictedLowRearm is how long after a predicted-low alert clears it cannot be raised again:
// a forecast that dips back below the threshold within minutes is the same fall, and with a
// 1-minute sensor's noise it would otherwise alert again and again. The low alert itself is
// not held.
const PredictedLowRearm = 10 * time.Minute

// Settings are one patient's alert thresholds: the four glucose limits (mg/dL) as a patient's
// record keeps them, and the rest.
type Settings struct {
	iomt.GlucoseLimits
	RiseRate, FallRate float64       // mg/dL/min, both positive
	Stale, SignalLoss  time.Duration // no-data alerts
	Horizon            time.Duration // predicted-low look-ahead
	Predictor          Predictor     // nil: Trend{}
}

// DefaultSettings are common CGM defaults: urgent low 55, low 70, high 250, urgent high 300
// mg/dL, ±2 mg/dL/min, no data for 15 and 30 minutes, a low predicted 30 minutes ahead.
func DefaultSettings() Settings {
	return Settings{GlucoseLimits: iomt.GlucoseLimits{UrgentLow: 55, Low: 70, High: 250, UrgentHigh: 300}, RiseRate: 2, FallRate: 2,
		Stale: 15 * time.Minute, SignalLoss: 30 * time.Minute, Horizon: 30 * time.Minute}
}

// Validate refuses thresholds out of order or out of the sensors' range.
func (s Settings) Validate() error {
	if l := s.GlucoseLimits; l.IsZero() || iomt.CheckGlucoseLimits(l) != nil {
		return fmt.Errorf("glucose: thresholds must satisfy 40 ≤ urgent low < low < high < urgent high ≤ 400 mg/dL, got %g/%g/%g/%g",
			s.UrgentLow, s.Low, s.High, s.UrgentHigh)
	}
	if !(s.RiseRate > 0 && s.FallRate > 0) {
		return errors.New("glucose: rise and fall rates must be positive")
	}
	if !(0 < s.Stale && s.Stale < s.SignalLoss) {
		return fmt.Errorf("glucose: need 0 < stale (%v) < signal loss (%v)", s.Stale, s.SignalLoss)
	}
	if s.Horizon < 5*time.Minute || s.Horizon > 60*time.Minute {
		return fmt.Errorf("glucose: predicted-low horizon %v outside 5m–60m", s.Horizon)
	}
	return nil
}

// Alert is one raised alert.
type Alert struct {
	Kind      Kind      `json:"kind"`
	Time      time.Time `json:"time"`
	MgdL      float64   `json:"mgdl,omitempty"`      // the reading that raised it
	Rate      float64   `json:"rate,omitempty"`      // mg/dL/min, where known
	Predicted float64   `json:"predicted,omitempty"` // forecast minimum, for PredictedLow
}

// Monitor raises one patient's alerts from their readings as they arrive. An alert is raised
// when its condition starts and stays latched, silent, while the condition lasts; a snooze
// silences a kind until it expires, after which a condition still present is raised again.
// A Monitor is not safe for concurrent use: one owner per patient, as the bus partitions them.
type Monitor struct {
	s      Settings
	hist   []Reading // the last hour, oldest first
	active map[Kind]bool
	snooze map[Kind]time.Time
}

// NewMonitor returns a monitor with validated settings.
func NewMonitor(s Settings) (*Monitor, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	if s.Predictor == nil {
		s.Predictor = Trend{}
	}
	return &Monitor{s: s, active: map[Kind]bool{}, snooze: map[Kind]time.Time{}}, nil
}

// Snooze silences kind until the given time.
func (m *Monitor) Snooze(kind Kind, until time.Time) {
	m.snooze[kind] = until
	// Unlatch so that a condition outlasting the snooze is raised again.
	m.active[kind] = false
}

// Active reports whether kind's condition is currently latched.
func (m *Monitor) Active(kind Kind) bool { return m.active[kind] }

// raise applies latching and snoozes to one condition evaluated at now.
func (m *Monitor) raise(out []Alert, cond bool, a Alert, now time.Time) []Alert {
	switch {
	case !cond:
		m.active[a.Kind] = false
	case m.active[a.Kind]:
	case now.Before(m.snooze[a.Kind]):
	default:
		m.active[a.Kind] = true
		a.Time = now
		out = append(out, a)
	}
	return out
}

// latch marks a condition as present without raising it, when a more urgent kind covers it.
func (m *Monitor) latch(kind Kind, cond bool) {
	if !cond {
		m.active[kind] = false
	} else if !m.active[kind] {
		m.active[kind] = true
	}
}

// Observe takes the next reading and returns the alerts it raises. Readings not after the last
// one (replays, duplicates) are ignored.
func (m *Monitor) Observe(r Reading) []Alert {
	if math.IsNaN(r.MgdL) || (len(m.hist) > 0 && !r.Time.After(m.hist[len(m.hist)-1].Time)) {
		return nil
	}
	m.hist = append(m.hist, r)
	cut := 0
	for cut < len(m.hist) && r.Time.Sub(m.hist[cut].Time) > time.Hour {
		cut++
	}
	m.hist = m.hist[cut:]

	var out []Alert
	now, v := r.Time, r.MgdL
	s := m.s
	// Data arrived: no-data conditions end.
	out = m.raise(out, false, Alert{Kind: SignalLoss}, now)
	out = m.raise(out, false, Alert{Kind: Stale}, now)

	urgent := v < s.UrgentLow
	out = m.raise(out, urgent, Alert{Kind: UrgentLow, MgdL: v}, now)
	if urgent {
		m.latch(LowAlert, true)
	} else {
		out = m.raise(out, v < s.Low, Alert{Kind: LowAlert, MgdL: v}, now)
	}
	urgent = v > s.UrgentHigh
	out = m.raise(out, urgent, Alert{Kind: UrgentHigh, MgdL: v}, now)
	if urgent {
		m.latch(HighAlert, true)
	} else {
		out = m.raise(out, v > s.High, Alert{Kind: HighAlert, MgdL: v}, now)
	}

	rate, ok := Rate(m.hist)
	out = m.raise(out, ok && rate >= s.RiseRate, Alert{Kind: RisingFast, MgdL: v, Rate: rate}, now)
	out = m.raise(out, ok && rate <= -s.FallRate, Alert{Kind: FallingFast, MgdL: v, Rate: rate}, now)

	// A predicted low only matters while the patient is not low already.
	// Once raised, it holds until the forecast clears the threshold by a margin, so a forecast
	// hovering at the threshold does not raise it again and again, and once cleared it is
	// snoozed for PredictedLowRearm (or longer, if already snoozed longer).
	pred, ok := s.Predictor.PredictMin(m.hist, s.Horizon)
	limit := s.Low
	if m.active[PredictedLow] {
		limit += PredictedLowClearance
	}
	cond := ok && v >= s.Low && pred < limit
	if until := now.Add(PredictedLowRearm); m.active[PredictedLow] && !cond && until.After(m.snooze[PredictedLow]) {
		m.snooze[PredictedLow] = until
	}
	out = m.raise(out, cond, Alert{Kind: PredictedLow, MgdL: v, Predicted: pred}, now)
	return out
}

// Tick evaluates the no-data alerts at now; call it periodically (every minute or so).
func (m *Monitor) Tick(now time.Time) []Alert {
	if len(m.hist) == 0 {
		return nil
	}
	since := now.Sub(m.hist[len(m.hist)-1].Time)
	var out []Alert
	lost := since >= m.s.SignalLoss
	out = m.raise(out, lost, Alert{Kind: SignalLoss}, now)
	if lost {
		m.latch(Stale, true)
	} else {
		out = m.raise(out, since >= m.s.Stale, Alert{Kind: Stale}, now)
	}
	return out
}

// Rate is the rate of change in mg/dL/min: the least-squares slope of the readings of the last
// 15 minutes, which needs at least three of them spanning 10 minutes: 5-minute or 1-minute data,
// not 15-minute data (LibreView's historic records), which gets no rate and so no rate alerts.
// A slope over several readings keeps sensor noise from raising rise and fall alerts.
func Rate(hist []Reading) (float64, bool) {
	if len(hist) == 0 {
		return 0, false
	}
	last := hist[len(hist)-1].Time
	i := len(hist)
	for i > 0 && last.Sub(hist[i-1].Time) <= 15*time.Minute {
		i--
	}
	w := hist[i:]
	if len(w) < 3 || last.Sub(w[0].Time) < 10*time.Minute {
		return 0, false
	}
	slope, _ := fitLine(w, last)
	return slope, true
}

// fitLine fits v = level + slope·(t − at) by least squares, t in minutes.
func fitLine(w []Reading, at time.Time) (slope, level float64) {
	var sx, sy, sxx, sxy float64
	n := float64(len(w))
	for _, r := range w {
		x := r.Time.Sub(at).Minutes()
		sx += x
		sy += r.MgdL
		sxx += x * x
		sxy += x * r.MgdL
	}
	den := n*sxx - sx*sx
	if den == 0 {
		return 0, sy / n
	}
	slope = (n*sxy - sx*sy) / den
	level = (sy - slope*sx) / n
	return slope, level
}
