package ecg

// Match is the beat-by-beat agreement of detections with reference beats (ANSI/AAMI EC57).
type Match struct {
	TP int `json:"tp"`
	FP int `json:"fp"`
	FN int `json:"fn"`
}

// Se is the sensitivity TP/(TP+FN), 1 when there is nothing to find.
func (m Match) Se() float64 { return ratio(m.TP, m.TP+m.FN) }

// PPV is the positive predictivity TP/(TP+FP), 1 when nothing was detected.
func (m Match) PPV() float64 { return ratio(m.TP, m.TP+m.FP) }

// Add sums two matches.
func (m Match) Add(o Match) Match { return Match{m.TP + o.TP, m.FP + o.FP, m.FN + o.FN} }

func ratio(a, b int) float64 {
	if b == 0 {
		return 1
	}
	return float64(a) / float64(b)
}

// MatchBeats pairs reference and detected beat times (both sorted, in samples): each reference
// beat matches the nearest unmatched detection within ±window samples. Unmatched references are
// false negatives, unmatched detections false positives.
func MatchBeats(ref, det []int64, window int64) Match {
	var m Match
	used := make([]bool, len(det))
	j := 0
	for _, r := range ref {
		for j < len(det) && det[j] < r-window {
			j++
		}
		best := -1
		var bestDist int64
		for k := j; k < len(det) && det[k] <= r+window; k++ {
			if used[k] {
				continue
			}
			dist := det[k] - r
			if dist < 0 {
				dist = -dist
			}
			if best < 0 || dist < bestDist {
				best, bestDist = k, dist
			}
		}
		if best >= 0 {
			used[best] = true
			m.TP++
		} else {
			m.FN++
		}
	}
	m.FP = len(det) - m.TP
	return m
}

// Interval is a half-open span [Start, End) of samples.
type Interval struct {
	Start int64 `json:"start"`
	End   int64 `json:"end"`
}

// Overlap returns the total length of the intersection of two sets of disjoint, sorted
// intervals, and the total lengths of each set.
func Overlap(a, b []Interval) (both, lenA, lenB int64) {
	for _, x := range a {
		lenA += x.End - x.Start
	}
	for _, y := range b {
		lenB += y.End - y.Start
	}
	i, j := 0, 0
	for i < len(a) && j < len(b) {
		lo, hi := max(a[i].Start, b[j].Start), min(a[i].End, b[j].End)
		if hi > lo {
			both += hi - lo
		}
		if a[i].End < b[j].End {
			i++
		} else {
			j++
		}
	}
	return both, lenA, lenB
}
