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
	w.Tick(t0.Add(40 * time.Minute)) // no data for 40 minutes: both patients
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
