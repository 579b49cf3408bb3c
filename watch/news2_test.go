package watch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
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

// registry is a PatientReader over a map; fail, if set, is every read's error.
type registry struct {
	mu    sync.Mutex
	pats  map[string]iomt.Patient
	reads int
	fail  error
}

func (r *registry) Patient(_ context.Context, id string) (iomt.Patient, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reads++
	if r.fail != nil {
		return iomt.Patient{}, r.fail
	}
	p, ok := r.pats[id]
	if !ok {
		return iomt.Patient{}, fmt.Errorf("patient %q: %w", id, iomt.ErrNotFound)
	}
	return p, nil
}

func (r *registry) setScale(id string, scale int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	p := r.pats[id]
	p.SpO2Scale = scale
	r.pats[id] = p
}

// The same observations score differently on the patient's SpO2 scale, read from the
// registry: on oxygen, SpO2 90 % scores 3 on scale 1 but 0 on scale 2 (88–92 %), and 97 %
// scores 0 on scale 1 but 3 on scale 2. A changed scale is picked up once the cached one is
// ScaleTTL old, and rescores the patient without a new reading.
func TestNEWS2PerPatientScale(t *testing.T) {
	reg := &registry{pats: map[string]iomt.Patient{ // "gone" is unknown to it: scale 1
		"unset": {ID: "unset"},              // 0: scale 1
		"one":   {ID: "one", SpO2Scale: 1},  // scale 1
		"two":   {ID: "two", SpO2Scale: 2},  // scale 2: hypercapnic respiratory failure
		"high":  {ID: "high", SpO2Scale: 2}, // scale 2, over-oxygenated
		"high1": {ID: "high1"},              // scale 1, the same readings as "high"
		"bad":   {ID: "bad", SpO2Scale: 7},  // a record no store would write
	}}
	clock := time.Now()
	last := map[string]NEWS2Score{}
	w := NewNEWS2(nil, func(s NEWS2Score) { last[s.Patient] = s })
	w.Patients, w.now = reg, func() time.Time { return clock }
	ctx := context.Background()
	t0 := time.Now().Add(-time.Minute)
	// RR 18, SBP 120, pulse 80, 37.0 °C and alert all score 0; oxygen 2 L/min scores 2.
	n := 0
	feed := func(patient string, spo2 float64) {
		t.Helper()
		n++ // a newer reading each time: an older one would not replace the latest
		_ = w.Deliver(ctx, obsBatch(patient, "d", t0.Add(time.Duration(n)*time.Millisecond), news2.CodeRespRate, 18.0, news2.CodeSpO2, spo2, news2.CodeSBP, 120.0,
			news2.CodePulse, 80.0, news2.CodeTemp, 37.0, ACVPUCode, 1.0, OxygenCode, 2.0))
	}
	check := func(patient string, scale news2.Scale, spo2Sub, total int) {
		t.Helper()
		s, ok := last[patient]
		if !ok || s.Assessment.Result == nil {
			t.Fatalf("%s: no score: %+v", patient, s)
		}
		if r := s.Assessment.Result; s.Scale != scale || r.Sub.SpO2 != spo2Sub || r.Total != total || !s.Store {
			t.Fatalf("%s: scale %d, SpO2 sub-score %d, total %d, store %v; want scale %d, %d, %d, stored",
				patient, s.Scale, r.Sub.SpO2, r.Total, s.Store, scale, spo2Sub, total)
		}
		if data, _ := json.Marshal(s); !strings.Contains(string(data), fmt.Sprintf(`"scale":%d`, scale)) {
			t.Fatalf("%s: the event does not say the scale: %s", patient, data)
		}
	}
	for _, p := range []string{"unset", "one", "two", "gone"} {
		feed(p, 90)
	}
	feed("high", 97)
	feed("high1", 97)
	check("unset", news2.Scale1, 3, 5)
	check("one", news2.Scale1, 3, 5)
	check("gone", news2.Scale1, 3, 5)
	check("two", news2.Scale2, 0, 2)
	check("high", news2.Scale2, 3, 5)
	check("high1", news2.Scale1, 0, 2)
	if last["two"].Assessment.Result.Band != news2.Low || last["one"].Assessment.Result.Band != news2.Medium {
		t.Fatalf("bands: scale 2 %v, scale 1 %v", last["two"].Assessment.Result.Band, last["one"].Assessment.Result.Band)
	}

	// A scale the scorer cannot trust is not guessed: no score, the scale named as missing.
	feed("bad", 90)
	if s := last["bad"]; s.Assessment.Result != nil || !slices.Contains(s.Assessment.Missing, ParamSpO2Scale) || s.Scale != 0 || s.Store {
		t.Fatalf("invalid scale in the record: %+v", s)
	}

	// The clinician moves "two" to scale 1. Within the TTL the cached scale stands.
	reg.setScale("two", 1)
	reads := reg.reads
	feed("two", 90)
	w.RefreshScales(ctx)
	w.Tick(time.Now())
	if reg.reads != reads || last["two"].Scale != news2.Scale2 {
		t.Fatalf("re-read %d times within the TTL; scale %d", reg.reads-reads, last["two"].Scale)
	}
	// Past it, the next tick reads it again and rescores with no new reading.
	clock = clock.Add(DefaultScaleTTL + time.Second)
	delete(last, "two")
	w.RefreshScales(ctx)
	w.Tick(time.Now())
	check("two", news2.Scale1, 3, 5)

	// A registry that cannot answer: a patient never read is not scored, and the SpO2
	// sub-score (which depends on the scale) is left out of the partial sum; a patient whose
	// scale is known keeps it.
	reg.mu.Lock()
	reg.fail = errors.New("registry down")
	reg.mu.Unlock()
	feed("new", 90)
	s := last["new"]
	if s.Assessment.Result != nil || !slices.Contains(s.Assessment.Missing, ParamSpO2Scale) || s.Assessment.Partial != 2 || s.Store {
		t.Fatalf("scale unreadable: %+v", s)
	}
	clock = clock.Add(DefaultScaleTTL + time.Second)
	feed("high", 96) // scale 2 on oxygen: 95–96 scores 2
	check("high", news2.Scale2, 2, 4)
	// Once the registry answers again (after the short retry), "new" is scored.
	reg.mu.Lock()
	reg.fail = nil
	reg.pats["new"] = iomt.Patient{ID: "new", SpO2Scale: 2}
	reg.mu.Unlock()
	clock = clock.Add(registryRetry)
	feed("new", 90)
	check("new", news2.Scale2, 0, 2)
}

