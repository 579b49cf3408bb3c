package ecg

import (
	"cmp"
	"math"
	"slices"
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
	ord  []int     // scratch
	med  float64   // median interval of the last window irregularity looked at
	hit  []bool    // scratch

	afOpen      bool
	afTentative bool
	afOnset     int64
	afDecided   bool // an AF decision has been made
	afBeats     int
	settled     int64 // AF labels before this sample are final (Monitor.AFSettled)
	bradyOpen   bool
	bradyOnset  int64
	tachyOpen   bool
	tachyOnset  int64
}

func (r *rhythm) window() int { return 2*r.cfg.AFHalfWindow + 3 }

// irregularity of the centred window of intervals [lo, hi), with ok false when too few of
// them are normal-to-normal to judge (minNNShare): the median over its
// normal-to-normal intervals of the successive differences, relative to their median.
// Ectopic beats are left out twice over: intervals touching a beat of another QRS shape
// (ventricular ectopy, aberration), and the short-long pair around a premature beat of
// normal shape (atrial ectopy, or a ventricular one the shape test missed). In AF such pairs
// are only some of the intervals and what remains is still irregular; in sinus rhythm with
// ectopy what remains is regular.
func (r *rhythm) irregularity(lo, hi int) (irr float64, ok bool) {
	r.irr = append(r.irr[:0], r.rr[lo-2:hi]...)
	sort.Float64s(r.irr)
	ref := r.irr[len(r.irr)/2]
	r.med = ref
	short, long := prematureShort*ref, pauseLong*ref
	r.nn = r.nn[:0]
	for j := lo - 2; j < hi; j++ {
		switch {
		case !r.norm[j] || !r.norm[j+1]:
		case r.rr[j] < short && j+1 < len(r.rr) && r.rr[j+1] > long: // ends at a premature beat
		case j > 0 && r.rr[j-1] < short && r.rr[j] > long: // the pause after one
		default:
			r.nn = append(r.nn, r.rr[j])
		}
	}
	if float64(len(r.nn)) < minNNShare*float64(hi-lo+2) || len(r.nn) < 2 {
		return 0, false
	}
	r.irr = append(r.irr[:0], r.nn...)
	sort.Float64s(r.irr)
	m := r.irr[len(r.irr)/2]
	if m <= 0 {
		return 0, false
	}
	r.irr = r.irr[:0]
	for j := 1; j < len(r.nn); j++ {
		r.irr = append(r.irr, math.Abs(r.nn[j]-r.nn[j-1])/m)
	}
	sort.Float64s(r.irr)
	return r.irr[len(r.irr)/2], true
}

// A beat is premature when the interval ending at it is shorter than prematureShort and the
// next one longer than pauseLong times the window's median interval (a short-long pair).
const (
	prematureShort = 0.85
	pauseLong      = 1.1
)

// minNNShare is the share of a window's intervals that must be normal-to-normal for an AF
// decision. Below it the window is mostly ectopic, paced or of a changed QRS shape, and what
// is left says little about the atria: the previous decision is held rather than read as
// regular rhythm, which used to close AF episodes around runs of ectopy (203) and, the other
// way round, let a handful of leftover intervals open AF in ectopy-laden sinus rhythm (200).
const minNNShare = 0.6

// A window in which at least patternedShare of the runs of three successive intervals recur
// elsewhere in it, each interval within patternTol of the window's median, is patterned
// (counted as regular): sinus rhythm with recurring ectopy, blocked beats or group beating,
// ventricular bigeminy, flutter with a repeating conduction sequence. AF's intervals are independent of each other and a run of
// three rarely recurs (an entropy argument, as sample entropy with m = 3; Lake and Moorman
// 2011 use m = 1 on 16 beats). 3 % is about the beat-to-beat variation of sinus rhythm; the
// 0.3 share was chosen among 0.2–0.4 on MIT-BIH (docs/VALIDATION.md).
const (
	patternTol     = 0.03
	patternedShare = 0.3
)

