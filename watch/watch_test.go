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
	recent := watch.NewRecent()
	w, err := watch.NewCGM(glucose.DefaultSettings(), func(p string, a glucose.Alert) {
		told = append(told, p+":"+string(a.Kind))
		recent.Add(p, a)
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 11, 24, 2, 0, 0, 0, time.UTC)
	batch := func(p string, at time.Time, v float64) iomt.Batch {
		return iomt.Batch{Patient: p, Observations: []iomt.Observation{{Patient: p, Code: watch.CGMCode, Time: at, Value: v}, {Patient: p, Code: "8867-4", Time: at, Value: 40}}}
	}
	_ = w.Deliver(context.Background(), batch("a", t0, 45)) // urgent low for a only
	_ = w.Deliver(context.Background(), batch("b", t0, 120))
	if len(recent.Alerts("b")) != 0 || len(recent.Alerts("a")) == 0 || recent.Alerts("a")[0].Kind != glucose.UrgentLow {
		t.Fatalf("alerts a=%v b=%v", recent.Alerts("a"), recent.Alerts("b"))
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

func TestCGMWatchForgetsPatientsItNoLongerOwns(t *testing.T) {
	var told []string
	w, err := watch.NewCGM(glucose.DefaultSettings(), func(p string, a glucose.Alert) { told = append(told, p+":"+string(a.Kind)) }, nil)
	if err != nil {
		t.Fatal(err)
	}
	owned := map[string]bool{"a": true, "b": true}
	w.Owns = func(p string) bool { return owned[p] }
	t0 := time.Now().Add(-time.Minute)
	for _, p := range []string{"a", "b"} {
		_ = w.Deliver(context.Background(), iomt.Batch{Patient: p, Observations: []iomt.Observation{{Patient: p, Code: watch.CGMCode, Time: t0, Value: 120}}})
	}
	// b's partition moved to another node: its silence here is not a signal loss.
	owned["b"] = false
	w.Tick(time.Now().Add(40 * time.Minute))
	if len(told) != 1 || told[0] != "a:"+string(glucose.SignalLoss) {
		t.Fatalf("told %v, want only a's signal loss", told)
	}
}

func TestRecentKeepsTheLatest(t *testing.T) {
	r := watch.NewRecent()
	t0 := time.Date(2026, 11, 24, 0, 0, 0, 0, time.UTC)
	for i := range 150 {
		r.Add("p", glucose.Alert{Time: t0.Add(time.Duration(i) * time.Minute), Kind: glucose.SignalLoss})
	}
	got := r.Alerts("p")
	if len(got) != 100 || !got[0].Time.Equal(t0.Add(50*time.Minute)) || !got[99].Time.Equal(t0.Add(149*time.Minute)) {
		t.Fatalf("kept %d alerts from %v to %v", len(got), got[0].Time, got[len(got)-1].Time)
	}
	if len(r.Alerts("q")) != 0 {
		t.Fatal("alerts for an unknown patient")
	}
}
