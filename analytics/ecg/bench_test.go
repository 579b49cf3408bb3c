package ecg

import (
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/iomt/iomt/wire/wfdb"
)

// benchSignal is one MIT-BIH record's MLII lead when the reference data is present, else
// ten minutes of synthetic ECG at 360 Hz.
func benchSignal(b *testing.B) ([]float64, float64) {
	b.Helper()
	db := filepath.Join("../../../shared/data/mitdb")
	if rec, err := wfdb.ReadRecord(db, "203"); err == nil {
		return rec.Physical(0), rec.Frequency
	}
	rng := rand.New(rand.NewPCG(1, 1))
	var beats []float64
	for t := 0.5; t < 599; t += 0.5 + 0.5*rng.Float64() {
		beats = append(beats, t)
	}
	return synth(360, beats, 600, false, rng), 360
}

// reportRealTime reports how many seconds of signal one second of one core analyses.
func reportRealTime(b *testing.B, n int, fs float64) {
	b.ReportMetric(float64(n)/fs*float64(b.N)/b.Elapsed().Seconds(), "x_realtime")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/sample")
}

func BenchmarkDetector(b *testing.B) {
	x, fs := benchSignal(b)
	b.ResetTimer()
	for b.Loop() {
		d, _ := NewDetector(fs)
		for i := 0; i < len(x); i += int(fs) {
			d.Process(x[i:min(i+int(fs), len(x))])
		}
		d.Flush()
	}
	reportRealTime(b, len(x), fs)
}

func BenchmarkMonitor(b *testing.B) {
	x, fs := benchSignal(b)
	b.ResetTimer()
	for b.Loop() {
		m, _ := NewMonitor(DefaultConfig(fs))
		for i := 0; i < len(x); i += int(fs) {
			m.Process(x[i:min(i+int(fs), len(x))])
		}
		m.Flush()
	}
	reportRealTime(b, len(x), fs)
}

// BenchmarkRhythmAF is the rhythm analysis alone, per beat, in AF: every window is irregular,
// so the RR pattern test runs on every beat (its worst case).
func BenchmarkRhythmAF(b *testing.B) {
	const fs = 360
	rng := rand.New(rand.NewPCG(3, 3))
	beats := make([]int64, 4000)
	t := 0.5
	for i := range beats {
		beats[i] = int64(t * fs)
		t += 0.45 + 0.5*rng.Float64()
	}
	var o Output
	b.ResetTimer()
	for b.Loop() {
		r := rhythm{cfg: DefaultConfig(fs), fs: fs}
		for _, s := range beats {
			o.reset()
			r.onBeat(s, 0, true, &o)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(len(beats)), "ns/beat")
}
