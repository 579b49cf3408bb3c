package ecg

import (
	"fmt"
	"math"
)

// Beat is one detected QRS complex. Samples are counted from the first sample fed to the
// detector. Onset and Offset are estimates from the band-passed signal (where its magnitude
// falls to a fifth of the R-wave's), good to a few tens of milliseconds.
type Beat struct {
	Sample     int64   `json:"sample"` // R-wave fiducial point
	Onset      int64   `json:"onset"`
	Offset     int64   `json:"offset"`
	RR         float64 `json:"rr"`                   // seconds since the previous beat; 0 for the first
	Amplitude  float64 `json:"amplitude"`            // band-passed R-wave amplitude, in input units
	SearchBack bool    `json:"searchBack,omitempty"` // found by search-back under the lower threshold
	Poor       bool    `json:"poor,omitempty"`       // in a second of poor signal quality (Monitor only)
}

// Detector parameters, in seconds unless stated. One set for every record and rate.
const (
	hpCut       = 5.0   // Hz, band-pass low edge: removes baseline wander and most T-wave energy
	lpCut       = 15.0  // Hz, band-pass high edge: removes muscle noise and mains
	diffSpan    = 0.008 // half-span of the derivative
	mwiSpan     = 0.150 // moving-window integration, about one wide QRS
	peakHold    = 0.200 // a feature peak is final once this long passes without a higher value
	refractory  = 0.200 // no two QRS closer than this
	tWaveWindow = 0.360 // a peak this soon after a QRS may be its T wave
	learnSpan   = 2.0   // initial learning period whose peaks are replayed, not dropped
	searchBackK = 1.5   // search back when no QRS for this many mean RR intervals
	minSampling = 125.0
	maxSampling = 1000.0
	maxInput    = 1e4 // mV; clamped beyond so that no filter overflows
	maxCands    = 256 // noise peaks kept for search-back
)

type peak struct {
	idx    int64   // feature index of the peak
	val    float64 // feature value
	slope  float64 // largest |derivative| under the integration window
	fid    int64   // fiducial in input samples
	amp    float64
	onset  int64
	offset int64
}

// Detector is a streaming QRS detector for one lead: a Butterworth band-pass, derivative,
// squaring and moving-window integration, then Pan–Tompkins-style adaptive signal and noise
// levels, search-back for missed beats and T-wave discrimination by slope.
type Detector struct {
	fs        float64
	hp, lp    biquad
	lp2       biquad
	bpDelay   int64 // group delay of the band-pass, samples
	h, w      int64 // derivative half-span and integration length, samples
	hold      int64
	refr      int64
	tWin      int64
	learnEnd  int64
	bp, d, sq ring
	mwi       ring
	sum       float64
	n         int64 // samples consumed
	held      float64

	// peak finder on the integrated feature
	curVal   float64
	curIdx   int64
	consumed bool

	learning []peak
	spk, npk float64
	thr      float64
	last     peak // last QRS
	haveLast bool
	rr       [8]int64
	nrr      int
	cands    []peak // noise peaks since the last QRS, for search-back
	out      []Beat
	lastFid  int64
}

// NewDetector returns a detector for a lead sampled at fs Hz (125 to 1000).
func NewDetector(fs float64) (*Detector, error) {
	if !(fs >= minSampling && fs <= maxSampling) {
		return nil, fmt.Errorf("ecg: sampling rate %v Hz outside %v–%v Hz", fs, minSampling, maxSampling)
	}
	d := &Detector{fs: fs, hp: highPass(hpCut, fs), lp: lowPass(lpCut, fs), lp2: lowPass(lpCut, fs)}
	d.bpDelay = int64(math.Round(groupDelay(fs, 10, d.hp, d.lp, d.lp2)))
	d.h = max(1, int64(math.Round(diffSpan*fs)))
	d.w = max(1, int64(math.Round(mwiSpan*fs)))
	d.hold = int64(math.Round(peakHold * fs))
	d.refr = int64(math.Round(refractory * fs))
	d.tWin = int64(math.Round(tWaveWindow * fs))
	d.learnEnd = int64(math.Round(learnSpan * fs))
	hist := int(d.w + 2*d.h + d.hold + d.bpDelay + int64(0.3*fs) + 8)
	d.bp, d.d, d.sq, d.mwi = newRing(hist), newRing(hist), newRing(hist), newRing(hist)
	d.lastFid = -1
	return d, nil
}

