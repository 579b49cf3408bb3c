package sensing

import (
	"math"
	"math/rand/v2"
)

// track is a quantity's scripted target: a piecewise-linear function of time.
type track struct {
	t, v []float64 // points; a step is two points at the same time
	i    int       // cursor: time only moves forward, so lookups are amortised O(1)
}

func (tr *track) at(t float64) float64 {
	for tr.i+1 < len(tr.t) && tr.t[tr.i+1] <= t {
		tr.i++
	}
	if tr.i+1 < len(tr.t) {
		t0, t1 := tr.t[tr.i], tr.t[tr.i+1]
		if t1 > t0 && t > t0 {
			return tr.v[tr.i] + (tr.v[tr.i+1]-tr.v[tr.i])*(t-t0)/(t1-t0)
		}
	}
	return tr.v[tr.i]
}

// evalAt is a cursor-free lookup, used while building tracks.
func (tr *track) evalAt(t float64) float64 {
	c := track{t: tr.t, v: tr.v}
	return c.at(t)
}

// set starts a ramp at time t to value v over dur seconds, cutting short any ramp in progress.
func (tr *track) set(t, dur, v float64) {
	v0 := tr.evalAt(t)
	n := len(tr.t)
	for n > 0 && tr.t[n-1] > t {
		n--
	}
	tr.t, tr.v = tr.t[:n], tr.v[:n]
	tr.t = append(tr.t, t, t+dur)
	tr.v = append(tr.v, v0, v)
}

// ou is an Ornstein–Uhlenbeck process: physiological wandering around a target, with
// a correlation time, advanced on the 1 s physiology tick.
type ou struct {
	x, a, s float64 // value, decay per tick, innovation scale per tick
}

func newOU(sigma, tau float64) ou {
	a := math.Exp(-1 / tau)
	return ou{a: a, s: sigma * math.Sqrt(1-a*a)}
}

func (o *ou) step(r *rand.Rand) float64 {
	o.x = o.x*o.a + o.s*r.NormFloat64()
	return o.x
}

// Quantities the 1 s tick tracks, by index.
const (
	qHR = iota
	qRR
	qSpO2
	qTemp
	qSBP
	qDBP
	qWeight
	qBasal
	qPVC
	qPauses
	qHRV
	qNoise
	qWander
	qMotion
	qSteps
	qPerfusion
	nQuant
)

// quantIndex maps quantity names to tick indices.
func quantIndex() map[string]int {
	return map[string]int{
		"hr": qHR, "rr": qRR, "spo2": qSpO2, "temp": qTemp, "sbp": qSBP, "dbp": qDBP, "weight": qWeight,
		"basal": qBasal, "pvc": qPVC, "pauses": qPauses, "hrv": qHRV, "noise": qNoise, "wander": qWander,
		"motion": qMotion, "steps": qSteps, "perfusion": qPerfusion,
	}
}

// physio is the patient's state on the 1 s tick: scripted targets plus natural variability.
type physio struct {
	t      float64 // seconds since start of the last tick
	tracks [nQuant]track
	cur    [nQuant]float64 // values at t (targets plus wandering for the vital signs)
	noise  [qWeight + 1]ou
	r      *rand.Rand

	rhythmT []float64 // rhythm changes
	rhythmV []bool    // true: AF
	ri      int
	af      bool

	respPhase float64 // radians at t
	respW     float64 // radians per second at t

	gl *glucose
}

func newPhysio(sc *Scenario, r *rand.Rand) *physio {
	p := &physio{r: r}
	index := quantIndex()
	for name, q := range index {
		p.tracks[q] = track{t: []float64{0}, v: []float64{sc.Baseline[name]}}
	}
	p.rhythmT, p.rhythmV = []float64{0}, []bool{false}
	for _, ev := range sc.Timeline {
		at := ev.At.Seconds()
		for name, v := range ev.Set {
			if q, ok := index[name]; ok {
				p.tracks[q].set(at, ev.Over.Seconds(), v)
			}
		}
		if ev.Rhythm != "" {
			p.rhythmT = append(p.rhythmT, at)
			p.rhythmV = append(p.rhythmV, ev.Rhythm == "af")
		}
	}
	// Natural variability: standard deviation and correlation time (s) of each vital sign's
	// wandering around its target; small enough that a scripted trend stays visible.
	p.noise[qHR] = newOU(1.5, 90)
	p.noise[qRR] = newOU(0.8, 60)
	p.noise[qSpO2] = newOU(0.5, 40)
	p.noise[qTemp] = newOU(0.05, 600)
	p.noise[qSBP] = newOU(3, 300)
	p.noise[qDBP] = newOU(2, 300)
	p.noise[qWeight] = newOU(0.1, 6*3600)
	p.respPhase = r.Float64() * 2 * math.Pi
	p.tick(0)
	return p
}

// tick moves the state to time t (seconds since start), normally one second on.
func (p *physio) tick(t float64) {
	dt := t - p.t
	p.respPhase = math.Mod(p.respPhase+p.respW*dt, 2*math.Pi)
	p.t = t
	for q := range nQuant {
		p.cur[q] = p.tracks[q].at(t)
	}
	for q := qHR; q <= qWeight; q++ {
		p.cur[q] += p.noise[q].step(p.r)
	}
	p.cur[qHR] = clamp(p.cur[qHR], 20, 250)
	p.cur[qRR] = clamp(p.cur[qRR], 2, 70)
	p.cur[qSpO2] = clamp(p.cur[qSpO2], 50, 100)
	if p.cur[qDBP] > p.cur[qSBP]-10 {
		p.cur[qDBP] = p.cur[qSBP] - 10
	}
	for p.ri+1 < len(p.rhythmT) && p.rhythmT[p.ri+1] <= t {
		p.ri++
	}
	p.af = p.rhythmV[p.ri]
	p.respW = 2 * math.Pi * p.cur[qRR] / 60
	if p.gl != nil {
		p.gl.step(t, p.cur[qBasal])
	}
}

// respAt is the breathing phase at time t, extrapolated from the last tick.
func (p *physio) respAt(t float64) float64 { return p.respPhase + p.respW*(t-p.t) }

func clamp(x, lo, hi float64) float64 { return math.Max(lo, math.Min(hi, x)) }