// patterned returns the share of the runs of three successive intervals in [lo, hi), whose
// median is med, that recur elsewhere in it. The runs are visited in order of their first interval, so each
// is compared only with the few whose first interval is within the tolerance.
func (r *rhythm) patterned(lo, hi int, med float64) float64 {
	rr := r.rr[lo:hi]
	n := len(rr) - 2
	if n < 2 {
		return 0
	}
	d := patternTol * med
	r.ord = r.ord[:0]
	for i := range n {
		r.ord = append(r.ord, i)
	}
	slices.SortFunc(r.ord, func(a, b int) int { return cmp.Compare(rr[a], rr[b]) })
	r.hit = append(r.hit[:0], make([]bool, n)...)
	for p, i := range r.ord {
		for _, j := range r.ord[p+1:] {
			if rr[j]-rr[i] > d {
				break
			}
			if math.Abs(rr[i+1]-rr[j+1]) <= d && math.Abs(rr[i+2]-rr[j+2]) <= d {
				r.hit[i], r.hit[j] = true, true
			}
		}
	}
	k := 0
	for _, h := range r.hit {
		if h {
			k++
		}
	}
	return float64(k) / float64(n)
}

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
	irr, ok := r.irregularity(lo, hi)
	switch {
	case (!ok || irr >= r.cfg.AFOff) && r.patterned(lo-2, hi, r.med) >= patternedShare:
		// Repeating RR patterns are organised rhythm, however irregular each step looks, and
		// even when ectopy leaves too few normal intervals (persistent bigeminy). Below AFOff
		// the window counts as regular anyway, so the test is skipped there.
		irr = 0
	case !ok:
		// Hold the last decision. Nor does this last for ever in one rhythm: a new QRS shape
		// that persists becomes the template within 8 beats and its intervals count again,
		// and a persistent ectopic pattern is caught above.
		if r.afDecided {
			r.settled = r.beat[c] // the held label now reaches the centre
		}
		return
	}
	// Organised atrial activity (a consistent wave before the QRS: P waves, or flutter waves
	// locked to conduction) vetoes AF however irregular the RR intervals are.
	r.irr = r.irr[:0]
	for j := lo + 1; j <= hi; j++ {
		if r.norm[j] {
			r.irr = append(r.irr, r.pc[j])
		}
	}
	sort.Float64s(r.irr)
	if len(r.irr) > 0 && r.irr[len(r.irr)*2/5] > r.cfg.AFPWave { // 40th percentile: most beats must show it
		irr = 0
	}
	at := r.beat[c] // start of the centre interval
	first := !r.afDecided
	r.afDecided = true
	r.settled = at
	switch {
	case !r.afOpen && !r.afTentative && irr > r.cfg.AFOn:
		r.afTentative, r.afOnset, r.afBeats = true, at, 1
		if first {
			// The stream began in AF: the beats before the first centre have no earlier
			// window, so they take its label.
			r.afOnset = r.beat[0]
		}
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

// afSettled is the sample before which the AF labels reported so far are final: the next
// decision labels from its own centre on, and a tentative episode, once confirmed, is dated
// back to its onset.
func (r *rhythm) afSettled() int64 {
	if r.afTentative {
		return min(r.settled, r.afOnset)
	}
	return r.settled
}

// flush closes open episodes at sample end.
func (r *rhythm) flush(end int64, o *Output) {
	if r.afOpen {
		o.Episodes = append(o.Episodes, Episode{AF, r.afOnset, end})
		r.afOpen = false
	}
	r.afTentative = false
	r.settled = end
	if r.bradyOpen {
		o.Episodes = append(o.Episodes, Episode{Bradycardia, r.bradyOnset, end})
		r.bradyOpen = false
	}
	if r.tachyOpen {
		o.Episodes = append(o.Episodes, Episode{Tachycardia, r.tachyOnset, end})
		r.tachyOpen = false
	}
}