// SampleRate returns the rate the detector was made for.
func (d *Detector) SampleRate() float64 { return d.fs }

// Process consumes the next samples of the lead (any units; the detector adapts to amplitude)
// and returns the beats it has become sure of, in order. The returned slice is reused by the
// next call.
func (d *Detector) Process(x []float64) []Beat {
	d.out = d.out[:0]
	for _, v := range x {
		d.step(v)
	}
	return d.out
}

func (d *Detector) step(v float64) {
	n := d.n
	d.n++
	// A non-finite sample (a device's "invalid" marker) would poison the filters for good;
	// hold the last good value instead.
	if v-v != 0 {
		v = d.held
	}
	v = min(max(v, -maxInput), maxInput)
	d.held = v
	b := d.lp2.step(d.lp.step(d.hp.step(v)))
	d.bp.set(n, b)
	var dv float64
	if n >= 2*d.h {
		dv = b - d.bp.at(n-2*d.h)
	}
	d.d.set(n, dv)
	s := dv * dv
	d.sq.set(n, s)
	d.sum += s
	if n >= d.w {
		d.sum -= d.sq.at(n - d.w)
	}
	if n&(1<<16-1) == 0 && n >= d.w {
		// Re-add the window now and then so that rounding cannot build up over days.
		d.sum = 0
		for i := n - d.w + 1; i <= n; i++ {
			d.sum += d.sq.at(i)
		}
	}
	if d.sum < 0 { // rounding
		d.sum = 0
	}
	m := d.sum / float64(d.w)
	d.mwi.set(n, m)

	// Peak finder: a local maximum becomes a peak once the feature has fallen to half of it
	// or has not exceeded it for the hold time.
	switch {
	case m > d.curVal:
		d.curVal, d.curIdx, d.consumed = m, n, false
	case d.consumed:
		d.curVal = m
	case m < 0.5*d.curVal || n-d.curIdx >= d.hold:
		d.emit(d.makePeak(d.curIdx, d.curVal, n))
		d.consumed = true
		d.curVal = m
	}

	if d.haveLast && d.nrr > 0 && n >= d.learnEnd {
		if n-d.last.idx > int64(searchBackK*d.meanRR()) {
			d.searchBack()
		}
	}
}

func (d *Detector) makePeak(idx int64, val float64, now int64) peak {
	p := peak{idx: idx, val: val}
	lo := max(0, idx-d.w-2*d.h)
	for i := max(0, idx-d.w+1); i <= idx; i++ {
		if a := math.Abs(d.d.at(i)); a > p.slope {
			p.slope = a
		}
	}
	// The R wave is the largest band-passed excursion under the integration window, shifted by
	// the derivative's half-span.
	best, bi := -1.0, idx
	for i := lo; i <= idx-d.h; i++ {
		if a := math.Abs(d.bp.at(i)); a > best {
			best, bi = a, i
		}
	}
	p.amp = best
	p.fid = max(0, bi-d.bpDelay)
	on, off := bi, bi
	lim := 0.2 * best
	for on > max(0, bi-int64(0.12*d.fs)) && math.Abs(d.bp.at(on-1)) > lim {
		on--
	}
	for off < min(now, bi+int64(0.12*d.fs)) && math.Abs(d.bp.at(off+1)) > lim {
		off++
	}
	p.onset, p.offset = max(0, on-d.bpDelay), max(0, off-d.bpDelay)
	return p
}

