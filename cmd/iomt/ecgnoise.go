package main

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
)

// Stress noise for `iomt ecg eval --noise`: the kinds of interference a monitor meets, modelled
// on what the MIT-BIH Noise Stress Test Database records (baseline wander, muscle artefact,
// electrode motion), which is not available here, plus white noise and mains hum. Each is
// scaled to the requested RMS over the time it is present, so 0.1 mV of bursty muscle noise is
// as strong while it lasts as 0.1 mV of white noise.
var noiseKinds = []string{"white", "mains", "baseline", "muscle", "motion"}

func checkNoiseKind(kind string) error {
	for _, k := range noiseKinds {
		if k == kind {
			return nil
		}
	}
	return fmt.Errorf("--noise-kind must be one of %s, got %q", strings.Join(noiseKinds, ", "), kind)
}

// addNoise adds noise of the given kind and RMS (mV) to x, sampled at fs Hz.
func addNoise(x []float64, fs, rms float64, kind string, rng *rand.Rand) {
	n := make([]float64, len(x))
	on := make([]bool, len(x))
	switch kind {
	case "white":
		for i := range n {
			n[i], on[i] = rng.NormFloat64(), true
		}
	case "mains":
		// 60 Hz (the records are American) with a weaker third harmonic where the rate allows.
		ph := 2 * math.Pi * rng.Float64()
		for i := range n {
			t := float64(i) / fs
			n[i], on[i] = math.Sin(2*math.Pi*60*t+ph), true
			if fs > 2*180 {
				n[i] += 0.3 * math.Sin(2*math.Pi*180*t+3*ph)
			}
		}
	case "baseline":
		// Respiration (0.2–0.35 Hz, its rate drifting) plus slow drift of the electrode potential.
		f, ph, drift := 0.2+0.15*rng.Float64(), 2*math.Pi*rng.Float64(), 0.0
		lp := onePole(0.05, fs)
		for i := range n {
			if i%int(fs) == 0 {
				f = min(0.35, max(0.2, f+0.005*rng.NormFloat64()))
			}
			ph += 2 * math.Pi * f / fs
			drift += lp * (rng.NormFloat64()*30 - drift)
			n[i], on[i] = math.Sin(ph)+drift, true
		}
	case "muscle":
		// EMG: broadband above 20 Hz, in bursts of contraction.
		lp, y := onePole(20, fs), 0.0
		bursts(on, fs, 2, 5, rng)
		for i := range n {
			v := rng.NormFloat64()
			y += lp * (v - y)
			if on[i] {
				n[i] = v - y
			}
		}
	case "motion":
		// Electrode motion: low-frequency swings and steps inside the QRS band (below ~10 Hz),
		// in bursts; the hardest for a QRS detector, as in the NSTDB "em" record.
		a := onePole(8, fs)
		var y1, y2, step float64
		bursts(on, fs, 3, 10, rng)
		for i := range n {
			y1 += a * (rng.NormFloat64() - y1)
			y2 += a * (y1 - y2)
			if on[i] {
				if rng.Float64() < 0.5/fs { // a step about every 2 s of motion
					step = rng.NormFloat64() * 0.1
				}
				n[i] = y2 + step
			}
		}
	}
	// Scale to the RMS over the samples where the noise is present, about its mean there.
	var s, s2, c float64
	for i, v := range n {
		if on[i] {
			s, s2, c = s+v, s2+v*v, c+1
		}
	}
	if c == 0 {
		return
	}
	mean := s / c
	sd := math.Sqrt(max(s2/c-mean*mean, 1e-30))
	for i := range x {
		if on[i] {
			x[i] += rms * (n[i] - mean) / sd
		}
	}
}

// onePole is the coefficient of a one-pole low-pass at fc Hz.
func onePole(fc, fs float64) float64 { return 1 - math.Exp(-2*math.Pi*fc/fs) }

// bursts marks stretches of noise: on for an exponentially distributed time of mean onS
// seconds, then off for a mean of offS, starting off.
func bursts(on []bool, fs, onS, offS float64, rng *rand.Rand) {
	state := false
	for i := 0; i < len(on); {
		mean := offS
		if state {
			mean = onS
		}
		d := max(1, int(rng.ExpFloat64()*mean*fs))
		for j := i; j < min(len(on), i+d); j++ {
			on[j] = state
		}
		i += d
		state = !state
	}
}
