package ecg

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/iomt/iomt"
)

// synth draws a clean ECG-like lead in mV at fs Hz with a beat at each time in beats
// (seconds): P wave (omitted when noP), a narrow QRS and a T wave, plus slow baseline wander.
func synth(fs float64, beats []float64, dur float64, noP bool, rng *rand.Rand) []float64 {
	n := int(dur * fs)
	x := make([]float64, n)
	g := func(t, c, w, a float64) float64 { d := (t - c) / w; return a * math.Exp(-d*d/2) }
	for i := range x {
		t := float64(i) / fs
		x[i] = 0.1 * math.Sin(2*math.Pi*0.25*t)
		if rng != nil {
			x[i] += 0.01 * rng.NormFloat64()
		}
	}
	for _, b := range beats {
		lo, hi := int((b-0.4)*fs), int((b+0.5)*fs)
		for i := max(0, lo); i < min(n, hi); i++ {
			t := float64(i) / fs
			v := g(t, b-0.025, 0.008, -0.15) + g(t, b, 0.010, 1.2) + g(t, b+0.025, 0.008, -0.25) + g(t, b+0.28, 0.045, 0.3)
			if !noP {
				v += g(t, b-0.17, 0.02, 0.15)
			}
			x[i] += v
		}
	}
	return x
}

func regular(start, rr, dur float64) []float64 {
	var b []float64
	for t := start; t < dur-0.6; t += rr {
		b = append(b, t)
	}
	return b
}

type run struct {
	beats    []Beat
	episodes []Episode
	started  []Episode
}

// feed runs a monitor over x in chunks of the given size.
func feed(t *testing.T, fs float64, x []float64, chunk int) run {
	t.Helper()
	m, err := NewMonitor(DefaultConfig(fs))
	if err != nil {
		t.Fatal(err)
	}
	var r run
	add := func(o Output) {
		r.beats = append(r.beats, o.Beats...)
		r.episodes = append(r.episodes, o.Episodes...)
		r.started = append(r.started, o.Started...)
	}
	for i := 0; i < len(x); i += chunk {
		add(m.Process(x[i:min(i+chunk, len(x))]))
	}
	add(m.Flush())
	return r
}

func samplesOf(beats []Beat) []int64 {
	s := make([]int64, len(beats))
	for i, b := range beats {
		s[i] = b.Sample
	}
	return s
}

func toSamples(times []float64, fs float64) []int64 {
	s := make([]int64, len(times))
	for i, t := range times {
		s[i] = int64(math.Round(t * fs))
	}
	return s
}

func TestDetectsEveryBeatAtAnyRate(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, fs := range []float64{125, 128, 250, 360, 500, 1000} {
		for _, rr := range []float64{0.3, 0.8, 1.5} {
			beats := regular(0.5, rr, 60)
			x := synth(fs, beats, 60, false, rng)
			for _, chunk := range []int{1, 37, int(fs), len(x)} {
				r := feed(t, fs, x, chunk)
				m := MatchBeats(toSamples(beats, fs), samplesOf(r.beats), int64(0.05*fs))
				if m.FN != 0 || m.FP != 0 {
					t.Errorf("fs %v rr %v chunk %d: %+v", fs, rr, chunk, m)
				}
			}
		}
	}
}

func TestChunkingDoesNotChangeResults(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	var beats []float64
	for tt := 0.7; tt < 119; tt += 0.5 + 0.6*rng.Float64() {
		beats = append(beats, tt)
	}
	x := synth(250, beats, 120, true, rng)
	ref := feed(t, 250, x, len(x))
	for _, chunk := range []int{1, 3, 250, 1000} {
		r := feed(t, 250, x, chunk)
		if len(r.beats) != len(ref.beats) || len(r.episodes) != len(ref.episodes) {
			t.Fatalf("chunk %d: %d beats %d episodes, whole: %d and %d", chunk, len(r.beats), len(r.episodes), len(ref.beats), len(ref.episodes))
		}
		for i := range r.beats {
			if r.beats[i] != ref.beats[i] {
				t.Fatalf("chunk %d beat %d: %+v vs %+v", chunk, i, r.beats[i], ref.beats[i])
			}
		}
	}
}

func hasEpisode(eps []Episode, k Kind, from, to int64) bool {
	for _, e := range eps {
		if e.Kind == k && e.Onset <= to && e.Offset >= from {
			return true
		}
	}
	return false
}

