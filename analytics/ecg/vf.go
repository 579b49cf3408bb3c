package ecg

import "math"

// vfFilter estimates whether a window of signal is ventricular flutter or fibrillation by the
// filter-leakage measure of Kuo and Dillman (1978): flutter is nearly sinusoidal, so adding the
// signal to itself delayed by half its mean period leaves little (low leakage), while a train
// of QRS complexes leaks a lot.
type vfFilter struct {
	hp, lp biquad
	buf    ring
	n      int64
	win    int64
	fs     float64
}

func newVFFilter(fs float64) vfFilter {
	win := int64(math.Round(vfWindow * fs))
	return vfFilter{hp: highPass(1, fs), lp: lowPass(30, fs), buf: newRing(int(win + int64(vfHistory*fs))), win: win, fs: fs}
}

const (
	vfWindow   = 4.0  // seconds of signal per decision
	vfHistory  = 5.0  // extra seconds kept for the P-wave analysis of delayed beats
	vfMinLevel = 0.05 // mV, mean absolute value below which a window is not VF
)

func (v *vfFilter) add(x []float64) {
	for _, s := range x {
		v.buf.set(v.n, v.lp.step(v.hp.step(s)))
		v.n++
	}
}

// leakage of the last window; 1 when there is not enough signal yet.
func (v *vfFilter) leakage() float64 {
	if v.n < v.win+1 {
		return 1
	}
	lo := v.n - v.win
	var sa, sd float64
	for i := lo; i < v.n; i++ {
		a := v.buf.at(i)
		sa += math.Abs(a)
		sd += math.Abs(a - v.buf.at(i-1))
	}
	if sd == 0 {
		return 1
	}
	half := int64(math.Round(math.Pi * sa / sd))
	// Flutter and fibrillation run at 2–10 Hz with some amplitude; slow wander or a flat line
	// is not VF however sinusoidal.
	f := v.fs / float64(2*half)
	if half < 1 || f < 2 || f > 10 || sa/float64(v.win) < vfMinLevel {
		return 1
	}
	var num, den float64
	for i := lo + half; i < v.n; i++ {
		a, b := v.buf.at(i), v.buf.at(i-half)
		num += math.Abs(a + b)
		den += math.Abs(a) + math.Abs(b)
	}
	if den == 0 {
		return 1
	}
	return num / den
}
