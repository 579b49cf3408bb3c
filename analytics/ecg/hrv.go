package ecg

import (
	"math"
	"sort"
)

// HeartRate returns beats per minute from RR intervals in seconds, as 60 over their median
// (robust to one missed or extra beat), or 0 with no interval.
func HeartRate(rr []float64) float64 {
	m := median(rr)
	if m <= 0 {
		return 0
	}
	return 60 / m
}

// SDNN is the standard deviation of RR intervals (seconds), the sample form (n−1).
func SDNN(rr []float64) float64 {
	if len(rr) < 2 {
		return 0
	}
	var s float64
	for _, v := range rr {
		s += v
	}
	mean := s / float64(len(rr))
	var q float64
	for _, v := range rr {
		q += (v - mean) * (v - mean)
	}
	return math.Sqrt(q / float64(len(rr)-1))
}

// RMSSD is the root mean square of successive RR differences (seconds).
func RMSSD(rr []float64) float64 {
	if len(rr) < 2 {
		return 0
	}
	var q float64
	for i := 1; i < len(rr); i++ {
		d := rr[i] - rr[i-1]
		q += d * d
	}
	return math.Sqrt(q / float64(len(rr)-1))
}

// NormalRR keeps the intervals fit for HRV: those within 20 % of the median of their
// neighbours (the usual filter against ectopic beats and detection errors).
func NormalRR(rr []float64) []float64 {
	out := make([]float64, 0, len(rr))
	const half = 5
	for i, v := range rr {
		m := median(rr[max(0, i-half):min(len(rr), i+half+1)])
		if math.Abs(v-m) <= 0.2*m {
			out = append(out, v)
		}
	}
	return out
}

func median(x []float64) float64 {
	if len(x) == 0 {
		return 0
	}
	s := append([]float64(nil), x...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
