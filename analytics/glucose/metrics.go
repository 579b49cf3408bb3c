package glucose

import (
	"math"
	"slices"
	"time"
)

// Reading is one sensor glucose value.
type Reading struct {
	Time time.Time `json:"time"`
	MgdL float64   `json:"mgdl"`
}

// Consensus thresholds in mg/dL (Battelino et al. 2019).
const (
	VeryLow  = 54
	Low      = 70
	High     = 180
	VeryHigh = 250
)

// Summary holds the metrics of one subject's readings. A metric the data cannot support (MAGE
// over a few hours, SD of one reading) is NaN; encoding/json refuses NaN, so map it (to null)
// before encoding.
type Summary struct {
	Readings int       `json:"readings"`
	Start    time.Time `json:"start"`
	End      time.Time `json:"end"`
	Days     float64   `json:"days"` // (End-Start) in days

	Mean float64 `json:"mean"` // mg/dL
	SD   float64 `json:"sd"`   // mg/dL, sample standard deviation
	CV   float64 `json:"cv"`   // %
	GMI  float64 `json:"gmi"`  // %, 3.31 + 0.02392 × mean

	// Percent of readings: very low <54, low <70, in range 70–180, high >180, very high >250.
	// Below70 includes Below54 and Above180 includes Above250, as the consensus reports them.
	Below54    float64    `json:"below_54"`
	Below70    float64    `json:"below_70"`
	InRange    float64    `json:"in_range_70_180"`
	Above180   float64    `json:"above_180"`
	Above250   float64    `json:"above_250"`
	ActivePct  float64    `json:"active_percent"` // data sufficiency: % of expected readings present
	Quartiles  [5]float64 `json:"quartiles"`      // min, 25th, median, 75th, max
	MAGE       float64    `json:"mage"`           // iglu mage(version = "ma"); NaN if too little data
	CONGA      float64    `json:"conga"`          // iglu conga(n = 24)
	MODD       float64    `json:"modd"`           // iglu modd(lag = 1)
	SampleStep float64    `json:"sample_minutes"`
}

// Clean returns the readings sorted by time without non-finite values. Readings at the same
// instant are kept: iglu's time-independent metrics count them.
func Clean(rs []Reading) []Reading {
	out := make([]Reading, 0, len(rs))
	for _, r := range rs {
		if !math.IsNaN(r.MgdL) && !math.IsInf(r.MgdL, 0) && !r.Time.IsZero() {
			out = append(out, r)
		}
	}
	slices.SortStableFunc(out, func(a, b Reading) int { return a.Time.Compare(b.Time) })
	return out
}

// Summarize computes every metric of one subject. loc is the subject's zone; it sets where the
// interpolation grid's days begin.
func Summarize(rs []Reading, loc *time.Location) Summary {
	rs = Clean(rs)
	var s Summary
	s.Readings = len(rs)
	if len(rs) == 0 {
		nan := math.NaN()
		s.Mean, s.SD, s.CV, s.GMI, s.MAGE, s.CONGA, s.MODD = nan, nan, nan, nan, nan, nan, nan
		return s
	}
	s.Start, s.End = rs[0].Time, rs[len(rs)-1].Time
	s.Days = s.End.Sub(s.Start).Hours() / 24
	v := values(rs)
	s.Mean, s.SD = meanSD(v)
	s.CV = 100 * s.SD / s.Mean
	s.GMI = GMI(s.Mean)
	n := float64(len(v))
	var b54, b70, in, a180, a250 int
	for _, x := range v {
		if x < VeryLow {
			b54++
		}
		if x < Low {
			b70++
		}
		if x >= Low && x <= High {
			in++
		}
		if x > High {
			a180++
		}
		if x > VeryHigh {
			a250++
		}
	}
	s.Below54, s.Below70, s.InRange = 100*float64(b54)/n, 100*float64(b70)/n, 100*float64(in)/n
	s.Above180, s.Above250 = 100*float64(a180)/n, 100*float64(a250)/n
	sorted := slices.Clone(v)
	slices.Sort(sorted)
	for i, p := range []float64{0, 0.25, 0.5, 0.75, 1} {
		s.Quartiles[i] = Quantile(sorted, p)
	}
	s.ActivePct = ActivePercent(rs)
	g := DayByDay(rs, 0, DefaultInterGap, loc)
	s.SampleStep = g.Step.Minutes()
	s.CONGA = CONGA(g, 24)
	s.MODD = MODD(g, 1)
	s.MAGE = MAGE(rs, loc)
	return s
}

