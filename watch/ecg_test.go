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

// A patch that falls silent in AF: once it has sent nothing for the silence limit, the AF
// episode ends at its last sample, marked as the signal ending rather than the rhythm, and its
// last minutes are summarised without waiting for it to send again. When it does, a new
// monitor starts and no minute is told twice.
func TestECGWatchFlushesASilentLead(t *testing.T) {
	var told []watch.Rhythm
	var mins []watch.ECGMinute
	w := watch.NewECG(func(r watch.Rhythm) { told = append(told, r) }, nil)
	w.Minutes = func(m watch.ECGMinute) { mins = append(mins, m) }
	wall := time.Date(2026, 11, 24, 9, 0, 0, 0, time.UTC)
	watch.SetClock(w, func() time.Time { return wall })
	var last time.Time // end of the last segment delivered
	n := 0
	ecgBatches(t, "af-onset", 9*time.Minute, func(b iomt.Batch) {
		if n < 8*60 { // 8 minutes, then silence
			_ = w.Deliver(context.Background(), b)
			last = b.Waveforms[0].End()
		}
		n++
	})
	afOpen := func() bool {
		open := false
		for _, r := range told {
			if r.Kind == "af" {
				open = r.State == "started"
			}
		}
		return open
	}
	if !afOpen() {
		t.Fatalf("AF not open after 8 minutes, heard %+v", told)
	}
	before := len(mins)
	w.FlushSilent(wall.Add(watch.DefaultECGSilence - time.Second))
	if len(mins) != before || !afOpen() {
		t.Fatalf("flushed before the silence limit: %d minutes, %+v", len(mins)-before, told[len(told)-1])
	}

	w.FlushSilent(wall.Add(watch.DefaultECGSilence))
	end := told[len(told)-1]
	if afOpen() || end.Kind != "af" || end.State != "ended" || !end.SignalEnded || !end.Offset.Equal(last) {
		t.Fatalf("after silence, last told %+v, want AF ended at the last sample %v by the signal ending", end, last)
	}
	if len(mins) != 8 || !mins[7].Start.Equal(last.Truncate(time.Minute)) || !mins[7].AFKnown || mins[7].AFBurden < 95 {
		t.Fatalf("%d minutes summarised (%d before the flush), want 8 with the last in AF: %+v (last sample %v)", len(mins), before, mins[len(mins)-1], last)
	}
	for _, r := range told[:len(told)-1] {
		if r.SignalEnded {
			t.Errorf("%+v marked as ended by the signal", r)
		}
	}

	// A second sweep finds nothing more to tell; the patch coming back starts afresh.
	heard := len(told)
	w.FlushSilent(wall.Add(time.Hour))
	if len(told) != heard || len(mins) != 8 {
		t.Fatalf("second sweep told %+v", told[heard:])
	}
	wall = wall.Add(time.Hour)
	n = 0
	ecgBatches(t, "af-onset", 3*time.Minute, func(b iomt.Batch) {
		b.Waveforms[0].Start = b.Waveforms[0].Start.Add(time.Hour)
		_ = w.Deliver(context.Background(), b)
	})
	w.FlushSilent(wall.Add(watch.DefaultECGSilence))
	seen := map[time.Time]bool{}
	for _, m := range mins {
		if seen[m.Start] {
			t.Errorf("minute %v told twice", m.Start)
		}
		seen[m.Start] = true
	}
	if len(mins) != 11 {
		t.Errorf("%d minutes after the patch came back for 3 minutes, want 11", len(mins))
	}
}
