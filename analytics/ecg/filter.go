package ecg

import (
	"math"
	"math/cmplx"
)

// biquad is a second-order IIR section in transposed direct form II.
type biquad struct {
	b0, b1, b2, a1, a2 float64
	z1, z2             float64
}

func (f *biquad) step(x float64) float64 {
	y := f.b0*x + f.z1
	f.z1 = f.b1*x - f.a1*y + f.z2
	f.z2 = f.b2*x - f.a2*y
	return y
}

// response is the section's complex frequency response at normalised angular frequency w.
func (f *biquad) response(w float64) complex128 {
	z1 := cmplx.Exp(complex(0, -w))
	z2 := z1 * z1
	num := complex(f.b0, 0) + complex(f.b1, 0)*z1 + complex(f.b2, 0)*z2
	den := 1 + complex(f.a1, 0)*z1 + complex(f.a2, 0)*z2
	return num / den
}

// Butterworth (Q = 1/sqrt 2) sections by the bilinear transform with prewarping.
func lowPass(fc, fs float64) biquad {
	k := math.Tan(math.Pi * fc / fs)
	q := math.Sqrt2 / 2
	n := 1 / (1 + k/q + k*k)
	return biquad{b0: k * k * n, b1: 2 * k * k * n, b2: k * k * n, a1: 2 * (k*k - 1) * n, a2: (1 - k/q + k*k) * n}
}

func highPass(fc, fs float64) biquad {
	k := math.Tan(math.Pi * fc / fs)
	q := math.Sqrt2 / 2
	n := 1 / (1 + k/q + k*k)
	return biquad{b0: n, b1: -2 * n, b2: n, a1: 2 * (k*k - 1) * n, a2: (1 - k/q + k*k) * n}
}

// groupDelay of a cascade at frequency f, in samples, by numerical differentiation of phase.
func groupDelay(fs, f float64, sections ...biquad) float64 {
	phase := func(w float64) float64 {
		var p float64
		for i := range sections {
			p += cmplx.Phase(sections[i].response(w))
		}
		return p
	}
	w := 2 * math.Pi * f / fs
	const h = 1e-4
	d := phase(w+h) - phase(w-h)
	// Unwrap a jump across ±π.
	for d > math.Pi {
		d -= 2 * math.Pi
	}
	for d < -math.Pi {
		d += 2 * math.Pi
	}
	return -d / (2 * h)
}

// ring is a fixed-size history of float64 samples indexed by absolute sample number.
type ring struct {
	buf  []float64
	mask int64
}

func newRing(minLen int) ring {
	n := 1
	for n < minLen {
		n <<= 1
	}
	return ring{buf: make([]float64, n), mask: int64(n - 1)}
}

func (r *ring) set(i int64, v float64) { r.buf[i&r.mask] = v }
func (r *ring) at(i int64) float64     { return r.buf[i&r.mask] }
