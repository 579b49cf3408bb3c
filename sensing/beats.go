package sensing

import (
	"math"
	"math/rand/v2"
)

type beatKind uint8

const (
	beatSinus beatKind = iota
	beatAF             // conducted beat in atrial fibrillation: no P wave
	beatPVC            // premature ventricular beat
)

// beat is one ventricular depolarisation. The ECG draws its QRS at R, the pleth its pulse a
// pulse-arrival time later, and both devices count their rates from the same beats.
type beat struct {
	r     float64 // R peak, seconds since start
	rr    float64 // interval from the previous beat, s
	rrQT  float64 // smoothed RR that sets QT (repolarisation adapts over several beats)
	kind  beatKind
	amp   float64 // QRS amplitude factor (breathing moves the heart's axis)
	pulse float64 // pulse amplitude factor (filling time: weak after a short RR)
	ptt   float64 // pulse arrival time, s
}

// beats generates the beat sequence from the rhythm and rate on the physiology tick:
// sinus rhythm with respiratory sinus arrhythmia and a 0.1 Hz (Mayer wave, LF) component,
// atrial fibrillation with irregularly irregular RR, PVCs with a compensatory pause, pauses.
type beats struct {
	r       *rand.Rand
	list    []beat
	base    int     // absolute index of list[0]
	pending float64 // time of the next sinus beat already fixed by a PVC's compensatory pause, or 0
	lfPhase float64
	rrQT    float64
}

func newBeats(r *rand.Rand, ph *physio) *beats {
	b := &beats{r: r, lfPhase: r.Float64() * 2 * math.Pi}
	rr := 60 / ph.cur[qHR]
	b.rrQT = rr
	// The first beat falls somewhere within the first RR interval.
	b.list = append(b.list, beat{r: r.Float64() * rr, rr: rr, rrQT: rr, kind: beatSinus, amp: 1, pulse: 1, ptt: 0.22})
	return b
}

// last returns the last generated beat.
func (b *beats) last() *beat { return &b.list[len(b.list)-1] }

// get returns the beat with absolute index i, generating beats as needed.
func (b *beats) get(i int, ph *physio) *beat {
	for b.base+len(b.list) <= i {
		b.next(ph)
	}
	return &b.list[i-b.base]
}

// trim forgets beats below absolute index keep, which every consumer has passed.
func (b *beats) trim(keep int) {
	if n := keep - b.base; n > 64 {
		b.list = append(b.list[:0], b.list[n:]...)
		b.base = keep
	}
}

func (b *beats) next(ph *physio) {
	prev := b.last()
	hr := ph.cur[qHR]
	meanRR := 60 / hr
	t := prev.r
	var nb beat
	switch {
	case b.pending > 0:
		nb = beat{r: b.pending, kind: beatSinus}
		if ph.af {
			nb.kind = beatAF
		}
		b.pending = 0
	case ph.cur[qPVC] > 0 && prev.kind != beatPVC && b.r.Float64() < ph.cur[qPVC]*meanRR/60:
		// An ectopic ventricular beat, early; sinus rhythm carries on underneath, so the next
		// sinus beat comes two cycles after the last one (a full compensatory pause). In AF
		// there is no sinus clock to keep, so no pause.
		coupling := meanRR * (0.55 + 0.1*b.r.Float64())
		nb = beat{r: t + coupling, kind: beatPVC}
		if !ph.af {
			b.pending = t + 2*b.sinusRR(ph, t)
		}
	case ph.af:
		// Irregularly irregular: independent log-normal intervals (CV ≈ 0.22), as AF
		// conduction through the AV node has no memory of the last interval to speak of.
		const sigma = 0.22
		rr := meanRR * math.Exp(sigma*b.r.NormFloat64()-sigma*sigma/2)
		nb = beat{r: t + clamp(rr, 0.28, 3*meanRR), kind: beatAF}
	default:
		rr := b.sinusRR(ph, t)
		if ph.cur[qPauses] > 0 && b.r.Float64() < ph.cur[qPauses]*rr/3600 {
			rr = 2 + 1.5*b.r.Float64() // sinus pause / arrest
		}
		nb = beat{r: t + rr, kind: beatSinus}
	}
	nb.rr = nb.r - t
	b.rrQT = 0.8*b.rrQT + 0.2*clamp(nb.rr, 0.25, 2.5)
	nb.rrQT = b.rrQT
	nb.amp = 1 + 0.06*math.Sin(ph.respAt(nb.r))
	// Stroke volume (hence pulse amplitude) follows filling time; a PVC barely ejects, and the
	// beat after its pause is stronger (post-extrasystolic potentiation).
	nb.pulse = math.Pow(clamp(nb.rr/meanRR, 0.3, 1.4), 0.8)
	if nb.kind == beatPVC {
		nb.pulse *= 0.35
	} else if prev.kind == beatPVC {
		nb.pulse *= 1.15
	}
	// Pulse arrival time shortens as pressure and rate rise.
	nb.ptt = clamp(0.24-0.0008*(ph.cur[qSBP]-120)-0.0005*(hr-70), 0.12, 0.35)
	b.list = append(b.list, nb)
}

// sinusRR is the next sinus interval after a beat at t: the mean modulated by breathing (RSA,
// strongest at low rates) and the LF rhythm, times the scenario's hrv scale.
func (b *beats) sinusRR(ph *physio, t float64) float64 {
	hr := ph.cur[qHR]
	hrv := ph.cur[qHRV]
	rsa := 0.045 * clamp((120-hr)/60, 0.05, 1.2)
	lf := 0.02 * clamp((130-hr)/70, 0.1, 1)
	m := hrv * (rsa*math.Sin(ph.respAt(t)) + lf*math.Sin(b.lfPhase+2*math.Pi*0.1*t) + 0.006*b.r.NormFloat64())
	return 60 / (hr * (1 + m))
}

// rateAt is the heart rate a device's beat detector reports at time t: 60 over the mean of
// the last up to 8 RR intervals ending by t, counting only beats a detector of that device
// sees (minPulse > 0: a pulse oximeter misses beats too weak to make a pulse). 0 if none.
func (b *beats) rateAt(t, minPulse float64) float64 {
	n, first, last := 0, 0.0, 0.0
	for i := len(b.list) - 1; i >= 0 && n < 9; i-- {
		bt := &b.list[i]
		at := bt.r
		if minPulse > 0 {
			at += bt.ptt
			if bt.pulse < minPulse {
				continue
			}
		}
		if at > t {
			continue
		}
		if n == 0 {
			last = at
		}
		first = at
		n++
	}
	if n < 2 || last-first <= 0 {
		return 0
	}
	return 60 * float64(n-1) / (last - first)
}
