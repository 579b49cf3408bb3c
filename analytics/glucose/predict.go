package glucose

import (
	"math"
	"time"
)

// Predictor forecasts glucose from a patient's recent readings.
type Predictor interface {
	// PredictMin returns the lowest glucose forecast within horizon after the last reading of
	// hist (oldest first); ok is false when the recent readings are too few to forecast.
	PredictMin(hist []Reading, horizon time.Duration) (min float64, ok bool)
	Name() string
}

// AR2 is the forecast Nightscout uses (cgm-remote-monitor, lib/plugins/ar2.js): an
// autoregressive model of order 2 in log space around 140 mg/dL, y = ln(bg/140),
// y(n+1) = −0.723·y(n−1) + 1.716·y(n), in 5-minute steps from the last reading and the glucose
// 5 minutes before it. As Nightscout's delta plugin does, that is the previous reading when the
// two are at most 9 minutes apart, else the value 5 minutes back on the straight line between
// them, so a missed reading does not double the trend; neither reading may be below 36 mg/dL.
// Nightscout rounds its forecast points to whole mg/dL; here they are left unrounded, like
// iomt's, because both forecasts meet the same alert rule (rounding would move AR2's threshold
// to 69.5 mg/dL, which alone costs it 3 of its 19 catches on the Hall data).
type AR2 struct{}

// Name implements Predictor.
func (AR2) Name() string { return "nightscout-ar2" }

// Nightscout's AR2 constants.
const (
	ar2Ref = 140.0 // mg/dL, the centre of the log transform
	ar2Min = 36.0  // mg/dL, the lowest reading forecast from
)

// PredictMin implements Predictor.
func (AR2) PredictMin(hist []Reading, horizon time.Duration) (float64, bool) {
	if len(hist) < 2 {
		return 0, false
	}
	prev, curr := hist[len(hist)-2], hist[len(hist)-1]
	if prev.MgdL < ar2Min || curr.MgdL < ar2Min {
		return 0, false
	}
	before := prev.MgdL
	if elapsed := curr.Time.Sub(prev.Time).Minutes(); elapsed > 9 {
		before = curr.MgdL - (curr.MgdL-prev.MgdL)/elapsed*5
	}
	y0, y1 := math.Log(before/ar2Ref), math.Log(curr.MgdL/ar2Ref)
	lowest := math.Inf(1)
	for step := 5 * time.Minute; step <= horizon; step += 5 * time.Minute {
		y0, y1 = y1, -0.723*y0+1.716*y1
		lowest = math.Min(lowest, ar2Ref*math.Exp(y1))
	}
	return lowest, true
}

// Trend is iomt's forecast: a damped trend in log space. Level and rate are fitted by least
// squares to the readings of the last 10 minutes, so one noisy reading neither raises nor hides
// an alert; the relative rate is carried forward in 5-minute steps over two thirds of the
// horizon, damped by trendDamping per step because a fall slows as it goes (counter-regulation,
// treatment).
//
// The forecast is the last reading, no fall, when the fall has flattened or is ending:
//   - flattened: the last reading is less than trendMinDrop per 5 minutes below the newest reading
//     trendStep or more older (a 1 mg/dL step is sensor resolution and noise);
//   - ending: the last step's pace is under trendSlowing of the step before's, unless the step
//     before fell faster than trendFastFall (Dexcom's double down arrow), after which a slower
//     step is still a steep descent or a sensor catching up.
//
// Steps span trendStep or more, not consecutive readings, and are rounded to the minute, so
// 1-minute sensors (Libre 2/3) are judged by paces as 5-minute ones are, and a few seconds of
// jitter move no bar. The
// forecast needs at least three readings spanning 7.5 of the last 10 minutes: 15-minute data
// (LibreView's historic records) raises no predicted low.
// The constants are global, the same for every patient, chosen on the shared iglu data;
// docs/VALIDATION.md ("## CGM") has what each rule changed there and how close the choice is.
type Trend struct{}

// Name implements Predictor.
func (Trend) Name() string { return "iomt-trend" }

const (
	trendWindow   = 10 * time.Minute
	trendDamping  = 0.65
	trendMinDrop  = 2.0             // mg/dL per 5 minutes, from the reference reading to the last
	trendStep     = 4 * time.Minute // the reference reading is the newest at least this much older
	trendSlowing  = 0.55            // a fall slowed to under this share of the step before is ending
	trendFastFall = 3.0             // mg/dL/min, a double down arrow: faster is not ending by slowing
)

// PredictMin implements Predictor.
func (Trend) PredictMin(hist []Reading, horizon time.Duration) (float64, bool) {
	n := len(hist)
	if n < 3 {
		return 0, false
	}
	last := hist[n-1].Time
	i := n
	for i > 0 && last.Sub(hist[i-1].Time) <= trendWindow {
		i--
	}
	w := hist[i:]
	if len(w) < 3 || last.Sub(w[0].Time) < trendWindow*3/4 {
		return 0, false
	}
	// w spans at least 7.5 minutes, so it holds a reading trendStep older than the last.
	end := len(w) - 1
	ref := stepBefore(w, end)
	elapsed := last.Sub(w[ref].Time).Round(time.Minute)
	if hist[n-1].MgdL > w[ref].MgdL-trendMinDrop*elapsed.Minutes()/5 {
		return hist[n-1].MgdL, true
	}
	// Paces are positive when falling; the last one is at least 0.4 mg/dL/min here, so a step
	// before that rose or stayed flat never makes the fall look like it is ending.
	if prev := stepBefore(w, ref); prev >= 0 {
		if before := pace(w, prev, ref); before <= trendFastFall && pace(w, ref, end) < trendSlowing*before {
			return hist[n-1].MgdL, true
		}
	}
	slope, level := fitLine(w, last)
	if level <= 0 {
		return 0, false
	}
	steps := int(math.Round(horizon.Minutes() / 5 * 2 / 3))
	y, d := math.Log(level), 5*slope/level
	lowest := level
	for range steps {
		d *= trendDamping
		y += d
		lowest = math.Min(lowest, math.Exp(y))
	}
	return lowest, true
}

// stepBefore returns the index of the newest reading of w at least trendStep older than w[i], or
// -1 if there is none.
func stepBefore(w []Reading, i int) int {
	j := i - 1
	for j >= 0 && w[i].Time.Sub(w[j].Time) < trendStep {
		j--
	}
	return j
}

// pace is the fall from w[a] to w[b] in mg/dL per minute, the time between them rounded to the
// minute.
func pace(w []Reading, a, b int) float64 {
	return (w[a].MgdL - w[b].MgdL) / w[b].Time.Sub(w[a].Time).Round(time.Minute).Minutes()
}
