package glucose

import (
	"math"
	"slices"
	"time"
)

// AGPPoint holds the glucose percentiles at one time of day.
type AGPPoint struct {
	Minute int     `json:"minute"` // minutes after midnight, local time
	P5     float64 `json:"p5"`
	P25    float64 `json:"p25"`
	P50    float64 `json:"p50"`
	P75    float64 `json:"p75"`
	P95    float64 `json:"p95"`
	N      int     `json:"n"` // values pooled
}

// AGP computes the ambulatory glucose profile: every 15 minutes of the day, the 5th, 25th,
// 50th, 75th and 95th percentiles (R type 7) of the grid values of all days within ±15 minutes
// of that time. Pooling a half-hour window over the days smooths the curves as the standard
// AGP report does without inventing values; the grid (DayByDay, 45-minute interpolation limit)
// keeps days with denser sampling from weighing more. Points with no data are NaN.
func AGP(rs []Reading, loc *time.Location) []AGPPoint {
	const every, half = 15, 15 // minutes
	g := DayByDay(rs, 0, DefaultInterGap, loc)
	per := g.PerDay()
	out := make([]AGPPoint, 0, 1440/every)
	var pool []float64
	for m := 0; m < 1440; m += every {
		pool = pool[:0]
		for k := 0; k < per; k++ {
			slot := float64(k+1) * g.Step.Minutes() // minutes after midnight
			d := math.Abs(slot - float64(m))
			d = math.Min(d, 1440-d) // the day wraps around
			if d > half {
				continue
			}
			for day := 0; day < g.Days; day++ {
				if v := g.At(day, k); !math.IsNaN(v) {
					pool = append(pool, v)
				}
			}
		}
		p := AGPPoint{Minute: m, N: len(pool)}
		slices.Sort(pool)
		p.P5, p.P25, p.P50 = Quantile(pool, 0.05), Quantile(pool, 0.25), Quantile(pool, 0.5)
		p.P75, p.P95 = Quantile(pool, 0.75), Quantile(pool, 0.95)
		out = append(out, p)
	}
	return out
}

// Day is one calendar day of readings in the subject's zone.
type Day struct {
	Date     time.Time `json:"date"` // local midnight
	Readings []Reading `json:"readings"`
	Mean     float64   `json:"mean"`
	InRange  float64   `json:"in_range_70_180"` // % of the day's readings
	Below70  float64   `json:"below_70"`
	Above180 float64   `json:"above_180"`
}

// Daily splits readings into local calendar days, each with its own mean and time in ranges.
func Daily(rs []Reading, loc *time.Location) []Day {
	if loc == nil {
		loc = time.UTC
	}
	var days []Day
	for _, r := range Clean(rs) {
		t := r.Time.In(loc)
		mid := time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, loc)
		if len(days) == 0 || !days[len(days)-1].Date.Equal(mid) {
			days = append(days, Day{Date: mid})
		}
		d := &days[len(days)-1]
		d.Readings = append(d.Readings, r)
	}
	for i := range days {
		d := &days[i]
		d.Mean, _ = meanSD(values(d.Readings))
		var in, lo, hi int
		for _, r := range d.Readings {
			switch {
			case r.MgdL < Low:
				lo++
			case r.MgdL > High:
				hi++
			default:
				in++
			}
		}
		n := float64(len(d.Readings))
		d.InRange, d.Below70, d.Above180 = 100*float64(in)/n, 100*float64(lo)/n, 100*float64(hi)/n
	}
	return days
}
