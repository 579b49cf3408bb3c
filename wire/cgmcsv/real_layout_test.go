package cgmcsv

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/iomt/iomt"
)

// The fixtures real_*.csv hold made-up readings in the exact byte layout of real exports found
// in public repositories (each test names the file it mirrors): quoting, BOM, line endings,
// ragged rows, column names, date formats and row order are copied, the values are not.

// Mirrors GlucoTrack-Cooperatives/Diabetes_Management_Frontend, assets/data/Dexcom_data.csv
// (a Dexcom G7 Clarity export, 2025): UTF-8 BOM, every field double-quoted, CRLF, a preamble of
// FirstName/LastName/Device and seven Alert rows with 13 fields (no Transmitter ID), EGV rows
// with 14 fields and a 12-digit G7 transmitter id, timed rows sorted by time with Index 1..n.
func TestRealClarityG7Quoted(t *testing.T) {
	ny := mustZone(t, "America/New_York")
	res := parseFile(t, "real_clarity_g7_quoted.csv", Options{Location: ny})
	if res.Format != Dexcom || res.Unit != MgdL || len(res.Readings) != 16 {
		t.Fatalf("format %q unit %q, %d readings (want dexcom, mg/dL, 16); skipped:\n%s",
			res.Format, res.Unit, len(res.Readings), reasons(res))
	}
	if got := res.Readings[0].Subject; got != "Alex Sample" {
		t.Errorf("subject %q, want the export's first and last name", got)
	}
	if got := res.Readings[0].Time.UTC().Format(time.RFC3339); got != "2025-11-21T05:17:19Z" {
		t.Errorf("2025-11-21T00:17:19 EST read as %s", got)
	}
	if res.Substituted != 3 {
		t.Errorf("substituted %d Low/High, want 3", res.Substituted)
	}
	if r := res.Readings[9]; r.Marker != BelowRange || r.MgdL != DexcomLow {
		t.Errorf("quoted \"Low\" read as %+v", r)
	}
	if r := res.Readings[15]; r.Marker != AboveRange || r.MgdL != DexcomHigh {
		t.Errorf("quoted \"High\" read as %+v", r)
	}
	got := reasons(res)
	if n := strings.Count(got, "Alert event row"); n != 7 {
		t.Errorf("%d Alert rows skipped, want 7:\n%s", n, got)
	}
	for _, w := range []string{"patient information row (FirstName)", "patient information row (LastName)",
		"Device event row", "Insulin event row"} {
		if !strings.Contains(got, w) {
			t.Errorf("no skip reason %q in:\n%s", w, got)
		}
	}
}

// Mirrors mrvisser/qh-charts, src/etc/sample/JohnnyBGood_glucose_29-3-2021.csv (a LibreView
// export of a day-first, 24-hour, mmol/L account): title row, the 19-column header with
// "Long-Acting Insulin (units)", DD-MM-YYYY HH:mm, one decimal, lows written as the 2.2 mmol/L
// floor rather than "LO", and scan and event rows after the historic rows, out of time order.
func TestRealLibreViewDayFirstMmol(t *testing.T) {
	london := mustZone(t, "Europe/London")
	res := parseFile(t, "real_libreview_dayfirst_mmol.csv", Options{Location: london})
	if res.Format != Libre || res.Unit != MmolL || len(res.Readings) != 10 {
		t.Fatalf("format %q unit %q, %d readings (want libre, mmol/L, 10); skipped:\n%s",
			res.Format, res.Unit, len(res.Readings), reasons(res))
	}
	if got := res.Readings[0].Subject; got != "Sam Example" {
		t.Errorf("subject %q", got)
	}
	// 16-03-2021 is only day-first; GMT applies in March before the clocks change.
	if got := res.Readings[0].Time.UTC().Format(time.RFC3339); got != "2021-03-16T23:01:00Z" {
		t.Errorf("16-03-2021 23:01 read as %s", got)
	}
	floor := res.Readings[4]
	if floor.Marker != Measured || math.Abs(floor.MgdL-2.2*iomt.MgdLPerMmolL) > 1e-9 {
		t.Errorf("2.2 mmol/L floor read as %+v", floor)
	}
	got := reasons(res)
	if n := strings.Count(got, "scan glucose row"); n != 2 {
		t.Errorf("%d scan rows skipped, want 2:\n%s", n, got)
	}
	if !strings.Contains(got, "date change row") || !strings.Contains(got, "LibreView title row") {
		t.Errorf("event or title row not skipped with its reason:\n%s", got)
	}
}

// Mirrors jeffreyruoss/cgm-food-repsonse-assessment, sample-data/libre-3-plug-cgm-data.csv (a
// US LibreView export, 2026): device "Libre app" with a lower-case UUID, MM-DD-YYYY on a 12-hour
// clock with AM/PM (12:00 AM is midnight, 12:04 PM is noon), readings about 5 minutes apart.
func TestRealLibreViewUSAmPm(t *testing.T) {
	chicago := mustZone(t, "America/Chicago")
	res := parseFile(t, "real_libreview_us_ampm.csv", Options{Location: chicago})
	if res.Format != Libre || res.Unit != MgdL || len(res.Readings) != 12 {
		t.Fatalf("format %q unit %q, %d readings (want libre, mg/dL, 12); skipped:\n%s",
			res.Format, res.Unit, len(res.Readings), reasons(res))
	}
	for i, want := range map[int]string{
		0:  "2026-01-03T05:40:00Z", // 01-02-2026 11:40 PM CST
		4:  "2026-01-03T06:00:00Z", // 12:00 AM: midnight
		9:  "2026-01-03T18:04:00Z", // 12:04 PM: just after noon
		11: "2026-01-03T19:04:00Z", // 01:04 PM
	} {
		if got := res.Readings[i].Time.UTC().Format(time.RFC3339); got != want {
			t.Errorf("reading %d at %s, want %s", i, got, want)
		}
	}
	for i := 1; i < len(res.Readings); i++ {
		if !res.Readings[i].Time.After(res.Readings[i-1].Time) {
			t.Fatalf("reading %d (%v) not after reading %d (%v): AM/PM misread", i, res.Readings[i].Time, i-1, res.Readings[i-1].Time)
		}
	}
	got := reasons(res)
	if !strings.Contains(got, "scan glucose row") || !strings.Contains(got, "food row") {
		t.Errorf("scan or food row not skipped with its reason:\n%s", got)
	}
}
