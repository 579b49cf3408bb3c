package news2

import (
	"testing"
	"time"

	"github.com/iomt/iomt"
)

func BenchmarkScore(b *testing.B) {
	v := Vitals{RespRate: 22, SpO2: 94, Scale: Scale2, Oxygen: true, SBP: 105, Pulse: 115, ACVPU: Confusion, Temp: 38.4}
	for b.Loop() {
		if _, err := Score(v); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAssess(b *testing.B) {
	now := time.Date(2026, 11, 24, 3, 0, 0, 0, time.UTC)
	var obs []iomt.Observation
	// An hour of minute-by-minute monitor readings plus spot checks.
	for i := range 60 {
		t := now.Add(-time.Duration(i) * time.Minute)
		obs = append(obs, iomt.Observation{Code: CodeRespRate, Value: 18, Time: t},
			iomt.Observation{Code: CodeSpO2, Value: 96, Time: t}, iomt.Observation{Code: CodePulse, Value: 80, Time: t})
	}
	obs = append(obs, iomt.Observation{Code: CodeSBP, Value: 120, Time: now.Add(-20 * time.Minute)},
		iomt.Observation{Code: CodeTemp, Value: 37, Time: now.Add(-time.Hour)})
	in := Inputs{Observations: obs, ACVPU: Alert, ACVPUTime: now.Add(-time.Hour / 2), OxygenTime: now.Add(-time.Hour / 2)}
	fresh := DefaultFreshness()
	for b.Loop() {
		a, err := Assess(now, in, fresh)
		if err != nil || !a.Complete {
			b.Fatal(a, err)
		}
	}
}
