package sensing

import (
	"math"
	"math/rand/v2"
)

// ppgGen renders the photoplethysmogram from the same beats as the ECG: each beat's pulse
// arrives its pulse arrival time after R, as a fast systolic upstroke and a slower decline
// with a dicrotic (reflected) wave, a sum of two Gaussians as in common PPG pulse models.
// It is AC-coupled like a monitor's pleth display, with breathing modulation on top.
type ppgGen struct {
	r        *rand.Rand
	ws       waveSum
	nextBeat int
	kHP      float64
	w        float64
	motion   motionSched
}

func newPPG(r *rand.Rand, fs float64) *ppgGen {
	return &ppgGen{r: r, kHP: 1 - math.Exp(-1/(1.5*fs))}
}

func (g *ppgGen) sample(t float64, ph *physio, bs *beats) float64 {
	for {
		b := bs.get(g.nextBeat, ph)
		if b.r > t+0.1 {
			break
		}
		sq := math.Sqrt(clamp(b.rrQT, 0.3, 2))
		a := b.pulse * ph.cur[qPerfusion]
		foot := b.r + b.ptt
		g.ws.add(newWave(foot+0.12*sq, a, 0.045*sq, 0.1*sq))
		g.ws.add(newWave(foot+0.36*sq, 0.35*a, 0.07*sq, 0.1*sq))
		g.nextBeat++
		g.ws.prune(t)
	}
	g.motion.poll(t, ph, g.r, &g.ws, 2)
	u := g.ws.at(t)
	g.w += (u - g.w) * g.kHP
	return u - g.w + 0.08*ph.cur[qPerfusion]*math.Sin(ph.respAt(t)) + 0.004*g.r.NormFloat64()
}
