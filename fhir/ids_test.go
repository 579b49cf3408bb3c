package fhir

import (
	"testing"
	"time"

	"github.com/iomt/iomt/codes"
)

func TestObservationIDRoundTrip(t *testing.T) {
	cat := codes.New()
	at := time.Date(2026, 11, 20, 10, 0, 0, 123e6, time.UTC)
	for _, k := range []ObsKey{
		{Kind: KindReading, Patient: "aaaaaaaaaaaaaaaa", Device: "bbbbbbbbbbbbbbbb", Code: "8867-4", Time: at},
		{Kind: KindReading, Patient: "example-patient.2", Device: "dev-1", Code: "2708-6", Time: at}, // no MDC: by LOINC
		{Kind: KindBPPanel, Patient: "aaaaaaaaaaaaaaaa", Device: "bbbbbbbbbbbbbbbb", Code: CodeBPPanel, Time: at},
		{Kind: KindWaveform, Patient: "aaaaaaaaaaaaaaaa", Device: "bbbbbbbbbbbbbbbb", Code: "MDC_ECG_ELEC_POTL_AVR", Time: at},
		{Kind: KindScore, Patient: "aaaaaaaaaaaaaaaa", Code: "news2", Time: at},
		{Kind: KindReading, Patient: "AAAAAAAAAAAAAAAA", Device: "x", Code: "8310-5", Time: time.UnixMilli(-5).UTC()},
	} {
		id, err := ObservationID(cat, k)
		if err != nil {
			t.Fatalf("%+v: %v", k, err)
		}
		if !ValidID(id) {
			t.Errorf("%q is not a FHIR id", id)
		}
		got, err := ParseObservationID(cat, id)
		if err != nil || got != k {
			t.Errorf("%s: parsed %+v, %v; want %+v", id, got, err, k)
		}
		t.Logf("%-2d %s", len(id), id)
	}
	long := ObsKey{Kind: KindReading, Patient: "a-patient-id-that-is-rather-long-indeed", Device: "and-a-long-device-id-too", Code: "8867-4", Time: at}
	if _, err := ObservationID(cat, long); err == nil {
		t.Error("an id over 64 characters was made")
	}
}

func FuzzParseObservationID(f *testing.F) {
	cat := codes.New()
	for _, s := range []string{"", "AQ", "AXJt", "AXJtgs0J-pGRuNTTHLiDAAAAAAAAAAABAAAAAAAAAAAA", "..--..", "zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		k, err := ParseObservationID(cat, s)
		if err != nil {
			return
		}
		// Whatever parses is canonical: it encodes back to itself.
		id, err := ObservationID(cat, k)
		if err != nil || id != s {
			t.Fatalf("%q parsed to %+v, which encodes to %q (%v)", s, k, id, err)
		}
	})
}

func FuzzParseDate(f *testing.F) {
	for _, s := range []string{"2026", "2026-11", "2026-11-20", "2026-11-20T10:30", "2026-11-20T10:30:00.5+01:00", "2026-02-30", "9999-12-31T23:59:60Z"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := parseDate(s)
		if err != nil {
			return
		}
		if !r.lo.Before(r.hi) {
			t.Fatalf("%q: empty range %v..%v", s, r.lo, r.hi)
		}
	})
}

func TestParseDate(t *testing.T) {
	for in, want := range map[string][2]string{
		"2026":                     {"2026-01-01T00:00:00Z", "2027-01-01T00:00:00Z"},
		"2026-11":                  {"2026-11-01T00:00:00Z", "2026-12-01T00:00:00Z"},
		"2026-11-20":               {"2026-11-20T00:00:00Z", "2026-11-21T00:00:00Z"},
		"2026-11-20T10:30+02:00":   {"2026-11-20T08:30:00Z", "2026-11-20T08:31:00Z"},
		"2026-11-20T10:30:15Z":     {"2026-11-20T10:30:15Z", "2026-11-20T10:30:16Z"},
		"2026-11-20T10:30:15.250Z": {"2026-11-20T10:30:15.25Z", "2026-11-20T10:30:15.251Z"},
	} {
		r, err := parseDate(in)
		if err != nil {
			t.Errorf("%s: %v", in, err)
			continue
		}
		if got := [2]string{r.lo.Format(time.RFC3339Nano), r.hi.Format(time.RFC3339Nano)}; got != want {
			t.Errorf("%s: %v, want %v", in, got, want)
		}
	}
	for _, bad := range []string{"2026-13", "2026-02-30", "20261120", "2026-11-20T25:00Z", "yesterday"} {
		if _, err := parseDate(bad); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}
