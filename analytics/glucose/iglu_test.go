package glucose

import (
	"encoding/csv"
	"errors"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// igluData is the reference data directory (see its README), relative to this package.
var igluData = filepath.Join("..", "..", "..", "shared", "data", "cgm", "iglu")

// est is the data's fixed zone: Dexcom G4 wall clock at UTC−5.
var est = time.FixedZone("UTC-5", -5*3600)

// loadIglu reads id,time_est,time_utc,gl[,...] into readings per subject, in file order.
func loadIglu(tb testing.TB, name string) (ids []string, by map[string][]Reading) {
	tb.Helper()
	f, err := os.Open(filepath.Join(igluData, name))
	if errors.Is(err, os.ErrNotExist) {
		tb.Skipf("reference data %s absent: see ../shared/data/cgm/README.md", name)
	}
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	r := csv.NewReader(f)
	if _, err := r.Read(); err != nil {
		tb.Fatal(err)
	}
	by = map[string][]Reading{}
	for {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			tb.Fatal(err)
		}
		t, err := time.Parse(time.RFC3339, rec[2])
		if err != nil {
			tb.Fatal(err)
		}
		v, err := strconv.ParseFloat(rec[3], 64)
		if err != nil {
			continue // NA
		}
		if _, ok := by[rec[0]]; !ok {
			ids = append(ids, rec[0])
		}
		by[rec[0]] = append(by[rec[0]], Reading{Time: t, MgdL: v})
	}
	return ids, by
}

// signif rounds to n significant digits, as R's signif and the 3-digit tibble print.
func signif(x float64, n int) float64 {
	if x == 0 || math.IsNaN(x) || math.IsInf(x, 0) {
		return x
	}
	p := math.Pow(10, float64(n)-1-math.Floor(math.Log10(math.Abs(x))))
	return math.Round(x*p) / p
}

func sameTo3(got, want float64) bool {
	g := signif(got, 3)
	return math.Abs(g-want) <= 1e-9*math.Max(1, math.Abs(want))
}

// What iglu 4.3.0 prints for example_data_5_subject
// (../shared/data/cgm/iglu/iglu_pkgdown_example_outputs.txt).
var igluPrinted = map[string]map[string]float64{
	"Subject 1": {"mean": 124, "sd": 33.3, "cv": 26.9, "gmi": 6.27, "in_range_70_180": 91.7, "below_54": 0, "below_70": 0.137,
		"above_180": 8.20, "above_250": 0.377, "active_percent": 79.8, "ndays": 12.7, "conga": 37.0, "modd_lag2": 27.7, "mage": 72.4,
		"min": 66, "q25": 99, "median": 112, "q75": 143, "max": 276},
	"Subject 2": {"mean": 218, "sd": 52.4, "cv": 24.0, "gmi": 8.54, "in_range_70_180": 26.4, "below_54": 0, "below_70": 0,
		"above_180": 73.6, "above_250": 26.1, "active_percent": 58.9, "ndays": 16.7, "conga": 60.6, "modd_lag2": 46.0, "mage": 118,
		"min": 90, "q25": 179, "median": 211, "q75": 253, "max": 400},
	"Subject 3": {"mean": 154, "sd": 44.8, "cv": 29.1, "gmi": 6.99, "in_range_70_180": 81.3, "below_54": 0, "below_70": 0.326,
		"above_180": 18.3, "above_250": 5.68, "active_percent": 92.1, "ndays": 5.8, "conga": 63.4, "modd_lag2": 47.1, "mage": 116,
		"min": 60, "q25": 125, "median": 140, "q75": 173, "max": 304},
	"Subject 4": {"mean": 130, "sd": 29.1, "cv": 22.4, "gmi": 6.41, "in_range_70_180": 95.1, "below_54": 0.0546, "below_70": 0.273,
		"above_180": 4.61, "above_250": 0, "active_percent": 98.7, "ndays": 12.9, "conga": 33.5, "modd_lag2": 24.9, "mage": 70.9,
		"min": 50, "q25": 109, "median": 126, "q75": 149, "max": 232},
	"Subject 5": {"mean": 175, "sd": 58.6, "cv": 33.5, "gmi": 7.49, "in_range_70_180": 62.1, "below_54": 0, "below_70": 0.103,
		"above_180": 37.8, "above_250": 11.3, "active_percent": 95.8, "ndays": 10.6, "conga": 73.8, "modd_lag2": 56.0, "mage": 142,
		"min": 66, "q25": 134, "median": 164, "q75": 211, "max": 398},
}

func TestMatchesIglu(t *testing.T) {
	ids, by := loadIglu(t, "example_data_5_subject.csv")
	if len(ids) != 5 {
		t.Fatalf("%d subjects", len(ids))
	}
	for _, id := range ids {
		s := Summarize(by[id], est)
		g := DayByDay(by[id], 0, DefaultInterGap, est)
		got := map[string]float64{
			"mean": s.Mean, "sd": s.SD, "cv": s.CV, "gmi": s.GMI, "in_range_70_180": s.InRange,
			"below_54": s.Below54, "below_70": s.Below70, "above_180": s.Above180, "above_250": s.Above250,
			"active_percent": s.ActivePct, "conga": s.CONGA, "modd_lag2": MODD(g, 2), "mage": s.MAGE,
			"min": s.Quartiles[0], "q25": s.Quartiles[1], "median": s.Quartiles[2], "q75": s.Quartiles[3], "max": s.Quartiles[4],
		}
		// ndays is printed rounded to one decimal, not to 3 significant digits.
		if nd := math.Round(s.Days*10) / 10; nd != igluPrinted[id]["ndays"] {
			t.Errorf("%s ndays = %.1f, iglu %.1f", id, nd, igluPrinted[id]["ndays"])
		}
		for k, want := range igluPrinted[id] {
			if k == "ndays" {
				continue
			}
			if !sameTo3(got[k], want) {
				t.Errorf("%s %s = %.6g, iglu prints %g", id, k, got[k], want)
			}
		}
	}
}

func TestMatchesIgluOneSubject(t *testing.T) {
	ids, by := loadIglu(t, "example_data_1_subject.csv")
	if len(ids) != 1 {
		t.Fatalf("%d subjects", len(ids))
	}
	g := DayByDay(by[ids[0]], 0, DefaultInterGap, est)
	// modd(example_data_1_subject) = 27.8; the vignette's gd2d starts NA 112.2 92 90.1 143.1
	// down the first column (days 1..5 at 00:05).
	if m := MODD(g, 1); !sameTo3(m, 27.8) {
		t.Errorf("MODD = %.6g, iglu 27.8", m)
	}
	col := []float64{math.NaN(), 112.2, 92, 90.1, 143.1}
	for d, want := range col {
		got := g.At(d, 0)
		if math.IsNaN(want) != math.IsNaN(got) || (!math.IsNaN(want) && math.Abs(got-want) > 0.051) {
			t.Errorf("gd2d[%d,1] = %.4g, iglu %v", d+1, got, want)
		}
	}
	if g.Days != 14 || g.PerDay() != 288 {
		t.Errorf("grid %d×%d, iglu 14×288", g.Days, g.PerDay())
	}
}
