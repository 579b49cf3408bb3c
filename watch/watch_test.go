package watch_test

import (
	"context"
	"testing"
	"time"

	"github.com/iomt/iomt"
	"github.com/iomt/iomt/analytics/glucose"
	"github.com/iomt/iomt/watch"
)

func TestCGMWatchPerPatientAndStale(t *testing.T) {
	var told []string
	w, err := watch.NewCGM(glucose.DefaultSettings(), func(p string, a glucose.Alert) { told = append(told, p+":"+string(a.Kind)) }, nil)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 11, 24, 2, 0, 0, 0, time.UTC)
	batch := func(p string, at time.Time, v float64) iomt.Batch {
		return iomt.Batch{Patient: p, Observations: []iomt.Observation{{Patient: p, Code: watch.CGMCode, Time: at, Value: v}, {Patient: p, Code: "8867-4", Time: at, Value: 40}}}
	}
	_ = w.Deliver(context.Background(), batch("a", t0, 45)) // urgent low for a only
	_ = w.Deliver(context.Background(), batch("b", t0, 120))
	if len(w.Alerts("b")) != 0 || len(w.Alerts("a")) == 0 || w.Alerts("a")[0].Kind != glucose.UrgentLow {
		t.Fatalf("alerts a=%v b=%v", w.Alerts("a"), w.Alerts("b"))
	}
	// Readings dated t0 arrived "now"; 40 minutes later nothing more has arrived.
	w.Tick(time.Now().Add(40 * time.Minute))
	var stale int
	for _, s := range told {
		if s == "a:"+string(glucose.SignalLoss) || s == "b:"+string(glucose.SignalLoss) {
			stale++
		}
	}
	if stale != 2 {
		t.Fatalf("told %v", told)
	}
}

// A device catching up with stored readings (dated hours ago, arriving now) is not stale.
func TestCGMWatchBackfillIsNotStale(t *testing.T) {
	var told []glucose.Alert
	w, _ := watch.NewCGM(glucose.DefaultSettings(), func(_ string, a glucose.Alert) { told = append(told, a) }, nil)
	old := time.Now().Add(-8 * time.Hour)
	for i := 0; i < 12; i++ {
		at := old.Add(time.Duration(i) * 5 * time.Minute)
		_ = w.Deliver(context.Background(), iomt.Batch{Patient: "p", Observations: []iomt.Observation{{Patient: "p", Code: watch.CGMCode, Time: at, Value: 120}}})
	}
	w.Tick(time.Now().Add(time.Minute))
	for _, a := range told {
		if a.Kind == glucose.Stale || a.Kind == glucose.SignalLoss {
			t.Fatalf("backfilled readings judged stale: %+v", told)
		}
	}
}