func (d *Detector) emit(p peak) {
	if p.idx < d.learnEnd {
		d.learning = append(d.learning, p)
		return
	}
	if d.learning != nil {
		d.endLearning()
	}
	d.classify(p)
}

func (d *Detector) endLearning() {
	var mx float64
	for _, p := range d.learning {
		mx = max(mx, p.val)
	}
	d.spk, d.npk = 0.5*mx, 0
	d.setThr()
	l := d.learning
	d.learning = nil
	for _, p := range l {
		d.classify(p)
	}
}

func (d *Detector) setThr() { d.thr = d.npk + 0.25*(d.spk-d.npk) }

func (d *Detector) meanRR() float64 {
	var s int64
	for i := 0; i < d.nrr; i++ {
		s += d.rr[i]
	}
	return float64(s) / float64(d.nrr)
}

func (d *Detector) classify(p peak) {
	if d.learning == nil && d.spk == 0 && d.npk == 0 {
		// Learning ended with no peaks at all (a flat start): adopt this one as the scale.
		d.spk = 0.5 * p.val
		d.setThr()
	}
	if d.haveLast && p.idx-d.last.idx < d.refr {
		return
	}
	if p.val > d.thr && !d.isTWave(p) {
		d.accept(p, false)
		d.spk = 0.125*p.val + 0.875*d.spk
		d.setThr()
		return
	}
	d.npk = 0.125*p.val + 0.875*d.npk
	d.setThr()
	if len(d.cands) >= maxCands {
		// A long stretch without a QRS (asystole, lead-off): only recent peaks matter.
		d.cands = append(d.cands[:0], d.cands[maxCands/2:]...)
	}
	d.cands = append(d.cands, p)
}

func (d *Detector) isTWave(p peak) bool {
	return d.haveLast && p.idx-d.last.idx < d.tWin && p.slope < 0.35*d.last.slope
}

func (d *Detector) searchBack() {
	bi := -1
	for i, c := range d.cands {
		if c.idx-d.last.idx < d.refr || c.val <= 0.5*d.thr || d.isTWave(c) {
			continue
		}
		if bi < 0 || c.val > d.cands[bi].val {
			bi = i
		}
	}
	if bi < 0 {
		return
	}
	c, rest := d.cands[bi], d.cands[bi+1:]
	d.accept(c, true)
	d.spk = 0.25*c.val + 0.75*d.spk
	d.setThr()
	// accept emptied the list; the peaks after c stay candidates.
	d.cands = append(d.cands[:0], rest...)
}

func (d *Detector) accept(p peak, searchBack bool) {
	if p.fid <= d.lastFid {
		// Two feature peaks resolved to one R wave; it is already reported.
		return
	}
	var rr float64
	if d.haveLast {
		iv := p.idx - d.last.idx
		if d.nrr < len(d.rr) {
			d.rr[d.nrr] = iv
			d.nrr++
		} else {
			copy(d.rr[:], d.rr[1:])
			d.rr[len(d.rr)-1] = iv
		}
		rr = float64(p.fid-d.lastFid) / d.fs
	}

	d.last, d.haveLast = p, true
	d.lastFid = p.fid
	d.cands = d.cands[:0]
	d.out = append(d.out, Beat{Sample: p.fid, Onset: min(p.onset, p.fid), Offset: max(p.offset, p.fid), RR: rr, Amplitude: p.amp, SearchBack: searchBack})
}

// Flush releases the peak still being tracked (and ends learning on a stream shorter than the
// learning period), returning any beats that follow from it.
func (d *Detector) Flush() []Beat {
	d.out = d.out[:0]
	if !d.consumed && d.curVal > 0 {
		d.emit(d.makePeak(d.curIdx, d.curVal, d.n-1))
		d.consumed = true
	}
	if d.learning != nil {
		d.endLearning()
	}
	return d.out
}
