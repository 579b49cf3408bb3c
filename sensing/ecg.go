package sensing

import (
	"math"
	"math/rand/v2"
)

// morphology is one patient's lead II waveform: amplitudes in mV, fixed for the patient.
type morphology struct {
	p, q, r, s, t float64
}

func newMorphology(r *rand.Rand) morphology {
	u := func(lo, hi float64) float64 { return lo + (hi-lo)*r.Float64() }
	return morphology{p: u(0.1, 0.2), q: -u(0.04, 0.12), r: u(0.9, 1.5), s: -u(0.15, 0.35), t: u(0.2, 0.4)}
}

// ecgGen renders lead II from the beats. Each beat contributes Gaussian events as in
// McSharry et al. (2003), placed in time rather than in phase so that PR and QRS stay
// physiological while QT follows the RR interval (Bazett-like √RR scaling, as ECGSYN scales
// its angles with √(HR/60)). The model's z equation, dz/dt = Σ events − (z − z0), is solved
// exactly: with the events written as a function of time the sum is their integral, and the
// (z − z0) term is a first-order baseline restoration with a 1 s time constant, computed by an
// exponential integrator; z0 carries respiratory baseline wander.
type ecgGen struct {
	r        *rand.Rand
	m        morphology
	ws       waveSum
	nextBeat int // absolute index of the next beat to draw
	fs       float64
	kHP      float64
	w        float64 // baseline-restoration state
	driftPh  float64

	// Atrial fibrillation f waves: two components around 6 Hz whose frequency wanders.
	fPh1, fPh2, fFreq float64
	fCount            int

	motion motionSched
}

func newECG(r *rand.Rand, fs float64) *ecgGen {
	return &ecgGen{
		r: r, m: newMorphology(r), fs: fs,
		kHP:     1 - math.Exp(-1/fs),
		driftPh: r.Float64() * 2 * math.Pi,
		fPh1:    r.Float64() * 2 * math.Pi, fPh2: r.Float64() * 2 * math.Pi, fFreq: 5.5 + r.Float64(),
	}
}

// addBeat puts a beat's waves into the sum.
func (g *ecgGen) addBeat(b *beat) {
	m := &g.m
	sq := math.Sqrt(clamp(b.rrQT, 0.3, 2))
	r := b.r
	switch b.kind {
	case beatPVC:
		// Wide (≈ 150 ms) QRS from a ventricular focus, no P wave, discordant T wave.
		g.ws.add(newWave(r-0.01, m.r*1.25*b.amp, 0.028, 0.034))
		g.ws.add(newWave(r+0.075, -0.35*m.r, 0.03, 0.03))
		g.ws.add(newWave(r+0.32*sq, -1.4*m.t, 0.08*sq, 0.06*sq))
		return
	case beatSinus:
		pr := 0.115 + 0.035*clamp(b.rrQT, 0.4, 1.2) // P peak to R: PR shortens a little when fast
		g.ws.add(newWave(r-pr, m.p, 0.022, 0.022))
	}
	g.ws.add(newWave(r-0.024, m.q, 0.007, 0.007))
	g.ws.add(newWave(r, m.r*b.amp, 0.0095, 0.0105))
	g.ws.add(newWave(r+0.026, m.s, 0.008, 0.009))
	g.ws.add(newWave(r+0.25*sq, m.t, 0.06*sq, 0.04*sq))
}

// sample is the lead II voltage at true time t, in mV.
func (g *ecgGen) sample(t float64, ph *physio, bs *beats) float64 {
	// Draw beats whose P wave may have started (P lies at most ~0.25 s before R).
	for {
		b := bs.get(g.nextBeat, ph)
		if b.r > t+0.3 {
			break
		}
		g.addBeat(b)
		g.nextBeat++
		g.ws.prune(t)
	}
	g.motion.poll(t, ph, g.r, &g.ws, 1.0)
	u := g.ws.at(t)
	g.w += (u - g.w) * g.kHP
	v := u - g.w
	if a := ph.cur[qWander]; a > 0 {
		v += a * (math.Sin(ph.respAt(t)) + 0.5*math.Sin(g.driftPh+2*math.Pi*0.04*t))
	}
	if n := ph.cur[qNoise]; n > 0 {
		v += n * g.r.NormFloat64()
	}
	if ph.af {
		v += g.fwave()
	}
	return v
}

func (g *ecgGen) fwave() float64 {
	g.fCount++
	if g.fCount&31 == 0 {
		g.fFreq = clamp(g.fFreq+0.15*g.r.NormFloat64(), 4.5, 8)
	}
	step := 2 * math.Pi * g.fFreq / g.fs
	g.fPh1 += step
	g.fPh2 += step * 1.7
	if g.fPh1 > 2*math.Pi {
		g.fPh1 -= 2 * math.Pi
	}
	if g.fPh2 > 2*math.Pi {
		g.fPh2 -= 2 * math.Pi
	}
	return 0.05*math.Sin(g.fPh1) + 0.02*math.Sin(g.fPh2)
}

// motionSched places motion artefacts, a Poisson process at the scenario's "motion" rate plus
// one per 30 steps: each a few broad random deflections over 0.3–2 s.
type motionSched struct {
	check float64 // next time to look at the rate
	at    float64 // next artefact, 0 if none scheduled
}

const motionLead = 1.2 // s: artefact waves start up to this long before their nominal time

func (m *motionSched) poll(t float64, ph *physio, r *rand.Rand, ws *waveSum, scale float64) {
	if t >= m.check {
		m.check = t + 1
		rate := (ph.cur[qMotion] + ph.cur[qSteps]/30) / 60
		if m.at == 0 && rate > 0 {
			m.at = t + motionLead + r.ExpFloat64()/rate
		}
	}
	if m.at == 0 || t < m.at-motionLead {
		return
	}
	dur := 0.3 + 1.7*r.Float64()
	for range 2 + r.IntN(3) {
		c := m.at + dur*r.Float64()
		s := 0.05 + 0.2*r.Float64()
		ws.add(newWave(c, scale*(0.3+1.2*r.Float64())*sign(r), s, s*(0.7+0.6*r.Float64())))
	}
	m.at = 0
}

func sign(r *rand.Rand) float64 {
	if r.IntN(2) == 0 {
		return -1
	}
	return 1
}
