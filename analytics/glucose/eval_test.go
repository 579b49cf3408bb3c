package glucose

import (
	"math"
	"testing"
	"time"
)

// Two days of wear a month apart are two days of data: false alerts per day must not be
// diluted by the weeks between sensors.
func TestEvaluatePredictorCountsOnlyDaysWithData(t *testing.T) {
	var rs []Reading
	for _, start := range []time.Time{t0, t0.Add(31 * 24 * time.Hour)} {
		for i := range 24*12 + 1 { // 24 h every 5 minutes, both ends included
			rs = append(rs, Reading{Time: start.Add(time.Duration(i) * 5 * time.Minute), MgdL: 120})
		}
	}
	// Inside the first day, a 15-minute hole is covered (a low may run across it) and a
	// 20-minute one is not.
	rs = append(rs[:100], rs[102:]...)
	rs = append(rs[:10], rs[13:]...)
	r, err := EvaluatePredictor(rs, Trend{}, 30*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if want := 2 - 20.0/(24*60); math.Abs(r.Days-want) > 1e-9 {
		t.Errorf("days with data %.6f, want %.6f", r.Days, want)
	}
	if math.Abs(r.SpanDays-32) > 1e-9 {
		t.Errorf("span %.6f days, want 32", r.SpanDays)
	}
	r.FalseAlerts = 3
	if math.Abs(r.FalsePerDay()-3/r.Days) > 1e-12 {
		t.Errorf("false/day %v is not per day with data", r.FalsePerDay())
	}
}
