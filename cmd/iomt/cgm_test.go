package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const cgmShared = "../../../shared/data/cgm/iglu"

func runCGM(args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = cgmCommand(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

func needCGMData(t *testing.T, name string) string {
	t.Helper()
	p := filepath.Join(cgmShared, name)
	if _, err := os.Stat(p); err != nil {
		t.Skipf("reference data %s absent (%v): see ../shared/data/cgm/README.md", p, err)
	}
	return p
}

func TestCGMUsage(t *testing.T) {
	cases := []struct {
		args []string
		code int
		want string
	}{
		{nil, 2, "Usage:"},
		{[]string{"frobnicate"}, 2, `unknown subcommand "frobnicate"`},
		{[]string{"help"}, 0, ""},
		{[]string{"report"}, 2, "--csv FILE is required"},
		{[]string{"report", "--csv", "x.csv", "--format", "medtronic"}, 2, "--format must be generic, dexcom or libre"},
		{[]string{"report", "--csv", "x.csv", "--tz", "Mars/Olympus"}, 2, `unknown time zone "Mars/Olympus"`},
		{[]string{"report", "--csv", "x.csv", "--tz", "UTC+25:00"}, 2, "is not UTC±hh:mm"},
		{[]string{"report", "--csv", "x.csv", "extra"}, 2, `unexpected argument "extra"`},
		{[]string{"report", "--csv", "x.csv", "--unit", "mg"}, 2, "--unit must be mg/dL or mmol/L"},
		{[]string{"report", "--nope"}, 2, "flag provided but not defined"},
		{[]string{"report", "-h"}, 0, "-csv"},
		{[]string{"report", "--csv", "does-not-exist.csv"}, 1, "no such file"},
		{[]string{"eval-predict", "--csv", "x.csv", "--horizon", "2h"}, 2, "--horizon must be between 5m and 1h"},
	}
	for _, c := range cases {
		code, out, errOut := runCGM(c.args...)
		if code != c.code || !strings.Contains(out+errOut, c.want) {
			t.Errorf("cgm %q: exit %d, output %q; want exit %d and %q", c.args, code, out+errOut, c.code, c.want)
		}
	}
}

func TestCGMTimeZone(t *testing.T) {
	p := filepath.Join(t.TempDir(), "x.csv")
	if err := os.WriteFile(p, []byte("id,time,glucose\na,2024-01-01 10:00,100\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// --tz defaults to UTC and says so; an empty zone is refused rather than read as UTC.
	if code, _, errOut := runCGM("report", "--csv", p, "--tz", ""); code != 2 || !strings.Contains(errOut, "--tz") {
		t.Errorf("empty --tz: exit %d (%s)", code, errOut)
	}
	if code, out, errOut := runCGM("report", "--csv", p); code != 0 || !strings.Contains(out, "times in UTC") {
		t.Errorf("exit %d: %s %s", code, out, errOut)
	}
}

func TestCGMReportClarityJSONAndHTML(t *testing.T) {
	html := filepath.Join(t.TempDir(), "agp.html")
	code, out, errOut := runCGM("report", "--csv", "../../wire/cgmcsv/testdata/clarity_mgdl.csv",
		"--tz", "America/New_York", "--json", "--html", html)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var doc struct {
		Format   string `json:"format"`
		Skipped  []struct{ Line int }
		Subjects []struct {
			ID      string `json:"id"`
			Summary struct {
				Readings int      `json:"readings"`
				Below54  float64  `json:"below_54"`
				MAGE     *float64 `json:"mage"`
			} `json:"summary"`
		} `json:"subjects"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("%v in %s", err, out)
	}
	if doc.Format != "dexcom" || len(doc.Subjects) != 1 || doc.Subjects[0].ID != "Jane Doe" || doc.Subjects[0].Summary.Readings != 40 {
		t.Fatalf("%+v", doc)
	}
	if len(doc.Skipped) != 12 {
		t.Errorf("%d skipped rows reported", len(doc.Skipped))
	}
	if m := doc.Subjects[0].Summary.MAGE; m == nil || *m < 300 {
		t.Errorf("MAGE %v: the export climbs from Low to High", m)
	}
	// Ten readings are too few for MAGE: JSON says null rather than failing on NaN.
	code, out, errOut = runCGM("report", "--csv", "../../wire/cgmcsv/testdata/clarity_mmol.csv", "--tz", "America/New_York", "--json")
	if code != 0 || !strings.Contains(out, `"mage": null`) {
		t.Errorf("exit %d, %s: MAGE not null in\n%s", code, errOut, out)
	}
	b, err := os.ReadFile(html)
	if err != nil {
		t.Fatal(err)
	}
	page := string(b)
	for _, want := range []string{"AGP Report", "Jane Doe", "<svg", "Time in ranges", "Daily glucose profiles"} {
		if !strings.Contains(page, want) {
			t.Errorf("HTML report lacks %q", want)
		}
	}
	// Offline: nothing is fetched from elsewhere.
	for _, bad := range []string{`src="http`, `href="http`, "@import"} {
		if strings.Contains(page, bad) {
			t.Errorf("HTML report loads %s", bad)
		}
	}
}

func TestCGMReportMatchesIglu(t *testing.T) {
	p := needCGMData(t, "example_data_5_subject.csv")
	code, out, errOut := runCGM("report", "--csv", p, "--tz", "UTC-05:00")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	// Subject 1 as iglu prints it: active 79.8 %, mean 124, CV 26.9, GMI 6.27, MAGE 72.4,
	// CONGA 37.0, MODD 27.8.
	line := ""
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, "Subject 1") && line == "" { // the table row, not the note below it
			line = l
		}
	}
	// Every metric of the row, to 3 significant digits, as iglu prints it.
	for _, want := range []string{"79.8", " 124 ", "33.3", "26.9", "6.27", " 0.137 ", "91.7", "8.20", "0.377", "72.4", "37.0", "27.8"} {
		if !strings.Contains(line, want) {
			t.Errorf("Subject 1 row %q lacks %s", line, want)
		}
	}
}

// evalPredictJSON runs eval-predict --json on a shared iglu file.
func evalPredictJSON(t *testing.T, name string) (path string, doc cgmPredictDoc) {
	t.Helper()
	path = needCGMData(t, name)
	code, out, errOut := runCGM("eval-predict", "--csv", path, "--tz", "UTC-05:00", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Pooled) != 2 || doc.Pooled[0].Predictor != "iomt-trend" || doc.Pooled[1].Predictor != "nightscout-ar2" {
		t.Fatalf("pooled rows %+v, want iomt-trend then nightscout-ar2", doc.Pooled)
	}
	return path, doc
}

func TestCGMEvalPredictBeatsAR2(t *testing.T) {
	p, doc := evalPredictJSON(t, "example_data_hall.csv")
	iomt, ar2 := doc.Pooled[0], doc.Pooled[1]
	t.Logf("iomt: %d/%d lows caught ≥15 min, %.3f false/day; AR2: %d/%d, %.3f false/day",
		iomt.Caught15, iomt.Lows, iomt.FalsePerDay, ar2.Caught15, ar2.Lows, ar2.FalsePerDay)
	if iomt.Lows != ar2.Lows || iomt.Lows < 50 {
		t.Fatalf("lows %d vs %d", iomt.Lows, ar2.Lows)
	}
	if !(iomt.CaughtShare > ar2.CaughtShare && iomt.FalsePerDay < ar2.FalsePerDay) {
		t.Errorf("iomt does not beat AR2 on both counts")
	}
	if v := doc.Verdict; !v.Both || v.Caught != "ahead" || v.FalseAlert != "ahead" {
		t.Errorf("verdict %+v", v)
	}
	// The Hall subjects wore sensors for about 123 days spread over 634 calendar days; false
	// alerts are per day with data, not diluted by the gaps.
	if !(120 < iomt.Days && iomt.Days < 125 && 630 < iomt.SpanDays && iomt.SpanDays < 640) {
		t.Errorf("days with data %.1f, span %.1f", iomt.Days, iomt.SpanDays)
	}
	if got := float64(iomt.FalseAlerts) / iomt.Days; got != iomt.FalsePerDay { // exact: JSON round-trips float64
		t.Errorf("false/day %.3f, want %.3f", iomt.FalsePerDay, got)
	}
	code, text, _ := runCGM("eval-predict", "--csv", p, "--tz", "UTC-05:00")
	if code != 0 || !strings.Contains(text, "nightscout-ar2") || !strings.Contains(text, "false/day") ||
		!strings.Contains(text, "122.6 days with data (634.1 days first to last reading)") {
		t.Errorf("text output:\n%s", text)
	}
}

// The 5-subject file, where iomt had tied AR2 on false alerts until the rule for a fall that
// is ending: ahead on both counts there too.
func TestCGMEvalPredictBeatsAR2OnFiveSubjects(t *testing.T) {
	_, doc := evalPredictJSON(t, "example_data_5_subject.csv")
	iomt, ar2 := doc.Pooled[0], doc.Pooled[1]
	t.Logf("iomt: %d/%d lows caught ≥15 min, %d false; AR2: %d/%d, %d false",
		iomt.Caught15, iomt.Lows, iomt.FalseAlerts, ar2.Caught15, ar2.Lows, ar2.FalseAlerts)
	if v := doc.Verdict; !v.Both || v.Caught != "ahead" || v.FalseAlert != "ahead" {
		t.Errorf("verdict %+v", v)
	}
}

// The verdict line names each count ahead, tied or behind, and "ahead on both" only when it is.
func TestCGMVerdict(t *testing.T) {
	row := func(caught, falseAlerts int) cgmPredictRow {
		return cgmPredictRow{Caught15: caught, FalseAlerts: falseAlerts, FalsePerDay: float64(falseAlerts) / 50}
	}
	for _, c := range []struct {
		a, b          cgmPredictRow
		caught, false string
		both          bool
	}{
		{row(21, 77), row(19, 102), "ahead", "ahead", true},
		{row(2, 4), row(1, 4), "ahead", "tied", false},
		{row(1, 3), row(1, 4), "tied", "ahead", false},
		{row(15, 59), row(19, 100), "behind", "ahead", false},
	} {
		v := verdict(c.a, c.b)
		if v.Caught != c.caught || v.FalseAlert != c.false || v.Both != c.both {
			t.Errorf("%+v vs %+v: %+v", c.a, c.b, v)
		}
	}
}
