package glucose

import (
	"math"
	"time"
)

// MAGE parameters of iglu's default algorithm (mage(version = "ma"), Fernandes et al. 2022).
const (
	mageShortMA = 5                 // readings in the short moving average (5-minute grid)
	mageLongMA  = 32                // readings in the long moving average
	mageMaxGap  = 180 * time.Minute // a longer gap splits the trace into segments
)

// MAGE is the mean amplitude of glycemic excursions as iglu computes it by default: on a
// 5-minute grid, turning points are found between the crossings of a short and a long moving
// average; excursions between them that exceed one SD of the segment count, nadir-to-peak
// (MAGE+) and peak-to-nadir (MAGE−) are averaged, and segments split at gaps longer than 3 h
// are weighted by their duration. NaN when no segment has enough data.
func MAGE(rs []Reading, loc *time.Location) float64 {
	g := DayByDay(rs, 5*time.Minute, DefaultInterGap, loc)
	v := g.Values
	// Trim missing values before the first and after the last reading.
	lo, hi := 0, len(v)
	for lo < hi && math.IsNaN(v[lo]) {
		lo++
	}
	for hi > lo && math.IsNaN(v[hi-1]) {
		hi--
	}
	v = v[lo:hi]
	if len(v) < 7 || len(v) < mageLongMA {
		return math.NaN()
	}
	maxGapSlots := int(mageMaxGap / g.Step)
	var num, den float64
	// Walk the segments between gaps of more than maxGapSlots missing slots.
	for i := 0; i < len(v); {
		if math.IsNaN(v[i]) {
			j := i
			for j < len(v) && math.IsNaN(v[j]) {
				j++
			}
			if j-i > maxGapSlots {
				i = j
				continue
			}
		}
		// A data segment runs to the next qualifying gap.
		j := i
		for j < len(v) {
			if math.IsNaN(v[j]) {
				k := j
				for k < len(v) && math.IsNaN(v[k]) {
					k++
				}
				if k-j > maxGapSlots {
					break
				}
				j = k
				continue
			}
			j++
		}
		seg := v[i:j]
		hours := float64(len(seg)-1) * g.Step.Hours()
		for _, m := range mageSegment(seg) {
			if !math.IsNaN(m) {
				num += m * hours
				den += hours
			}
		}
		i = j
	}
	if den == 0 {
		return math.NaN()
	}
	return num / den
}

// mageSegment returns MAGE+ and MAGE− of one segment (NaN where there is no such excursion).
func mageSegment(gl []float64) [2]float64 {
	nan := [2]float64{math.NaN(), math.NaN()}
	n := len(gl)
	if n < 7 || n < mageLongMA {
		return nan
	}
	short := rollMean(gl, mageShortMA)
	long := rollMean(gl, mageLongMA)
	delta := make([]float64, n)
	for i := range delta {
		delta[i] = short[i] - long[i]
	}

	// Crossings of the two averages; the type says whether the stretch after the crossing
	// holds a minimum (short below long) or a maximum.
	type cross struct {
		at  int
		max bool
	}
	crosses := []cross{{0, delta[0] > 0}}
	for i := 1; i < n; i++ {
		if math.IsNaN(gl[i]) || math.IsNaN(gl[i-1]) || math.IsNaN(delta[i]) || math.IsNaN(delta[i-1]) {
			continue
		}
		if delta[i]*delta[i-1] < 0 {
			crosses = append(crosses, cross{i, delta[i] > delta[i-1]})
		} else if prev := delta[crosses[len(crosses)-1].at]; delta[i]*prev < 0 {
			// The sign changed across missing values or a zero.
			crosses = append(crosses, cross{i, delta[i] > prev})
		}
	}
	crosses = append(crosses, cross{n - 1, delta[n-1] > 0})

	// One extremum per stretch, searched from the previous extremum to the next crossing.
	ext := make([]float64, len(crosses)-1)
	idx := make([]int, len(crosses)-1)
	for i := range ext {
		from := crosses[0].at
		if i > 0 {
			from = idx[i-1]
		}
		best := -1
		for k := from; k <= crosses[i+1].at; k++ {
			if math.IsNaN(gl[k]) {
				continue
			}
			if best < 0 || (crosses[i].max && gl[k] > gl[best]) || (!crosses[i].max && gl[k] < gl[best]) {
				best = k
			}
		}
		if best < 0 {
			return nan
		}
		ext[i], idx[i] = gl[best], best
	}
	_, sd := meanSD(gl)
	if !(sd > 0) {
		return nan
	}
	return [2]float64{mageUp(ext, sd), mageDown(ext, sd)}
}

// mageUp averages the nadir-to-peak excursions larger than sd.
func mageUp(m []float64, sd float64) float64 {
	var heights []float64
	N := len(m)
	j, prev := 0, 0
	for j < N {
		i, best := prev, math.Inf(-1)
		for k := prev; k <= j; k++ {
			if d := m[j] - m[k]; d > best {
				i, best = k, d
			}
		}
		if best < sd {
			j++
			continue
		}
		// Follow the rise to its peak until it falls back by more than sd (or the data ends).
		for k := j; k < N; k++ {
			if m[k] > m[j] {
				j = k
			}
			if m[k]-m[j] < -sd || k == N-1 {
				heights = append(heights, m[j]-m[i])
				prev, j = k, k
				break
			}
		}
	}
	return meanOrNaN(heights)
}

// mageDown averages the peak-to-nadir excursions larger than sd.
func mageDown(m []float64, sd float64) float64 {
	var heights []float64
	N := len(m)
	j, prev := 0, 0
	for j < N {
		i, best := prev, math.Inf(1)
		for k := prev; k <= j; k++ {
			if d := m[j] - m[k]; d < best {
				i, best = k, d
			}
		}
		if best > -sd {
			j++
			continue
		}
		for k := j; k < N; k++ {
			if m[k] < m[j] {
				j = k
			}
			if m[k]-m[j] > sd || k == N-1 {
				heights = append(heights, m[i]-m[j])
				// iglu restarts the left search at the nadir here, not at k.
				prev, j = j, k
				break
			}
		}
	}
	return meanOrNaN(heights)
}

func meanOrNaN(v []float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	m, _ := meanSD(v)
	return m
}

// rollMean is a right-aligned moving mean over w values that ignores missing ones; the first w
// positions take the first full window's value.
func rollMean(v []float64, w int) []float64 {
	out := make([]float64, len(v))
	for i := w - 1; i < len(v); i++ {
		var s float64
		n := 0
		for _, x := range v[i-w+1 : i+1] {
			if !math.IsNaN(x) {
				s += x
				n++
			}
		}
		out[i] = math.NaN()
		if n > 0 {
			out[i] = s / float64(n)
		}
	}
	for i := 0; i < w-1 && i < len(v); i++ {
		out[i] = out[w-1]
	}
	return out
}
