package watch_test

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/iomt/iomt"
	"github.com/iomt/iomt/sensing"
	"github.com/iomt/iomt/watch"
)

// ecgBatches runs a scenario's ECG patch for d and hands each second of lead II to f as a
// batch, as ingest would store it.
func ecgBatches(t *testing.T, scenario string, d time.Duration, f func(iomt.Batch)) {
	t.Helper()
	start := time.Date(2026, 11, 24, 8, 0, 0, 0, time.UTC)
	p := sensing.NewPatient(sensing.Builtin()[scenario], 7, start)
	for now := start.Add(time.Second); !now.After(start.Add(d)); now = now.Add(time.Second) {
		for _, e := range p.Advance(now) {
			for _, c := range e.Chunks {
				if c.Code != sensing.CodeECGII {
					continue
				}
				wf := iomt.Waveform{Patient: "p1", Device: "patch", Code: c.Code, Start: c.Start, Period: c.Period, Scale: 0.001, Unit: "mV"}
				for _, v := range c.Values {
					wf.Samples = append(wf.Samples, int32(math.Round(v/0.001)))
				}
				f(iomt.Batch{Patient: "p1", Device: "patch", Waveforms: []iomt.Waveform{wf}})
			}
		}
	}
}

func TestECGWatchFindsAFOnset(t *testing.T) {
	checkAFOnset(t, func(int) bool { return true })
}

// A minute of ECG lost in transit (device out of range) must not shift the times of what
// follows: the monitor restarts at the gap rather than splice the two stretches.
func TestECGWatchRestartsAfterAGap(t *testing.T) {
	checkAFOnset(t, func(second int) bool { return second < 180 || second >= 240 })
}

func checkAFOnset(t *testing.T, deliver func(second int) bool) {
	t.Helper()
	var told []watch.Rhythm
	w := watch.NewECG(func(r watch.Rhythm) { told = append(told, r) }, nil)
	n := 0
	ecgBatches(t, "af-onset", 9*time.Minute, func(b iomt.Batch) {
		if deliver(n) {
			_ = w.Deliver(context.Background(), b)
		}
		n++
	})
	onsetAt := time.Date(2026, 11, 24, 8, 5, 0, 0, time.UTC)
	var af *watch.Rhythm
	for i, r := range told {
		if r.Kind == "af" && r.State == "started" {
			af = &told[i]
			break
		}
	}
	if af == nil {
		t.Fatalf("no AF onset reported; heard %+v", told)
	}
	if d := af.Onset.Sub(onsetAt); d < -30*time.Second || d > 90*time.Second {
		t.Errorf("AF dated %v, %v from the scenario's onset", af.Onset, d)
	}
	for _, r := range told {
		if r.Kind == "af" && r.Onset.Before(onsetAt.Add(-30*time.Second)) {
			t.Errorf("AF reported in sinus rhythm: %+v", r)
		}
	}
}