// GMI is the glucose management indicator in % (Bergenstal et al. 2018).
func GMI(meanMgdL float64) float64 { return 3.31 + 0.02392*meanMgdL }

func values(rs []Reading) []float64 {
	v := make([]float64, len(rs))
	for i, r := range rs {
		v[i] = r.MgdL
	}
	return v
}

// meanSD skips NaNs, as R's na.rm = TRUE; SD is the sample (n−1) standard deviation.
func meanSD(v []float64) (mean, sd float64) {
	var sum float64
	n := 0
	for _, x := range v {
		if !math.IsNaN(x) {
			sum += x
			n++
		}
	}
	if n == 0 {
		return math.NaN(), math.NaN()
	}
	mean = sum / float64(n)
	if n < 2 {
		return mean, math.NaN()
	}
	var ss float64
	for _, x := range v {
		if !math.IsNaN(x) {
			ss += (x - mean) * (x - mean)
		}
	}
	return mean, math.Sqrt(ss / float64(n-1))
}

// Quantile of sorted values by linear interpolation between order statistics (R's default,
// type 7).
func Quantile(sorted []float64, p float64) float64 {
	if len(sorted) == 0 {
		return math.NaN()
	}
	h := p * float64(len(sorted)-1)
	lo := int(math.Floor(h))
	if lo >= len(sorted)-1 {
		return sorted[len(sorted)-1]
	}
	return sorted[lo] + (h-float64(lo))*(sorted[lo+1]-sorted[lo])
}

// minutes between two instants as R's difftime(units = "mins") gives it.
func minutes(a, b time.Time) float64 { return b.Sub(a).Seconds() / 60 }

// medianStep is the median sampling interval rounded to whole minutes (R rounds half to even).
func medianStep(rs []Reading) float64 {
	if len(rs) < 2 {
		return 5
	}
	d := make([]float64, 0, len(rs)-1)
	for i := 1; i < len(rs); i++ {
		d = append(d, minutes(rs[i-1].Time, rs[i].Time))
	}
	slices.Sort(d)
	return math.RoundToEven(Quantile(d, 0.5))
}

// ActivePercent is iglu's active_percent: of the readings expected at the median sampling
// interval between the first and the last reading, the percentage present. A gap counts as
// missing the readings that would fit into it beyond one interval.
func ActivePercent(rs []Reading) float64 {
	rs = dedupAverage(Clean(rs))
	if len(rs) < 2 {
		return math.NaN()
	}
	dt := medianStep(rs)
	if dt <= 0 {
		return math.NaN()
	}
	total := math.RoundToEven(math.RoundToEven(minutes(rs[0].Time, rs[len(rs)-1].Time))/dt) + 1
	var gapMin float64
	gaps := 0
	for i := 1; i < len(rs); i++ {
		if d := minutes(rs[i-1].Time, rs[i].Time); math.RoundToEven(d) > dt {
			gapMin += d
			gaps++
		}
	}
	missing := math.RoundToEven((gapMin - float64(gaps)*dt) / dt)
	return 100 * (total - missing) / total
}

// dedupAverage averages readings at the same instant, as iglu's data check does before
// active_percent.
func dedupAverage(rs []Reading) []Reading {
	out := rs[:0:0]
	for i := 0; i < len(rs); {
		j, sum := i, 0.0
		for ; j < len(rs) && rs[j].Time.Equal(rs[i].Time); j++ {
			sum += rs[j].MgdL
		}
		out = append(out, Reading{Time: rs[i].Time, MgdL: sum / float64(j-i)})
		i = j
	}
	return out
}