func count(eps []Episode, k Kind) int {
	n := 0
	for _, e := range eps {
		if e.Kind == k {
			n++
		}
	}
	return n
}

func TestRates(t *testing.T) {
	const fs = 250
	// 60 s at 75/min, 60 s at 40/min, 60 s at 150/min, 60 s at 75/min.
	var beats []float64
	beats = append(beats, regular(0.5, 0.8, 60)...)
	for _, seg := range []struct{ start, rr float64 }{{60, 1.5}, {120, 0.4}, {180, 0.8}} {
		beats = append(beats, regular(seg.start+0.5, seg.rr, seg.start+60)...)
	}
	x := synth(fs, beats, 240, false, nil)
	r := feed(t, fs, x, fs)
	if count(r.episodes, Bradycardia) != 1 || !hasEpisode(r.episodes, Bradycardia, 70*fs, 110*fs) {
		t.Errorf("bradycardia: %+v", r.episodes)
	}
	if count(r.episodes, Tachycardia) != 1 || !hasEpisode(r.episodes, Tachycardia, 130*fs, 170*fs) {
		t.Errorf("tachycardia: %+v", r.episodes)
	}
	if n := count(r.episodes, AF) + count(r.episodes, Pause) + count(r.episodes, Asystole) + count(r.episodes, VF); n != 0 {
		t.Errorf("spurious episodes: %+v", r.episodes)
	}
	for _, b := range r.beats[10:20] {
		if math.Abs(b.RR-0.8) > 0.01 || b.Onset > b.Sample || b.Offset < b.Sample {
			t.Errorf("beat %+v", b)
		}
	}
}

func TestPauseAndAsystole(t *testing.T) {
	const fs = 360
	beats := regular(0.5, 0.8, 30)
	beats = append(beats, 32.5)                      // 2.4 s pause after the last one at ~29.3
	beats = append(beats, regular(33.3, 0.8, 50)...) // then regular
	beats = append(beats, regular(56, 0.8, 80)...)   // 6.6 s asystole between ~49.3 and 56
	x := synth(fs, beats, 80, false, rand.New(rand.NewPCG(5, 6)))
	r := feed(t, fs, x, 100)
	if !hasEpisode(r.episodes, Pause, 30*fs, 32*fs) || count(r.episodes, Pause) != 1 {
		t.Errorf("pause: %+v", r.episodes)
	}
	if !hasEpisode(r.episodes, Asystole, 50*fs, 55*fs) || count(r.episodes, Asystole) != 1 || count(r.started, Asystole) != 1 {
		t.Errorf("asystole: %+v started %+v", r.episodes, r.started)
	}
}

func TestAF(t *testing.T) {
	const fs = 250
	rng := rand.New(rand.NewPCG(7, 8))
	// 120 s sinus with P waves, 180 s AF (irregular RR, f waves, no P waves), 120 s sinus.
	sinus := regular(0.5, 0.85, 120)
	var af []float64
	for tt := 120.5; tt < 300; tt += 0.45 + 0.5*rng.Float64() {
		af = append(af, tt)
	}
	x1 := synth(fs, sinus, 120, false, rng)
	x2 := synth(fs, af, 300, true, rng)[120*fs:]
	// Fibrillatory waves: 0.05 mV, 5–7 Hz with a wandering phase, as in real AF (without them
	// the flat pre-QRS baseline and T-wave tails repeat from beat to beat like a P wave).
	ph := 0.0
	for i := range x2 {
		ph += 2 * math.Pi * (6 + rng.Float64()*2 - 1) / fs
		x2[i] += 0.05 * math.Sin(ph)
	}
	x3 := synth(fs, regular(300.5, 0.85, 420), 420, false, rng)[300*fs:]
	x := append(append(x1, x2...), x3...)
	r := feed(t, fs, x, fs)
	var got []Interval
	for _, e := range r.episodes {
		if e.Kind == AF {
			got = append(got, Interval{e.Onset, e.Offset})
		}
	}
	both, ref, det := Overlap([]Interval{{120 * fs, 300 * fs}}, got)
	if float64(both)/float64(ref) < 0.9 || float64(both)/float64(det) < 0.9 {
		t.Fatalf("AF episodes %+v: overlap %d of reference %d and detected %d", got, both, ref, det)
	}
	if count(r.started, AF) != len(got) {
		t.Errorf("started %+v", r.started)
	}
}

