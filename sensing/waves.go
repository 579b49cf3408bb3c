package sensing

import "math"

// wave is one Gaussian event of McSharry et al.'s dynamical ECG model (P, Q, R, S, T), also
// used for the pleth pulse and for motion artefacts. It may be asymmetric (a T wave rises
// slower than it falls), and it is evaluated only within ±4σ, where it is above 0.03 % of its
// peak, so that a sample costs one or two exponentials rather than one per wave.
type wave struct {
	c, a   float64 // centre (s since start), amplitude
	kl, kr float64 // -1/(2σ²) left and right of the centre
	lo, hi float64 // support
}

func newWave(c, a, sl, sr float64) wave {
	return wave{c: c, a: a, kl: -0.5 / (sl * sl), kr: -0.5 / (sr * sr), lo: c - 4*sl, hi: c + 4*sr}
}

// waveSum is a set of live waves.
type waveSum struct {
	w []wave
}

func (s *waveSum) add(w wave) { s.w = append(s.w, w) }

func (s *waveSum) at(t float64) float64 {
	v := 0.0
	for i := range s.w {
		w := &s.w[i]
		if t < w.lo || t > w.hi {
			continue
		}
		d := t - w.c
		k := w.kr
		if d < 0 {
			k = w.kl
		}
		v += w.a * math.Exp(d*d*k)
	}
	return v
}

// prune drops waves that ended before t.
func (s *waveSum) prune(t float64) {
	n := 0
	for _, w := range s.w {
		if w.hi >= t {
			s.w[n] = w
			n++
		}
	}
	s.w = s.w[:n]
}
