package glucose

import (
	"time"
)

// LowEvent is a real low: glucose below 70 mg/dL for at least 15 minutes.
type LowEvent struct {
	Start time.Time `json:"start"` // first reading below 70
	End   time.Time `json:"end"`   // first reading back at or above 70, else last reading below
	Nadir float64   `json:"nadir"`
}

// Definitions of the predicted-low evaluation.
const (
	lowMinDuration = 15 * time.Minute // a real low lasts at least this long
	lowMaxGap      = 15 * time.Minute // a longer gap ends an episode: we do not know what happened
	// An alert is credited to a low starting at most Horizon + alertSlack after it, and is false
	// if glucose does not go below 70 at all within that time.
	alertSlack = 15 * time.Minute
)

// Lows finds the real lows of a series: runs of readings below 70 mg/dL, no two more than 15
// minutes apart, lasting at least 15 minutes from the first reading below to the first reading
// back in range (or to the last reading below, when data stop).
func Lows(rs []Reading) []LowEvent { return lows(Clean(rs)) }

// lows is Lows of clean readings.
func lows(rs []Reading) []LowEvent {
	var out []LowEvent
	for i := 0; i < len(rs); {
		if rs[i].MgdL >= Low {
			i++
			continue
		}
		e := LowEvent{Start: rs[i].Time, End: rs[i].Time, Nadir: rs[i].MgdL}
		j := i + 1
		for ; j < len(rs) && rs[j].Time.Sub(rs[j-1].Time) <= lowMaxGap; j++ {
			if rs[j].MgdL >= Low {
				e.End = rs[j].Time
				break
			}
			e.End = rs[j].Time
			e.Nadir = min(e.Nadir, rs[j].MgdL)
		}
		if e.End.Sub(e.Start) >= lowMinDuration {
			out = append(out, e)
		}
		i = j
	}
	return out
}

// LowOutcome is how one predictor did on one real low.
type LowOutcome struct {
	LowEvent
	Warned      bool          `json:"warned"`
	Lead        time.Duration `json:"-"`            // onset − first predicted-low alert, when Warned
	LeadMinutes float64       `json:"lead_minutes"` // Lead for JSON
}

// Caught says the low was warned of at least 15 minutes ahead, the measure.
func (o LowOutcome) Caught() bool { return o.Warned && o.Lead >= 15*time.Minute }

// PredictionResult scores one predictor on one series.
type PredictionResult struct {
	Predictor string `json:"predictor"`
	// Days is the time covered by data: the sum of the intervals between consecutive readings
	// at most lowMaxGap (15 minutes) apart, so the weeks between two wear periods do not dilute
	// the false alerts per day. SpanDays is the calendar span, first reading to last.
	Days        float64       `json:"days"`
	SpanDays    float64       `json:"span_days"`
	Lows        []LowOutcome  `json:"lows"`
	Caught15    int           `json:"caught_15min"` // lows warned at least 15 minutes ahead
	Alerts      int           `json:"alerts"`
	FalseAlerts int           `json:"false_alerts"`
	Horizon     time.Duration `json:"-"`
}

// EvaluatePredictor replays readings through a Monitor with predictor p and scores its
// predicted-low alerts against the real lows: for each low, the lead time of the first alert in
// the Horizon + 15 minutes before it began; an alert is false when no reading below 70 follows
// within Horizon + 15 minutes. Every predictor sees the same alerting rules.
func EvaluatePredictor(rs []Reading, p Predictor, horizon time.Duration) (PredictionResult, error) {
	rs = Clean(rs)
	return evaluateReplay(rs, rs, p, horizon)
}

// evaluateReplay scores the alerts raised while replaying one series against the lows of
// another, rs: the same readings resampled (1-minute sampling) are judged against the lows as
// recorded. Both are clean (Clean).
func evaluateReplay(rs, replay []Reading, p Predictor, horizon time.Duration) (PredictionResult, error) {
	s := DefaultSettings()
	s.Horizon, s.Predictor = horizon, p
	m, err := NewMonitor(s)
	if err != nil {
		return PredictionResult{}, err
	}
	var alerts []time.Time
	for _, r := range replay {
		for _, a := range m.Observe(r) {
			if a.Kind == PredictedLow {
				alerts = append(alerts, a.Time)
			}
		}
	}
	res := PredictionResult{Predictor: p.Name(), Horizon: horizon, Alerts: len(alerts)}
	res.Days, res.SpanDays = dataDays(rs)
	window := horizon + alertSlack
	// False alerts: nothing below 70 within the window after the alert.
	j := 0
	for _, a := range alerts {
		for j < len(rs) && !rs[j].Time.After(a) {
			j++
		}
		hit := false
		for k := j; k < len(rs) && !rs[k].Time.After(a.Add(window)); k++ {
			if rs[k].MgdL < Low {
				hit = true
				break
			}
		}
		if !hit {
			res.FalseAlerts++
		}
	}
	for _, e := range lows(rs) {
		o := LowOutcome{LowEvent: e}
		for _, a := range alerts {
			if !a.Before(e.Start.Add(-window)) && !a.After(e.Start) {
				o.Warned, o.Lead = true, e.Start.Sub(a)
				o.LeadMinutes = o.Lead.Minutes()
				break
			}
		}
		if o.Caught() {
			res.Caught15++
		}
		res.Lows = append(res.Lows, o)
	}
	return res, nil
}

// dataDays returns the days covered by the readings rs (clean, oldest first) — the sum of the
// intervals between consecutive readings at most 15 minutes apart, the gap that also ends a low
// (lowMaxGap): beyond it we do not know what happened — and the calendar span from the first
// reading to the last.
func dataDays(rs []Reading) (days, span float64) {
	if len(rs) < 2 {
		return 0, 0
	}
	var covered time.Duration
	for i := 1; i < len(rs); i++ {
		if d := rs[i].Time.Sub(rs[i-1].Time); d <= lowMaxGap {
			covered += d
		}
	}
	const day = 24 * time.Hour
	return float64(covered) / float64(day), float64(rs[len(rs)-1].Time.Sub(rs[0].Time)) / float64(day)
}

// FalsePerDay is the number of false predicted-low alerts per day covered by data (Days).
func (r PredictionResult) FalsePerDay() float64 {
	if r.Days == 0 {
		return 0
	}
	return float64(r.FalseAlerts) / r.Days
}
