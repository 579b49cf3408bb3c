package glucose

import (
	"testing"
	"time"
)

func TestTrendNeedsAFallInTheLastStep(t *testing.T) {
	// The same steep fall; only the last step differs.
	for _, c := range []struct {
		last float64
		fall bool // whether a fall below the last reading is forecast
	}{
		{last: 119, fall: false}, // 1 mg/dL: sensor resolution, the fall has flattened
		{last: 120, fall: false}, // flat
		{last: 125, fall: false}, // rising again
		{last: 118, fall: true},  // still falling by trendMinDrop
		{last: 112, fall: true},
	} {
		hist := series(150, 140, 130, 120, c.last)
		got, ok := (Trend{}).PredictMin(hist, 30*time.Minute)
		if !ok {
			t.Fatalf("last %v: no forecast", c.last)
		}
		if fell := got < c.last; fell != c.fall {
			t.Errorf("last reading %v: forecast minimum %.1f, fall forecast %v, want %v", c.last, got, fell, c.fall)
		}
	}
}

// beats is the bar: at least as many lows caught ≥ 15 min ahead and strictly fewer
// false alerts, or more caught and no more false alerts. Both runs cover the same days.
func beats(a, b PredictionResult) bool {
	return (a.Caught15 >= b.Caught15 && a.FalseAlerts < b.FalseAlerts) ||
		(a.Caught15 > b.Caught15 && a.FalseAlerts <= b.FalseAlerts)
}

func add(a, b PredictionResult) PredictionResult {
	a.Caught15 += b.Caught15
	a.FalseAlerts += b.FalseAlerts
	a.Alerts += b.Alerts
	a.Days += b.Days
	a.Lows = append(a.Lows, b.Lows...)
	return a
}

func evalFile(t *testing.T, name string, p Predictor) PredictionResult {
	t.Helper()
	ids, by := loadIglu(t, name)
	var sum PredictionResult
	for _, id := range ids {
		r, err := EvaluatePredictor(by[id], p, 30*time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		sum = add(sum, r)
	}
	return sum
}

// The predictor's constants were chosen on these same two files, so this is an in-sample check
// (docs/VALIDATION.md says so): it guards the figures the documentation reports.
func TestTrendBeatsAR2OnSharedData(t *testing.T) {
	var pooledT, pooledA PredictionResult
	for _, name := range []string{"example_data_hall.csv", "example_data_5_subject.csv"} {
		tr, ar := evalFile(t, name, Trend{}), evalFile(t, name, AR2{})
		t.Logf("%s: iomt %d/%d caught ≥15 min, %d false (%.3f/day); AR2 %d/%d, %d false (%.3f/day)", name,
			tr.Caught15, len(tr.Lows), tr.FalseAlerts, tr.FalsePerDay(), ar.Caught15, len(ar.Lows), ar.FalseAlerts, ar.FalsePerDay())
		if len(tr.Lows) != len(ar.Lows) || len(tr.Lows) == 0 {
			t.Fatalf("%s: %d and %d lows", name, len(tr.Lows), len(ar.Lows))
		}
		if !beats(tr, ar) {
			t.Errorf("%s: iomt does not beat AR2", name)
		}
		pooledT, pooledA = add(pooledT, tr), add(pooledA, ar)
	}
	if !beats(pooledT, pooledA) {
		t.Errorf("pooled: iomt %d caught, %d false; AR2 %d caught, %d false",
			pooledT.Caught15, pooledT.FalseAlerts, pooledA.Caught15, pooledA.FalseAlerts)
	}

	// Split check, reported rather than asserted: the Hall subjects in file order, alternately
	// into two halves. Within a half the two predictors need not be ranked the same way.
	ids, by := loadIglu(t, "example_data_hall.csv")
	var half [2][2]PredictionResult // [half][iomt, AR2]
	for i, id := range ids {
		for k, p := range []Predictor{Trend{}, AR2{}} {
			r, err := EvaluatePredictor(by[id], p, 30*time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			half[i%2][k] = add(half[i%2][k], r)
		}
	}
	for h, r := range half {
		t.Logf("Hall half %d (%.0f days, %d lows): iomt %d caught, %d false; AR2 %d caught, %d false; iomt ahead on both counts: %v",
			h+1, r[0].Days, len(r[0].Lows), r[0].Caught15, r[0].FalseAlerts, r[1].Caught15, r[1].FalseAlerts, beats(r[0], r[1]))
	}
}