func TestAFFromTheFirstBeat(t *testing.T) {
	const fs = 360
	rng := rand.New(rand.NewPCG(13, 14))
	// A recording that starts in AF: the first beats have no window centred on them, and
	// take the first window's label instead of being left out.
	var af []float64
	for tt := 0.5; tt < 120; tt += 0.45 + 0.5*rng.Float64() {
		af = append(af, tt)
	}
	x := synth(fs, af, 180, true, rng)
	ph := 0.0
	for i := range x[:120*fs] {
		ph += 2 * math.Pi * (6 + rng.Float64()*2 - 1) / fs
		x[i] += 0.05 * math.Sin(ph)
	}
	copy(x[120*fs:], synth(fs, regular(120.5, 0.85, 180), 180, false, rng)[120*fs:])
	r := feed(t, fs, x, fs)
	var got []Interval
	for _, e := range r.episodes {
		if e.Kind == AF {
			got = append(got, Interval{e.Onset, e.Offset})
		}
	}
	if len(got) != 1 || got[0].Start > fs || math.Abs(float64(got[0].End-120*fs)) > 10*fs {
		t.Fatalf("AF episodes %+v, want one from the first second to about 120 s", got)
	}
}

func TestIrregularSinusIsNotAF(t *testing.T) {
	const fs = 250
	// Sinus with P waves and every fourth beat premature with a compensatory pause.
	var beats []float64
	tt := 0.5
	for i := 0; tt < 300; i++ {
		beats = append(beats, tt)
		switch i % 4 {
		case 2:
			tt += 0.5
		case 3:
			tt += 1.1
		default:
			tt += 0.8
		}
	}
	r := feed(t, fs, synth(fs, beats, 300, false, rand.New(rand.NewPCG(9, 10))), fs)
	if n := count(r.episodes, AF); n != 0 {
		t.Fatalf("AF on sinus with ectopics: %+v", r.episodes)
	}
}

func TestRandomPrematureBeatsAreNotAF(t *testing.T) {
	const fs = 360
	rng := rand.New(rand.NewPCG(11, 12))
	// Sinus arrhythmia (rate drifting ±8 %) with one beat in four on average premature (65–75 %
	// of the cycle, same QRS shape) and followed by a pause: irregular RR, but not AF. No P
	// waves, so that only the RR analysis can tell.
	var beats []float64
	for tt := 0.5; tt < 600; {
		rr := 0.8 * (1 + 0.08*math.Sin(2*math.Pi*tt/20))
		beats = append(beats, tt)
		if rng.Float64() < 0.25 {
			c := (0.65 + 0.1*rng.Float64()) * rr
			beats = append(beats, tt+c)
			tt += c + (1.15+0.2*rng.Float64())*rr
			continue
		}
		tt += rr
	}
	r := feed(t, fs, synth(fs, beats, 600, true, rng), fs)
	if n := count(r.episodes, AF); n != 0 {
		t.Fatalf("AF on sinus with random premature beats: %+v", r.episodes)
	}
}

func TestQuality(t *testing.T) {
	const fs = 500
	x := synth(fs, regular(0.5, 0.8, 60), 60, false, rand.New(rand.NewPCG(11, 12)))
	for i := 20 * fs; i < 30*fs; i++ { // lead off: flat
		x[i] = 0
	}
	for i := 40 * fs; i < 45*fs; i++ { // clipped at a rail
		x[i] = math.Min(x[i]*8, 1.0)
		if i%fs < fs/3 {
			x[i] = 1.0
		}
	}
	x[50*fs] = math.NaN()
	x[50*fs+1] = math.Inf(1)
	r := feed(t, fs, x, 64)
	if !hasEpisode(r.episodes, LeadOff, 21*fs, 29*fs) {
		t.Errorf("lead-off: %+v", r.episodes)
	}
	if !hasEpisode(r.episodes, Saturation, 41*fs, 44*fs) {
		t.Errorf("saturation: %+v", r.episodes)
	}
	if count(r.episodes, Asystole) != 0 {
		t.Errorf("asystole raised during lead-off: %+v", r.episodes)
	}
	noisy := synth(fs, regular(0.5, 0.8, 30), 30, false, nil)
	rng := rand.New(rand.NewPCG(13, 14))
	for i := 10 * fs; i < 20*fs; i++ {
		noisy[i] += 0.8 * rng.NormFloat64()
	}
	r = feed(t, fs, noisy, fs)
	if !hasEpisode(r.episodes, Noise, 12*fs, 18*fs) {
		t.Errorf("noise: %+v", r.episodes)
	}
}

