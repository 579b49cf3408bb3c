package sensing

import (
	"flag"
	"fmt"
	"math"
	"path/filepath"
	"testing"
	"time"
)

var render = flag.Bool("render", false, "write the ECG strip PNGs into testdata/")

func ecgScenario(t testing.TB, extra string) Scenario {
	return mustScenario(t, `
name: ecg
baseline: {`+extra+`}
devices:
  - kind: ecg-patch
    first: 0s
`)
}

func TestSinusRateMatchesDetectedBeats(t *testing.T) {
	for _, hr := range []float64{60, 100, 140} {
		t.Run(fmt.Sprint(hr), func(t *testing.T) {
			p := NewPatient(ecgScenario(t, fmt.Sprintf("hr: %g", hr)), 7, t0)
			es := run(p, 0, 2*time.Minute)
			v, ts := waveOf(es, CodeECGII)
			if got := len(v); got < 119*250 || got > 121*250 {
				t.Fatalf("%d ECG samples in 2 minutes at 250 Hz", got)
			}
			peaks := rPeaks(v, ts)
			detected := 60 * float64(len(peaks)-1) / (peaks[len(peaks)-1] - peaks[0])
			_, reported := series(es, ECGPatch, CodeHeartRate)
			sim := mean(reported)
			t.Logf("scenario %g/min, device reports %.1f/min, detector finds %.1f/min", hr, sim, detected)
			if math.Abs(detected-sim) > 2 {
				t.Errorf("detected %.1f/min, device reports %.1f/min", detected, sim)
			}
			if math.Abs(detected-hr) > 5 {
				t.Errorf("detected %.1f/min, scenario says %g/min", detected, hr)
			}
			// Amplitude: R in lead II about 1 to 1.5 mV above the baseline.
			r := percentile(v, 0.995) - percentile(v, 0.5)
			if r < 0.8 || r > 1.7 {
				t.Errorf("R amplitude %.2f mV", r)
			}
		})
	}
}

// cvsd is the coefficient of variation of successive RR differences: RMSSD over mean RR.
func cvsd(rr []float64) float64 {
	s := 0.0
	for i := 1; i < len(rr); i++ {
		d := rr[i] - rr[i-1]
		s += d * d
	}
	return math.Sqrt(s/float64(len(rr)-1)) / mean(rr)
}

func TestAFIrregular(t *testing.T) {
	measure := func(extra string) float64 {
		p := NewPatient(ecgScenario(t, extra), 11, t0)
		v, ts := waveOf(run(p, 0, 3*time.Minute), CodeECGII)
		return cvsd(intervals(rPeaks(v, ts)))
	}
	sinus := measure("hr: 90")
	afSc := ecgScenario(t, "hr: 90")
	afSc.Timeline = []Event{{At: 0, Rhythm: "af"}}
	p := NewPatient(afSc, 11, t0)
	v, ts := waveOf(run(p, 0, 3*time.Minute), CodeECGII)
	af := cvsd(intervals(rPeaks(v, ts)))
	t.Logf("RMSSD/mean RR: sinus %.3f, AF %.3f", sinus, af)
	if af < 0.15 || af < 4*sinus {
		t.Errorf("AF not irregular enough: %.3f against sinus %.3f", af, sinus)
	}
}

func TestPVCsAndPauses(t *testing.T) {
	p := NewPatient(ecgScenario(t, "hr: 70, pvc: 6, pauses: 60"), 5, t0)
	v, ts := waveOf(run(p, 0, 5*time.Minute), CodeECGII)
	rr := intervals(rPeaks(v, ts))
	short, long := 0, 0
	for _, x := range rr {
		if x < 0.7*60/70 {
			short++
		}
		if x > 1.9 {
			long++
		}
	}
	t.Logf("%d beats, %d premature, %d pauses", len(rr), short, long)
	if short < 15 || long < 2 {
		t.Errorf("want about 30 premature beats and 5 pauses in 5 minutes, got %d and %d", short, long)
	}
}

// TestRenderStrips draws a 10 s strip of each rhythm; with -render it keeps them in testdata/.
func TestRenderStrips(t *testing.T) {
	dir := t.TempDir()
	if *render {
		dir = "testdata"
	}
	strips := []struct {
		name, base string
		tl         []Event
	}{
		{"sinus-72", "hr: 72", nil},
		{"sinus-brady-45", "hr: 45", nil},
		{"sinus-tachy-140", "hr: 140", nil},
		{"af", "hr: 110", []Event{{At: 0, Rhythm: "af"}}},
		{"pvcs", "hr: 75, pvc: 12", nil},
		{"pause", "hr: 70, pauses: 500", nil},
		{"artefacts", "hr: 80, noise: 0.06, wander: 0.3, motion: 12", nil},
		{"lead-off", "hr: 80", []Event{{At: 24 * time.Second, Device: ECGPatch, Fault: "lead-off", For: 3 * time.Second}, {At: 31 * time.Second, Device: ECGPatch, Fault: "lead-off-rail", For: 2 * time.Second}}},
	}
	for _, s := range strips {
		sc := ecgScenario(t, s.base)
		sc.Timeline = s.tl
		p := NewPatient(sc, 3, t0)
		es := run(p, 0, 35*time.Second)
		v, _ := waveOf(es, CodeECGII)
		v = v[len(v)-2500:] // the last 10 s, after the baseline restoration settles
		lo, hi := -1.5, 2.5
		if s.name == "lead-off" {
			hi = 5.5
		}
		path := filepath.Join(dir, "ecg-"+s.name+".png")
		if err := renderStrip(path, v, 250, lo, hi); err != nil {
			t.Fatal(err)
		}
	}
	// The pleth of the AF patient: pulse amplitude follows the irregular filling time.
	sc := builtin(t, "af-onset")
	p := NewPatient(sc, 3, t0)
	v, _ := waveOf(run(p, 0, 8*time.Minute), CodePleth)
	if err := renderStrip(filepath.Join(dir, "pleth-af.png"), v[len(v)-1000:], 100, -1, 1.5); err != nil {
		t.Fatal(err)
	}
}
