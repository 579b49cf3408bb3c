package ecg

import (
	"math/rand/v2"
	"sort"
	"testing"
)

// runRhythm drives the rhythm state machine with beat times (s) and QRS-shape flags, as the
// monitor does after detection and shape matching, and returns the AF episodes that closed
// and the number that opened.
func runRhythm(fs float64, times []float64, normal []bool) (eps []Episode, opened int) {
	r := rhythm{cfg: DefaultConfig(fs), fs: fs}
	var o Output
	for i, tt := range times {
		r.onBeat(int64(tt*fs), 0, normal[i], &o)
	}
	r.flush(int64(times[len(times)-1]*fs)+1, &o)
	for _, e := range o.Episodes {
		if e.Kind == AF {
			eps = append(eps, e)
		}
	}
	return eps, count(o.Started, AF)
}

// A run of ectopic beats inside AF leaves too few normal-to-normal intervals to judge the
// rhythm; the AF episode must carry on through it rather than be closed as if the rhythm had
// turned regular (and reopened late, 16 beats after the run: the sensitivity lost in 203).
func TestAFHeldThroughEctopicRun(t *testing.T) {
	const fs = 360
	rng := rand.New(rand.NewPCG(21, 22))
	var times []float64
	var normal []bool
	tt := 1.0
	add := func(n int, ectopicEvery int) {
		for i := range n {
			times = append(times, tt)
			normal = append(normal, ectopicEvery == 0 || i%ectopicEvery != 0)
			tt += 0.45 + 0.5*rng.Float64() // AF: irregular throughout
		}
	}
	add(150, 0) // AF
	add(40, 2)  // AF with ventricular bigeminy: every interval touches an ectopic beat
	add(150, 0) // AF
	eps, opened := runRhythm(fs, times, normal)
	if len(eps) != 1 || opened != 1 {
		t.Fatalf("AF episodes %+v (%d opened), want one through the ectopic run", eps, opened)
	}
	if eps[0].Onset > int64(times[0]*fs) || eps[0].Offset < int64(times[len(times)-1]*fs) {
		t.Fatalf("AF episode %+v, want it to cover %.0f–%.0f s", eps[0], times[0], times[len(times)-1])
	}
}

// The same run inside regular sinus rhythm must not open AF: the few normal-to-normal
// intervals left between ectopic beats are not enough to call the rhythm irregular.
func TestEctopicRunInSinusIsNotAF(t *testing.T) {
	const fs = 250
	rng := rand.New(rand.NewPCG(23, 24))
	var times []float64
	var normal []bool
	tt := 1.0
	for i := range 400 {
		ectopic := i >= 150 && i < 250 && rng.Float64() < 0.6
		times = append(times, tt)
		normal = append(normal, !ectopic)
		if ectopic {
			tt += 0.4 + 0.6*rng.Float64() // ectopic beats come at any time
		} else {
			tt += 0.8
		}
	}
	if eps, opened := runRhythm(fs, times, normal); len(eps) != 0 || opened != 0 {
		t.Fatalf("AF in sinus rhythm with an ectopic run: %+v", eps)
	}
}

// Group beating (4:3 Wenckebach: intervals shortening, then a pause) is irregular beat to beat
// and, with the P waves not visible to the veto, used to pass for AF. Its three-interval
// pattern recurs, which AF's does not.
func TestGroupBeatingIsNotAF(t *testing.T) {
	const fs = 360
	rng := rand.New(rand.NewPCG(25, 26))
	var times []float64
	var normal []bool
	tt := 1.0
	for i := range 300 {
		times = append(times, tt)
		normal = append(normal, true)
		tt += [3]float64{0.90, 0.84, 1.55}[i%3] + 0.01*(rng.Float64()-0.5)
	}
	if eps, opened := runRhythm(fs, times, normal); len(eps) != 0 || opened != 0 {
		t.Fatalf("AF on group beating: %+v", eps)
	}
}

// The pattern test must not take real AF for a pattern: independent intervals of the usual
// spread do not recur in runs of three.
func TestAFIsNotPatterned(t *testing.T) {
	const fs = 360
	rng := rand.New(rand.NewPCG(27, 28))
	r := rhythm{cfg: DefaultConfig(fs), fs: fs}
	for range 2000 {
		r.rr = append(r.rr, 0.45+0.5*rng.Float64())
	}
	n := 2*r.cfg.AFHalfWindow + 2
	worst := 0.0
	for lo := 0; lo+n <= len(r.rr); lo++ {
		w := append([]float64(nil), r.rr[lo:lo+n]...)
		sort.Float64s(w)
		worst = max(worst, r.patterned(lo, lo+n, w[n/2]))
	}
	if worst >= patternedShare {
		t.Fatalf("an AF window is %.2f patterned, at or above the %.2f limit", worst, patternedShare)
	}
}

// AF that gives way to atrial bigeminy (premature beats of normal shape, P waves not seen by
// the veto) must close: the alternation is irregular beat to beat but recurs.
func TestAFEndsIntoBigeminy(t *testing.T) {
	const fs = 250
	rng := rand.New(rand.NewPCG(29, 30))
	var times []float64
	var normal []bool
	tt := 1.0
	for range 150 {
		times = append(times, tt)
		normal = append(normal, true)
		tt += 0.45 + 0.5*rng.Float64()
	}
	end := tt
	for i := range 200 {
		times = append(times, tt)
		normal = append(normal, true)
		tt += [2]float64{0.55, 1.05}[i%2] + 0.01*(rng.Float64()-0.5)
	}
	eps, opened := runRhythm(fs, times, normal)
	if len(eps) != 1 || opened != 1 {
		t.Fatalf("AF episodes %+v (%d opened), want one", eps, opened)
	}
	// The window is ±20 beats, so the offset may lag or lead the change by about that.
	if off := float64(eps[0].Offset) / fs; off < end-20 || off > end+25 {
		t.Fatalf("AF ended at %.1f s, the rhythm changed at %.1f s", off, end)
	}
}
