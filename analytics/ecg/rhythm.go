package ecg

import (
	"math"
	"sort"
)

// rhythm labels beats and opens and closes rhythm episodes. It sees only beat times.
type rhythm struct {
	cfg  Config
	fs   float64
	beat []int64   // recent beat samples, oldest first
	pc   []float64 // P-wave consistency of each beat in beat
	norm []bool    // whether each beat has the dominant QRS shape
	rr   []float64 // rr[i] is the interval ending at beat[i+1], seconds
	irr  []float64 // scratch
	nn   []float64 // scratch

	afOpen      bool
	afTentative bool
	afOnset     int64
	afBeats     int
	bradyOpen   bool
	bradyOnset  int64
	tachyOpen   bool
	tachyOnset  int64
}

func (r *rhythm) window() int { return 2*r.cfg.AFHalfWindow + 3 }

// irregularity of the centred window of intervals [lo, hi): the median over its
// normal-to-normal intervals of the smaller of the differences to the previous and to the
// one before, relative to their median. Intervals touching a beat of another QRS shape
// (ventricular ectopy, aberration) are left out, and taking the smaller difference makes
// the remaining premature beats and bigeminy look regular; AF changes all differences.
func (r *rhythm) irregularity(lo, hi int) float64 {
	r.nn = r.nn[:0]
	for j := lo - 2; j < hi; j++ {
		if r.norm[j] && r.norm[j+1] {
			r.nn = append(r.nn, r.rr[j])
		}
	}
	if len(r.nn) < minNN {
		return 0
	}
	r.irr = append(r.irr[:0], r.nn...)
	sort.Float64s(r.irr)
	m := r.irr[len(r.irr)/2]
	if m <= 0 {
		return 0
	}
	r.irr = r.irr[:0]
	for j := 2; j < len(r.nn); j++ {
		a := math.Abs(r.nn[j] - r.nn[j-1])
		b := math.Abs(r.nn[j] - r.nn[j-2])
		r.irr = append(r.irr, min(a, b)/m)
	}
	sort.Float64s(r.irr)
	return r.irr[len(r.irr)/2]
}

// minNN is the fewest normal-to-normal intervals a window needs for an AF decision.
const minNN = 10

// onBeat takes the next beat and appends opened and closed episodes to o.
func (r *rhythm) onBeat(s int64, pc float64, normal bool, o *Output) {
	r.beat = append(r.beat, s)
	r.pc = append(r.pc, pc)
	r.norm = append(r.norm, normal)
	if len(r.beat) > 1 {
		r.rr = append(r.rr, float64(s-r.beat[len(r.beat)-2])/r.fs)
	}
	if n := r.window() + 1; len(r.beat) > 4*n {
		// Keep the history short without reallocating on every beat.
		k := len(r.beat) - n
		r.beat = append(r.beat[:0], r.beat[k:]...)
		r.pc = append(r.pc[:0], r.pc[k:]...)
		r.norm = append(r.norm[:0], r.norm[k:]...)
		r.rr = append(r.rr[:0], r.rr[k:]...)
	}
	r.rate(s, o)
	r.af(o)
}

func (r *rhythm) rate(s int64, o *Output) {
	const nRate = 8
	if len(r.rr) < nRate {
		return
	}
	hr := HeartRate(r.rr[len(r.rr)-nRate:])
	start := r.beat[len(r.beat)-1-nRate]
	switch {
	case !r.bradyOpen && hr < r.cfg.BradyBPM:
		r.bradyOpen, r.bradyOnset = true, start
		o.Started = append(o.Started, Episode{Bradycardia, start, -1})
	case r.bradyOpen && hr >= r.cfg.BradyBPM+r.cfg.RateHysteresisBPM:
		r.bradyOpen = false
		o.Episodes = append(o.Episodes, Episode{Bradycardia, r.bradyOnset, s})
	}
	switch {
	case !r.tachyOpen && hr > r.cfg.TachyBPM:
		r.tachyOpen, r.tachyOnset = true, start
		o.Started = append(o.Started, Episode{Tachycardia, start, -1})
	case r.tachyOpen && hr <= r.cfg.TachyBPM-r.cfg.RateHysteresisBPM:
		r.tachyOpen = false
		o.Episodes = append(o.Episodes, Episode{Tachycardia, r.tachyOnset, s})
	}
}

// af decides for the beat at the centre of the last window, so decisions lag by
// AFHalfWindow beats and onsets and offsets are dated back to that beat.
func (r *rhythm) af(o *Output) {
	h := r.cfg.AFHalfWindow
	if len(r.rr) < 2*h+2 {
		return
	}
	hi := len(r.rr)
	lo := hi - 2*h
	c := lo + h // interval at the centre; it ends at beat c+1
	irr := r.irregularity(lo, hi)
	// Organised atrial activity (a consistent wave before the QRS: P waves, or flutter waves
	// locked to conduction) vetoes AF however irregular the RR intervals are.
	r.irr = r.irr[:0]
	for j := lo + 1; j <= hi; j++ {
		if r.norm[j] {
			r.irr = append(r.irr, r.pc[j])
		}
	}
	sort.Float64s(r.irr)
	if len(r.irr) > 0 && r.irr[len(r.irr)/4] > r.cfg.AFPWave { // lower quartile: most beats must show it
		irr = 0
	}
	at := r.beat[c] // start of the centre interval
	switch {
	case !r.afOpen && !r.afTentative && irr > r.cfg.AFOn:
		r.afTentative, r.afOnset, r.afBeats = true, at, 1
	case (r.afOpen || r.afTentative) && irr < r.cfg.AFOff:
		if r.afOpen {
			o.Episodes = append(o.Episodes, Episode{AF, r.afOnset, at})
		}
		r.afOpen, r.afTentative = false, false
	case r.afTentative:
		r.afBeats++
		if r.afBeats >= r.cfg.AFMinBeats {
			r.afTentative, r.afOpen = false, true
			o.Started = append(o.Started, Episode{AF, r.afOnset, -1})
		}
	}
}

// flush closes open episodes at sample end.
func (r *rhythm) flush(end int64, o *Output) {
	if r.afOpen {
		o.Episodes = append(o.Episodes, Episode{AF, r.afOnset, end})
		r.afOpen = false
	}
	r.afTentative = false
	if r.bradyOpen {
		o.Episodes = append(o.Episodes, Episode{Bradycardia, r.bradyOnset, end})
		r.bradyOpen = false
	}
	if r.tachyOpen {
		o.Episodes = append(o.Episodes, Episode{Tachycardia, r.tachyOnset, end})
		r.tachyOpen = false
	}
}
