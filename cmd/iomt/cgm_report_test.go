package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeCGM(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "cgm.csv")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestCGMReportUsageNamesEveryFlag(t *testing.T) {
	_, out, _ := runCGM("help")
	for _, flag := range []string{"--csv", "--format", "--unit", "--subject", "--tz", "--json", "--html"} {
		if !strings.Contains(out, flag) {
			t.Errorf("usage lacks %s:\n%s", flag, out)
		}
	}
}

// "Local" would silently be the machine's zone; a report must say which zone it used.
func TestCGMReportRefusesLocalZone(t *testing.T) {
	p := writeCGM(t, "id,time,glucose\na,2024-01-01 10:00,100\n")
	code, _, errOut := runCGM("report", "--csv", p, "--tz", "Local")
	if code != 2 || !strings.Contains(errOut, `"Local"`) || !strings.Contains(errOut, "IANA name") {
		t.Errorf("--tz Local: exit %d, %q", code, errOut)
	}
	for _, tz := range []string{"UTC", "Europe/Paris", "UTC+01:00"} {
		if code, _, errOut := runCGM("report", "--csv", p, "--tz", tz); code != 0 {
			t.Errorf("--tz %s: exit %d, %s", tz, code, errOut)
		}
	}
}

func TestCGMReportWarnsOfWallClockAsUTC(t *testing.T) {
	wall := writeCGM(t, "id,time,glucose\na,2024-01-01 10:00,100\n")
	code, _, errOut := runCGM("report", "--csv", wall)
	if code != 0 || !strings.Contains(errOut, "warning") || !strings.Contains(errOut, "taken as UTC") || strings.Count(errOut, "\n") != 1 {
		t.Errorf("wall clock without --tz: exit %d, stderr %q; want a one-line warning", code, errOut)
	}
	// Named zone, or times that carry their offset: nothing to warn about.
	if _, _, errOut := runCGM("report", "--csv", wall, "--tz", "UTC"); errOut != "" {
		t.Errorf("--tz UTC given: stderr %q", errOut)
	}
	rfc := writeCGM(t, "id,time,glucose\na,2024-01-01T10:00:00Z,100\n")
	if _, _, errOut := runCGM("report", "--csv", rfc); errOut != "" {
		t.Errorf("RFC 3339 times: stderr %q", errOut)
	}
}

func TestCGMReportShowsSkipReasons(t *testing.T) {
	// Nothing usable: the error names the reasons.
	for ts, want := range map[string]string{
		"1700000000":       `line 2: timestamp "1700000000" is not RFC 3339`,
		"01/02/2024 08:00": `line 2: timestamp "01/02/2024 08:00" is not RFC 3339`,
	} {
		p := writeCGM(t, "id,time,glucose\na,"+ts+",100\na,"+ts+",110\n")
		code, _, errOut := runCGM("report", "--csv", p, "--tz", "UTC")
		if code != 1 || !strings.Contains(errOut, "2 rows skipped") || !strings.Contains(errOut, want) {
			t.Errorf("%s: exit %d, %q; want %s", ts, code, errOut, want)
		}
	}
	// Some rows usable: the text report counts the skipped ones and shows the first reasons,
	// unusable readings before rows that carry none, at most three.
	code, out, errOut := runCGM("report", "--csv", "../../wire/cgmcsv/testdata/clarity_mgdl.csv", "--tz", "America/New_York")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if !strings.Contains(out, "12 rows skipped") || !strings.Contains(out, "skipped line 2: patient information row (FirstName); line 3:") ||
		!strings.Contains(out, "(--json lists all)") {
		t.Errorf("skip reasons missing:\n%s", out)
	}
	p := writeCGM(t, "id,time,glucose\na,2024-01-01T10:00:00Z,100\na,1700000000,100\na,2024-01-01T10:05:00Z,abc\n")
	_, out, _ = runCGM("report", "--csv", p)
	if !strings.Contains(out, `skipped line 3: timestamp "1700000000" is not RFC 3339 nor YYYY-MM-DD hh:mm[:ss]; line 4: glucose "abc" is not a number`+"\n") {
		t.Errorf("skip reasons missing:\n%s", out)
	}
}

func TestCGMReportSignificantDigits(t *testing.T) {
	for x, want := range map[float64]string{0: "0", 0.13716: "0.137", 0.05463: "0.0546", 123.67: "124", 26.904: "26.9",
		6.268: "6.27", 8.199: "8.20", 37.03: "37.0", 99.96: "100", 1000: "1000", 1234.5: "1230", -0.5: "-0.500"} {
		if got := cgmSig(x); got != want {
			t.Errorf("cgmSig(%v) = %q, want %q", x, got, want)
		}
	}
}

// Under 14 days or under 70 % active, the text and the HTML report say so.
func TestCGMReportDataSufficiencyNote(t *testing.T) {
	html := filepath.Join(t.TempDir(), "agp.html")
	code, out, errOut := runCGM("report", "--csv", "../../wire/cgmcsv/testdata/clarity_mgdl.csv", "--tz", "America/New_York", "--html", html)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if !strings.Contains(out, "too little data: the consensus asks for at least 14 days") || !strings.Contains(out, "  Jane Doe: readings over 0.1 days") {
		t.Errorf("text report lacks the data-sufficiency note:\n%s", out)
	}
	b, err := os.ReadFile(html)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `<p class="note warn">Too little data: readings over 0.1 days`) {
		t.Error("HTML report lacks the data-sufficiency note")
	}
}
