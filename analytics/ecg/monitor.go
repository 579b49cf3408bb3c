package ecg

import (
	"fmt"
	"math"
)

// Kind names a rhythm or signal-quality episode.
type Kind int

// Episode kinds.
const (
	AF Kind = iota + 1
	Bradycardia
	Tachycardia
	Pause
	Asystole
	LeadOff
	Saturation
	Noise
	// VF is ventricular flutter or fibrillation; beats are not reported inside it.
	VF
)

var kindNames = [...]string{AF: "af", Bradycardia: "bradycardia", Tachycardia: "tachycardia", Pause: "pause",
	Asystole: "asystole", LeadOff: "lead-off", Saturation: "saturation", Noise: "noise", VF: "vf"}

func (k Kind) String() string {
	if k > 0 && int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// MarshalText makes kinds readable in JSON.
func (k Kind) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// Episode is a span of a rhythm or a signal-quality condition, in samples. Offset is -1 while
// the episode is still open.
type Episode struct {
	Kind   Kind  `json:"kind"`
	Onset  int64 `json:"onset"`
	Offset int64 `json:"offset"`
}

// Output is what one call to Monitor.Process produced.
type Output struct {
	Beats   []Beat    `json:"beats,omitempty"`
	Started []Episode `json:"started,omitempty"` // episodes that opened (Offset -1)
	// Episodes that closed; an episode may open and close within one call.
	Episodes []Episode `json:"episodes,omitempty"`
	// Seconds are the one-second blocks whose beats have been released, with their labels.
	Seconds []Second `json:"seconds,omitempty"`
}

func (o *Output) reset() {
	o.Beats, o.Started, o.Episodes, o.Seconds = o.Beats[:0], o.Started[:0], o.Episodes[:0], o.Seconds[:0]
}

// Second is the label of one second of signal, [Start, End) in samples.
type Second struct {
	Start int64 `json:"start"`
	End   int64 `json:"end"`
	VF    bool  `json:"vf,omitempty"`   // inside ventricular flutter or fibrillation: beats withheld
	Poor  bool  `json:"poor,omitempty"` // lead-off, saturation or noise
}

// Config holds the monitor's parameters. DefaultConfig gives the one set validated in
// docs/VALIDATION.md; nothing in it depends on the record.
type Config struct {
	SampleRate float64 // Hz, 125 to 1000

	BradyBPM          float64 // bradycardia below this rate (median of 8 RR)
	TachyBPM          float64 // tachycardia above this rate
	RateHysteresisBPM float64 // an episode closes this far back inside the limit
	PauseSeconds      float64 // an RR interval at least this long is a pause
	AsystoleSeconds   float64 // no beat for this long is asystole

	AFHalfWindow int     // beats each side of the beat being labelled
	AFOn, AFOff  float64 // irregularity thresholds with hysteresis
	AFMinBeats   int     // an AF episode is reported once it has lasted this many beats
	AFPWave      float64 // no AF while the 40th percentile of P-wave consistency exceeds this

	VFLeakage    float64 // VF when the filter leakage of 4 s of signal falls below this
	VFLeakageOff float64 // and VF lasts while it stays below this

	FlatMV     float64 // lead-off: peak-to-peak below this in a second (input in mV)
	ClipShare  float64 // saturation: this share of a second's samples sit at its extreme values
	NoiseRatio float64 // noise: mean QRS-band energy over a second above this share of the QRS level
}

// DefaultConfig returns the validated parameters for a lead sampled at fs Hz.
func DefaultConfig(fs float64) Config {
	return Config{
		SampleRate: fs,
		BradyBPM:   50, TachyBPM: 120, RateHysteresisBPM: 5,
		PauseSeconds: 2.0, AsystoleSeconds: 4.0,
		AFHalfWindow: 20, AFOn: 0.07, AFOff: 0.05, AFMinBeats: 16, AFPWave: 0.5,
		VFLeakage: 0.5, VFLeakageOff: 0.65,
		FlatMV: 0.05, ClipShare: 0.1, NoiseRatio: 0.5,
	}
}

// Monitor is the per-lead state machine: QRS detection, rhythm, VF and signal quality. Feed
// it the lead in millivolts, in chunks of any size. Beats are released 2–3 s after they occur,
// once the VF analysis of the seconds around them is done; asystole is raised without that
// delay.
type Monitor struct {
	cfg Config
	det *Detector
	rh  rhythm
	q   quality
	n   int64 // samples consumed

	vf      vfFilter
	blocks  int64  // completed one-second blocks
	recent  []bool // poor-quality flags of the completed blocks not yet labelled
	lastVF  bool   // VF label of the last window
	vfOpen  bool
	vfOnset int64
	pending []Beat // detected beats waiting for the VF label of their second
	lastDet int64  // sample of the last detected beat, VF or not, for the asystole clock
	haveDet bool

	clean []float64 // chunk with non-finite samples replaced
	held  float64
	qtmpl []float64 // running template of the QRS, unit norm per beat
	qmiss int       // consecutive beats unlike qtmpl
	ptmpl []float64 // running template of the P-wave window, unit norm per beat
	pwin  []float64
	qwin  []float64

	lastPoor  int64 // end of the last second of poor signal
	lastBeat  int64
	haveBeat  bool
	asysOpen  bool
	asysOnset int64
	asysAfter int64 // samples without a beat before asystole is declared
	out       Output
}

// NewMonitor checks cfg and returns a monitor.
func NewMonitor(cfg Config) (*Monitor, error) {
	det, err := NewDetector(cfg.SampleRate)
	if err != nil {
		return nil, err
	}
	if cfg.AFHalfWindow < 2 || cfg.AFMinBeats < 1 || !(cfg.AFOff <= cfg.AFOn) || !(cfg.VFLeakageOff >= cfg.VFLeakage) || !(cfg.PauseSeconds > 0) ||
		!(cfg.AsystoleSeconds >= cfg.PauseSeconds) || !(cfg.BradyBPM < cfg.TachyBPM) {
		return nil, fmt.Errorf("ecg: inconsistent monitor configuration %+v", cfg)
	}
	m := &Monitor{cfg: cfg, det: det}
	m.rh = rhythm{cfg: cfg, fs: cfg.SampleRate}
	m.q = newQuality(cfg)
	m.vf = newVFFilter(cfg.SampleRate)
	// Beats reach us up to the detector's latency late; do not call asystole before they could.
	m.asysAfter = int64((cfg.AsystoleSeconds + 0.6) * cfg.SampleRate)
	return m, nil
}

// Process consumes the next samples (mV) and returns what became known. The returned slices
// are reused by the next call.
func (m *Monitor) Process(x []float64) Output {
	m.out.reset()
	for len(x) > 0 {
		// Step in blocks so that the asystole clock and quality are checked often enough.
		k := min(len(x), m.q.blockLen-m.q.fill)
		blk := m.sanitize(x[:k])
		x = x[k:]
		for _, b := range m.det.Process(blk) {
			m.pending = append(m.pending, b)
			m.lastDet, m.haveDet = b.Sample, true
		}
		m.vf.add(blk)
		full := m.q.fill+k == m.q.blockLen
		m.q.add(blk, m.det, m.n, &m.out)
		m.n += int64(k)
		if full {
			m.blockDone()
		}
		if m.haveDet && !m.asysOpen && m.n-m.lastDet > m.asysAfter && m.lastPoor <= m.lastDet {
			m.asysOpen, m.asysOnset = true, m.lastDet
			m.out.Started = append(m.out.Started, Episode{Asystole, m.lastDet, -1})
		}
	}
	return m.out
}

// blockDone labels the second two blocks back from the VF window that now surrounds it, and
// releases the beats of that second. Beats therefore reach the caller 2–3 s after they occur.
func (m *Monitor) blockDone() {
	leak := m.vf.leakage()
	// Hysteresis: once in VF, stay while the leakage is a little higher.
	vf := leak < m.cfg.VFLeakage || m.lastVF && leak < m.cfg.VFLeakageOff
	m.lastVF = vf
	m.recent = append(m.recent, m.q.bad())
	if m.q.bad() {
		m.lastPoor = m.n
	}
	m.blocks++
	if m.blocks < 3 {
		return
	}
	m.label(m.blocks-3, vf, m.recent[0])
	m.recent = append(m.recent[:0], m.recent[1:]...)
}

func (m *Monitor) label(b int64, vf, poor bool) {
	bl := int64(m.q.blockLen)
	start, end := b*bl, min((b+1)*bl, m.n)
	m.out.Seconds = append(m.out.Seconds, Second{Start: start, End: end, VF: vf, Poor: poor})
	switch {
	case vf && !m.vfOpen:
		m.vfOpen, m.vfOnset = true, start
		m.out.Started = append(m.out.Started, Episode{VF, start, -1})
	case !vf && m.vfOpen:
		m.vfOpen = false
		m.out.Episodes = append(m.out.Episodes, Episode{VF, m.vfOnset, start})
	}
	k := 0
	for k < len(m.pending) && m.pending[k].Sample < end {
		if !vf {
			bt := m.pending[k]
			bt.Poor = poor
			m.onBeat(bt)
		}
		k++
	}
	m.pending = append(m.pending[:0], m.pending[k:]...)
}

func (m *Monitor) onBeat(b Beat) {
	m.out.Beats = append(m.out.Beats, b)
	if m.haveBeat {
		gap := float64(b.Sample-m.lastBeat) / m.cfg.SampleRate
		switch {
		case m.asysOpen:
			m.asysOpen = false
			m.out.Episodes = append(m.out.Episodes, Episode{Asystole, m.asysOnset, b.Sample})
		case m.lastPoor > m.lastBeat:
			// The signal was poor during the gap: a gap in the signal, not in the rhythm.
		case gap >= m.cfg.AsystoleSeconds:
			m.out.Episodes = append(m.out.Episodes, Episode{Asystole, m.lastBeat, b.Sample})
		case gap >= m.cfg.PauseSeconds:
			m.out.Episodes = append(m.out.Episodes, Episode{Pause, m.lastBeat, b.Sample})
		}
	}
	m.lastBeat, m.haveBeat = b.Sample, true
	m.rh.onBeat(b.Sample, m.pwave(b.Sample), m.dominant(b.Sample), &m.out)
}

// AFSettled returns the sample before which the AF episodes reported so far are final: later
// output opens or closes AF episodes only at or after it. AF is decided AFHalfWindow beats
// late, and a tentative episode is dated back to its onset once it has lasted AFMinBeats
// beats, so this trails the newest beat by some 20 to 40 beats; after Flush it is the end.
// Callers summarising a stretch of signal (AF burden) wait until it has passed the stretch.
func (m *Monitor) AFSettled() int64 { return m.rh.afSettled() }

// Samples is how many samples the monitor has been given.
func (m *Monitor) Samples() int64 { return m.n }

// Flush ends the stream: beats still pending in the detector are released and open episodes
// are closed at the last sample.
func (m *Monitor) Flush() Output {
	m.out.reset()
	m.pending = append(m.pending, m.det.Flush()...)
	// Seconds not yet labelled take the VF label of the last window.
	b := m.blocks - int64(len(m.recent))
	for _, poor := range m.recent {
		m.label(b, m.lastVF, poor)
		b++
	}
	m.recent = m.recent[:0]
	if b*int64(m.q.blockLen) < m.n || len(m.pending) > 0 {
		m.label(b, m.lastVF, false) // the partial last second
	}
	m.pending = m.pending[:0] // nothing can lie beyond the last sample
	if m.vfOpen {
		m.out.Episodes = append(m.out.Episodes, Episode{VF, m.vfOnset, m.n})
		m.vfOpen = false
	}
	if m.asysOpen {
		m.out.Episodes = append(m.out.Episodes, Episode{Asystole, m.asysOnset, m.n})
		m.asysOpen = false
	}
	m.rh.flush(m.n, &m.out)
	m.q.flush(m.n, &m.out)
	return m.out
}

// pwave returns how closely the signal 250–100 ms before the beat matches the running average
// of the same window over past beats (correlation, −1 to 1), and updates that average. P waves
// repeat beat after beat; fibrillatory waves do not, and average out.
func (m *Monitor) pwave(s int64) float64 {
	fs := m.cfg.SampleRate
	var ok bool
	m.pwin, ok = m.window(m.pwin, s-int64(0.25*fs), s-int64(0.10*fs))
	if !ok {
		return 0
	}
	if len(m.ptmpl) != len(m.pwin) {
		m.ptmpl = append(m.ptmpl[:0], m.pwin...)
		return 0
	}
	return matchTemplate(&m.ptmpl, m.pwin, func(float64) bool { return true })
}

// sanitize replaces non-finite samples (a device's "invalid" marker) by the last good value,
// so that no filter is poisoned by a NaN.
func (m *Monitor) sanitize(x []float64) []float64 {
	m.clean = append(m.clean[:0], x...)
	for i, v := range m.clean {
		if v-v != 0 {
			m.clean[i] = m.held
		} else {
			m.clean[i] = min(max(v, -maxInput), maxInput)
			m.held = m.clean[i]
		}
	}
	return m.clean
}

// window copies the filtered signal [lo, hi) into dst with the straight line through its ends
// removed, scaled to unit norm; ok is false when it is not available or flat.
func (m *Monitor) window(dst []float64, lo, hi int64) ([]float64, bool) {
	dst = dst[:0]
	if lo < 0 || hi <= lo+1 || m.vf.n-lo >= int64(len(m.vf.buf.buf)) || hi > m.vf.n {
		return dst, false
	}
	for i := lo; i < hi; i++ {
		dst = append(dst, m.vf.buf.at(i))
	}
	// Remove the straight line through the window's ends so that baseline slope and the
	// edge of neighbouring waves do not pass for a repeating wave.
	k := len(dst) - 1
	a, b := dst[0], dst[k]
	var nx float64
	for i := range dst {
		dst[i] -= a + (b-a)*float64(i)/float64(k)
		nx += dst[i] * dst[i]
	}
	if nx == 0 {
		return dst, false
	}
	nx = math.Sqrt(nx)
	for i := range dst {
		dst[i] /= nx
	}
	return dst, true
}

// matchTemplate returns the correlation of the unit-norm x with the running template t and
// updates t with x when keep says so.
func matchTemplate(t *[]float64, x []float64, keep func(c float64) bool) float64 {
	if len(*t) != len(x) {
		*t = append((*t)[:0], x...)
		return 1
	}
	var dot, nt float64
	for i, v := range x {
		dot += v * (*t)[i]
		nt += (*t)[i] * (*t)[i]
	}
	c := 0.0
	if nt > 0 {
		c = dot / math.Sqrt(nt)
	}
	if keep(c) {
		for i, v := range x {
			(*t)[i] = 0.9*(*t)[i] + 0.1*v
		}
	}
	return c
}

// dominant reports whether the beat's QRS (±60 ms) has the patient's usual shape. The
// template follows the beats that match it and is replaced when many in a row do not (a new
// conduction pattern).
func (m *Monitor) dominant(s int64) bool {
	w := int64(0.06 * m.cfg.SampleRate)
	var ok bool
	m.qwin, ok = m.window(m.qwin, s-w, s+w)
	if !ok {
		return true
	}
	c := matchTemplate(&m.qtmpl, m.qwin, func(c float64) bool { return c >= qrsMatch })
	if c >= qrsMatch {
		m.qmiss = 0
		return true
	}
	m.qmiss++
	if m.qmiss >= 8 {
		m.qtmpl = append(m.qtmpl[:0], m.qwin...)
		m.qmiss = 0
	}
	return false
}

// qrsMatch is the correlation with the QRS template above which a beat has the usual shape.
const qrsMatch = 0.9
