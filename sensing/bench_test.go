package sensing

import (
	"testing"
	"time"
)

func benchScenario(b *testing.B, kind string) Scenario {
	return mustScenario(b, "name: bench\nbaseline: {hr: 75}\ndevices:\n  - kind: "+kind+"\n    jitter: 20ms\n")
}

// BenchmarkECG250Hz: one ECG patch, one simulated second per iteration (250 samples, HR, RR).
func BenchmarkECG250Hz(b *testing.B) {
	p := NewPatient(benchScenario(b, ECGPatch), 1, t0)
	now := t0
	var buf []Emission
	samples := 0
	b.ReportAllocs()
	for b.Loop() {
		now = now.Add(time.Second)
		buf = p.AdvanceAppend(buf[:0], now)
		for _, e := range buf {
			for _, c := range e.Chunks {
				samples += len(c.Values)
			}
		}
	}
	sec := b.Elapsed().Seconds()
	b.ReportMetric(float64(samples)/sec, "samples/s")
	b.ReportMetric(sec*1e9/float64(samples), "ns/sample")
}

// BenchmarkVitals1Hz: one pulse oximeter without pleth, one simulated second per iteration.
func BenchmarkVitals1Hz(b *testing.B) {
	p := NewPatient(benchScenario(b, PulseOximeter), 1, t0)
	now := t0
	var buf []Emission
	b.ReportAllocs()
	for b.Loop() {
		now = now.Add(time.Second)
		buf = p.AdvanceAppend(buf[:0], now)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "device-s/s")
}

// BenchmarkWard is the judged load on one core: 1,000 ECG patches at 250 Hz and 10,000
// pulse oximeters at 1 Hz, advanced one simulated second per iteration. core-% is the share of
// one core that keeps this load going in real time.
func BenchmarkWard(b *testing.B) {
	var ps []*Patient
	ecg, ox := benchScenario(b, ECGPatch), benchScenario(b, PulseOximeter)
	for i := range 1000 {
		ps = append(ps, NewPatient(ecg, uint64(i), t0))
	}
	for i := range 10000 {
		ps = append(ps, NewPatient(ox, uint64(1000+i), t0))
	}
	now := t0
	var buf []Emission
	b.ReportAllocs()
	for b.Loop() {
		now = now.Add(time.Second)
		for _, p := range ps {
			buf = p.AdvanceAppend(buf[:0], now)
		}
	}
	b.ReportMetric(b.Elapsed().Seconds()/float64(b.N)*100, "core-%")
}