func TestVFWithholdsBeats(t *testing.T) {
	const fs = 250
	beats := regular(0.5, 0.8, 30)
	x := synth(fs, beats, 60, false, nil)
	for i := 30 * fs; i < 60*fs; i++ { // 4.5 Hz sinusoid: flutter
		x[i] = 0.8 * math.Sin(2*math.Pi*4.5*float64(i)/fs)
	}
	r := feed(t, fs, x, fs)
	if !hasEpisode(r.episodes, VF, 33*fs, 57*fs) {
		t.Errorf("VF: %+v", r.episodes)
	}
	for _, b := range r.beats {
		if b.Sample > 33*fs {
			t.Fatalf("beat reported inside VF at %.1f s", float64(b.Sample)/fs)
		}
	}
}

func TestHRV(t *testing.T) {
	rr := []float64{0.8, 0.82, 0.78, 0.8, 0.84}
	if got := HeartRate(rr); math.Abs(got-75) > 1e-9 {
		t.Errorf("HeartRate %v", got)
	}
	// mean 0.808, deviations -.008 .012 -.028 -.008 .032: sum of squares 0.00208
	if got := SDNN(rr); math.Abs(got-math.Sqrt(0.00208/4)) > 1e-12 {
		t.Errorf("SDNN %v", got)
	}
	// differences .02 -.04 .02 .04: squares sum 0.004
	if got := RMSSD(rr); math.Abs(got-math.Sqrt(0.004/4)) > 1e-12 {
		t.Errorf("RMSSD %v", got)
	}
	if got := NormalRR([]float64{0.8, 0.8, 0.5, 1.1, 0.8, 0.8}); len(got) != 4 {
		t.Errorf("NormalRR kept %v", got)
	}
	if HeartRate(nil) != 0 || SDNN(rr[:1]) != 0 || RMSSD(nil) != 0 {
		t.Error("empty inputs")
	}
}

func TestMatchAndOverlap(t *testing.T) {
	m := MatchBeats([]int64{100, 200, 300, 400}, []int64{90, 130, 210, 215, 460}, 54)
	if m != (Match{TP: 2, FP: 3, FN: 2}) {
		t.Errorf("match %+v", m)
	}
	if m.Se() != 0.5 || m.PPV() != 0.4 || (Match{}).Se() != 1 {
		t.Errorf("ratios %v %v", m.Se(), m.PPV())
	}
	both, a, b := Overlap([]Interval{{0, 10}, {20, 30}}, []Interval{{5, 25}, {28, 40}})
	if both != 12 || a != 20 || b != 32 {
		t.Errorf("overlap %d %d %d", both, a, b)
	}
}

func TestConfigRefusals(t *testing.T) {
	if _, err := NewDetector(100); err == nil {
		t.Error("100 Hz accepted")
	}
	c := DefaultConfig(250)
	c.AFOff = c.AFOn + 1
	if _, err := NewMonitor(c); err == nil {
		t.Error("AFOff above AFOn accepted")
	}
}

func TestMillivolts(t *testing.T) {
	w := iomt.Waveform{Period: 4 * time.Millisecond, Scale: 5, Unit: "uV", Samples: []int32{200, -100}}
	x, fs, err := Millivolts(w)
	if err != nil || fs != 250 || x[0] != 1 || x[1] != -0.5 {
		t.Fatalf("%v %v %v", x, fs, err)
	}
	w.Unit = "mm[Hg]"
	if _, _, err := Millivolts(w); err == nil || !strings.Contains(err.Error(), `unit "mm[Hg]" is not a voltage`) {
		t.Fatalf("unit: %v", err)
	}
	w.Unit, w.Period = "mV", 0
	if _, _, err := Millivolts(w); err == nil || !strings.Contains(err.Error(), "period 0s is not positive") {
		t.Fatalf("period: %v", err)
	}
}
