package watch

import (
	"context"
	"testing"
	"time"

	"github.com/iomt/iomt"
	"github.com/iomt/iomt/analytics/news2"
)

func obsBatch(patient, device string, at time.Time, kv ...any) iomt.Batch {
	b := iomt.Batch{Patient: patient, Device: device}
	for i := 0; i < len(kv); i += 2 {
		b.Observations = append(b.Observations, iomt.Observation{Patient: patient, Device: device, Code: kv[i].(string), Time: at, Value: kv[i+1].(float64)})
	}
	return b
}

// Missing inputs make an assessment that says so, never a score; the complete set scores as
// the chart does; an unchanged score is not told again until 15 minutes have passed; a
// parameter that goes stale makes it incomplete again on Tick.
func TestNEWS2Scorer(t *testing.T) {
	var told []NEWS2Score
	w := NewNEWS2(nil, func(s NEWS2Score) { told = append(told, s) })
	t0 := time.Now().Add(-time.Minute)
	ctx := context.Background()
	_ = w.Deliver(ctx, obsBatch("p", "d", t0, news2.CodeRespRate, 21.0, news2.CodeSpO2, 93.0, news2.CodeSBP, 120.0, news2.CodePulse, 95.0, news2.CodeTemp, 37.5))
	if len(told) != 1 || told[0].Store || told[0].Assessment.Result != nil || len(told[0].Assessment.Missing) != 2 {
		t.Fatalf("without consciousness and oxygen: %+v", told)
	}
	_ = w.Deliver(ctx, obsBatch("p", "chart", t0.Add(time.Second), ACVPUCode, 1.0, OxygenCode, 0.0))
	if len(told) != 2 || !told[1].Store || told[1].Assessment.Result == nil || told[1].Assessment.Result.Total != 5 {
		t.Fatalf("complete: %+v", told[len(told)-1])
	}
	_ = w.Deliver(ctx, obsBatch("p", "d", t0.Add(2*time.Second), news2.CodePulse, 96.0))
	if len(told) != 2 {
		t.Fatalf("an unchanged score was told again: %+v", told[2:])
	}
	_ = w.Deliver(ctx, obsBatch("p", "d", t0.Add(3*time.Second), news2.CodePulse, 112.0))
	if len(told) != 3 || told[2].Assessment.Result.Total != 6 || !told[2].Store {
		t.Fatalf("pulse 112 scores 2: %+v", told[len(told)-1])
	}
	// 20 minutes on, the continuous parameters (15 min) are stale.
	w.Tick(time.Now().Add(20 * time.Minute))
	last := told[len(told)-1]
	if last.Store || last.Assessment.Result != nil || len(last.Assessment.Stale) == 0 {
		t.Fatalf("after 20 minutes without readings: %+v", last)
	}
}
