package api

import (
	"strings"
	"testing"
	"time"
)

// A CGM report covers 14 days by default, counted from whichever bound is given; a date-only
// "to" includes that day; bad or reversed bounds and over 90 days are refused with the reason.
func TestReportWindow(t *testing.T) {
	london, err := time.LoadLocation("Europe/London")
	if err != nil {
		t.Skip(err)
	}
	now := time.Date(2026, 11, 24, 18, 30, 0, 0, time.UTC)
	day := func(y int, m time.Month, d int, loc *time.Location) time.Time {
		return time.Date(y, m, d, 0, 0, 0, 0, loc).UTC()
	}
	for _, c := range []struct {
		from, to string
		loc      *time.Location
		wantFrom time.Time
		wantTo   time.Time
	}{
		{"", "", time.UTC, now.AddDate(0, 0, -14), now},
		{"", "2015-06-19", time.UTC, day(2015, 6, 6, time.UTC), day(2015, 6, 20, time.UTC)},
		{"2015-06-06", "", time.UTC, day(2015, 6, 6, time.UTC), day(2015, 6, 20, time.UTC)},
		{"2026-11-20", "", time.UTC, day(2026, 11, 20, time.UTC), now}, // not into the future
		{"2015-06-06", "2015-06-19", london, day(2015, 6, 6, london), day(2015, 6, 20, london)},
		{"2015-06-06T08:00:00Z", "2015-06-07T08:00:00+01:00", time.UTC, time.Date(2015, 6, 6, 8, 0, 0, 0, time.UTC), time.Date(2015, 6, 7, 7, 0, 0, 0, time.UTC)},
	} {
		from, to, err := reportWindow(c.from, c.to, c.loc, now)
		if err != nil || !from.Equal(c.wantFrom) || !to.Equal(c.wantTo) {
			t.Errorf("from %q to %q (%v): %v – %v, %v; want %v – %v", c.from, c.to, c.loc, from, to, err, c.wantFrom, c.wantTo)
		}
	}
	for _, c := range []struct{ from, to, want string }{
		{"19/06/2015", "", `"from" must be a date (2026-01-02) or an RFC 3339 time`},
		{"", "yesterday", `"to" must be a date`},
		{"2015-06-19", "2015-06-01", `"from" (2015-06-19T00:00:00Z) must be before "to"`},
		{"2015-01-01", "2015-06-01", "at most 90 days"},
		{"2026-12-01", "", `"from" (2026-12-01T00:00:00Z) must be before "to"`},
	} {
		if _, _, err := reportWindow(c.from, c.to, time.UTC, now); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("from %q to %q: %v, want %q", c.from, c.to, err, c.want)
		}
	}
}
