package glucose

import (
	"math"
	"time"
)

// DefaultInterGap is the longest gap interpolated over, as iglu's default inter_gap.
const DefaultInterGap = 45 * time.Minute

// MaxGridDays bounds the grid: a series spanning more (a device clock set decades off) gets an
// empty grid, and the metrics built on it are NaN, rather than gigabytes of missing values.
const MaxGridDays = 3660

// Grid is a subject's glucose on an equally spaced grid, one row per calendar day: value k is
// at Start + (k+1)·Step (iglu's first grid point is one step after midnight). NaN is missing.
type Grid struct {
	Start  time.Time     // midnight of the first day, in the subject's zone
	Step   time.Duration // grid spacing
	Days   int
	Values []float64 // Days × PerDay, row-major
}

// PerDay is the number of grid points in a day.
func (g Grid) PerDay() int {
	if g.Step <= 0 {
		return 0
	}
	return int(24 * time.Hour / g.Step)
}

// At returns the value of day d, slot k.
func (g Grid) At(d, k int) float64 { return g.Values[d*g.PerDay()+k] }

// DayByDay interpolates readings onto a daily grid as iglu's CGMS2DayByDay does. step 0 takes
// the median sampling interval; a step that does not divide a day is rounded to a multiple of 5
// minutes (20 minutes above 20). Between two readings more than interGap apart nothing is
// interpolated. Of readings at the same instant the last one counts.
func DayByDay(rs []Reading, step time.Duration, interGap time.Duration, loc *time.Location) Grid {
	rs = Clean(rs)
	// Keep the last of equal timestamps.
	uniq := rs[:0:0]
	for i, r := range rs {
		if i+1 < len(rs) && rs[i+1].Time.Equal(r.Time) {
			continue
		}
		uniq = append(uniq, r)
	}
	rs = uniq
	if len(rs) == 0 {
		return Grid{}
	}
	dt := step.Minutes()
	if step == 0 {
		dt = medianStep(rs)
	}
	if dt <= 0 {
		dt = 5
	}
	if math.Mod(1440, dt) != 0 {
		if dt > 20 {
			dt = 20
		} else if r := math.Mod(dt, 5); r > 2 {
			dt += 5 - r
		} else {
			dt -= r
		}
		if dt == 0 {
			dt = 5
		}
	}
	if loc == nil {
		loc = time.UTC
	}
	first, last := rs[0].Time, rs[len(rs)-1].Time
	days := int(math.Ceil(last.Sub(first).Hours()/24 + 1))
	if days > MaxGridDays {
		return Grid{}
	}
	f := first.In(loc)
	start := time.Date(f.Year(), f.Month(), f.Day(), 0, 0, 0, 0, loc)
	stepD := time.Duration(dt * float64(time.Minute))
	perDay := int(1440 / dt)
	g := Grid{Start: start, Step: stepD, Days: days, Values: make([]float64, days*perDay)}

	// Walk grid and readings together: linear interpolation inside [first, last], NaN outside
	// and inside gaps longer than interGap.
	gap := interGap.Minutes()
	j := 0
	for k := range g.Values {
		t := start.Add(time.Duration(k+1) * stepD)
		for j+1 < len(rs) && !rs[j+1].Time.After(t) {
			j++
		}
		switch {
		case t.Before(first) || t.After(last):
			g.Values[k] = math.NaN()
		case rs[j].Time.Equal(t):
			g.Values[k] = rs[j].MgdL
		default:
			a, b := rs[j], rs[j+1]
			span := minutes(a.Time, b.Time)
			if span > gap {
				g.Values[k] = math.NaN()
				continue
			}
			w := minutes(a.Time, t) / span
			g.Values[k] = a.MgdL + w*(b.MgdL-a.MgdL)
		}
	}
	return g
}

// CONGA is iglu's conga(n): the standard deviation of the differences between grid values n
// hours apart.
func CONGA(g Grid, hours int) float64 {
	if g.Step <= 0 {
		return math.NaN()
	}
	lag := int(math.Round(float64(time.Hour)/float64(g.Step))) * hours
	return lagSD(g.Values, lag)
}

func lagSD(v []float64, lag int) float64 {
	if lag <= 0 || lag >= len(v) {
		return math.NaN()
	}
	d := make([]float64, 0, len(v)-lag)
	for i := lag; i < len(v); i++ {
		if x := v[i] - v[i-lag]; !math.IsNaN(x) {
			d = append(d, x)
		}
	}
	_, sd := meanSD(d)
	return sd
}

// MODD is iglu's modd(lag): the mean absolute difference between grid values at the same time
// of day lag days apart.
func MODD(g Grid, lagDays int) float64 {
	lag := g.PerDay() * lagDays
	if lag <= 0 || lag >= len(g.Values) {
		return math.NaN()
	}
	var sum float64
	n := 0
	for i := lag; i < len(g.Values); i++ {
		if x := g.Values[i] - g.Values[i-lag]; !math.IsNaN(x) {
			sum += math.Abs(x)
			n++
		}
	}
	if n == 0 {
		return math.NaN()
	}
	return sum / float64(n)
}
