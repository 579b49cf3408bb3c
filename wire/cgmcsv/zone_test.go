package cgmcsv

import (
	"strings"
	"testing"
	"time"
)

func TestParseZone(t *testing.T) {
	at := time.Date(2026, 7, 1, 12, 0, 0, 0, time.UTC)
	for s, want := range map[string]int{"UTC": 0, "UTC-05:00": -5 * 3600, "UTC+05:30": 5*3600 + 1800, "Europe/London": 3600} {
		loc, err := ParseZone(s)
		if err != nil {
			t.Errorf("%s: %v", s, err)
			continue
		}
		if _, off := at.In(loc).Zone(); off != want {
			t.Errorf("%s: offset %d s in July, want %d", s, off, want)
		}
	}
	for s, why := range map[string]string{"": "empty", "Local": "this machine's zone", "UTC-5": "not UTC±hh:mm", "Mars/Olympus": "unknown time zone"} {
		if _, err := ParseZone(s); err == nil || !strings.Contains(err.Error(), why) {
			t.Errorf("%q: %v, want %q", s, err, why)
		}
	}
}

func TestLayoutName(t *testing.T) {
	for l, want := range map[string]string{"02-01-2006 15:04": "DD-MM-YYYY hh:mm", "01/02/2006 15:04": "MM/DD/YYYY hh:mm", "2006-01-02 15:04:05": "YYYY-MM-DD hh:mm:ss"} {
		if got := layoutName(l); got != want {
			t.Errorf("%s: %s, want %s", l, got, want)
		}
	}
}