// An SpO2 sent with the oximeter's own word that its signal is poor is not scored; one sent
// with a clear status (or low perfusion alone) is.
func TestNEWS2IgnoresSpO2TheOximeterDistrusts(t *testing.T) {
	var told []NEWS2Score
	w := NewNEWS2(nil, func(s NEWS2Score) { told = append(told, s) })
	t0 := time.Now().Add(-time.Minute)
	ctx := context.Background()
	_ = w.Deliver(ctx, obsBatch("p", "chart", t0, ACVPUCode, 1.0, OxygenCode, 0.0))
	_ = w.Deliver(ctx, obsBatch("p", "monitor", t0, news2.CodeRespRate, 16.0, news2.CodeSBP, 120.0, news2.CodePulse, 70.0, news2.CodeTemp, 37.0))
	_ = w.Deliver(ctx, obsBatch("p", "ox", t0.Add(time.Second), news2.CodeSpO2, 97.0, "MDC_PULS_OXIM_DEV_STATUS", 0.0))
	if last := told[len(told)-1]; last.Assessment.Result == nil || last.Assessment.Result.Total != 0 {
		t.Fatalf("SpO2 97 with a clear status: %+v", last)
	}
	// A poor signal (0x0010): SpO2 84 would score 3; it is not scored, the 97 stands.
	_ = w.Deliver(ctx, obsBatch("p", "ox", t0.Add(2*time.Second), news2.CodeSpO2, 84.0, "MDC_PULS_OXIM_DEV_STATUS", 16.0))
	if last := told[len(told)-1]; last.Assessment.Result == nil || last.Assessment.Result.Total != 0 {
		t.Fatalf("SpO2 84 with a poor signal was scored: %+v", last)
	}
	// Low perfusion alone (0x0020) is the patient's state: SpO2 84 scores 3.
	_ = w.Deliver(ctx, obsBatch("p", "ox", t0.Add(3*time.Second), news2.CodeSpO2, 84.0, "MDC_PULS_OXIM_DEV_STATUS", 32.0))
	if last := told[len(told)-1]; last.Assessment.Result == nil || last.Assessment.Result.Total != 3 {
		t.Fatalf("SpO2 84 with low perfusion: %+v", last)
	}
}
