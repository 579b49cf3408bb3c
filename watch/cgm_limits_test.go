package watch

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/iomt/iomt"
	"github.com/iomt/iomt/analytics/glucose"
)

// Each patient's CGM alerts follow the limits of their registry record: 75 mg/dL is low for
// a patient whose clinician set the low at 80 and not for one on the defaults (70). A change
// of limits is picked up once the cached ones are LimitsTTL old; a failed registry read keeps
// the limits in use.
func TestCGMWatchPerPatientLimits(t *testing.T) {
	reg := &registry{pats: map[string]iomt.Patient{
		"own":      {ID: "own", CGMLimits: iomt.GlucoseLimits{UrgentLow: 60, Low: 80, High: 180, UrgentHigh: 250}},
		"defaults": {ID: "defaults"},
	}}
	clock := time.Now()
	var told []string
	w, err := NewCGM(glucose.DefaultSettings(), func(p string, a glucose.Alert) { told = append(told, p+":"+string(a.Kind)) }, nil)
	if err != nil {
		t.Fatal(err)
	}
	w.Patients, w.now = reg, func() time.Time { return clock }
	ctx := context.Background()
	t0 := clock.Add(-time.Hour)
	n := 0
	feed := func(patient string, mgdl float64) []string {
		t.Helper()
		told = nil
		n++
		b := iomt.Batch{Patient: patient, Observations: []iomt.Observation{{Patient: patient, Code: CGMCode, Time: t0.Add(time.Duration(n) * 5 * time.Minute), Value: mgdl}}}
		if err := w.Deliver(ctx, b); err != nil {
			t.Fatal(err)
		}
		return told
	}
	if got := feed("own", 75); len(got) != 1 || got[0] != "own:low" {
		t.Fatalf("75 mg/dL with a low of 80: %v", got)
	}
	if got := feed("defaults", 75); len(got) != 0 {
		t.Fatalf("75 mg/dL on the defaults: %v", got)
	}
	if got := feed("own", 190); len(got) != 1 || got[0] != "own:high" {
		t.Fatalf("190 mg/dL with a high of 180: %v", got)
	}

	// The clinician raises the low of "defaults" to 80: seen once the TTL has passed, not before.
	reg.mu.Lock()
	reg.pats["defaults"] = iomt.Patient{ID: "defaults", CGMLimits: iomt.GlucoseLimits{UrgentLow: 55, Low: 80, High: 250, UrgentHigh: 300}}
	reg.mu.Unlock()
	if got := feed("defaults", 76); len(got) != 0 {
		t.Fatalf("76 mg/dL before the cached limits expired: %v", got)
	}
	clock = clock.Add(DefaultLimitsTTL)
	if got := feed("defaults", 76); len(got) != 1 || got[0] != "defaults:low" {
		t.Fatalf("76 mg/dL once the new low of 80 was read: %v", got)
	}

	// The registry failing keeps the limits in use; a patient it does not know is on the defaults.
	reg.mu.Lock()
	reg.fail = errors.New("registry down")
	reg.mu.Unlock()
	clock = clock.Add(DefaultLimitsTTL)
	if got := feed("own", 100); len(got) != 0 {
		t.Fatal(got)
	}
	if got := feed("own", 185); len(got) != 1 || got[0] != "own:high" {
		t.Fatalf("185 mg/dL with the registry down, the cached high of 180: %v", got)
	}
	reg.mu.Lock()
	reg.fail = nil
	reg.mu.Unlock()
	if got := feed("stranger", 75); len(got) != 0 {
		t.Fatalf("75 mg/dL for a patient the registry does not know: %v", got)
	}
}
