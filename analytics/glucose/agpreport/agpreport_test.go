package agpreport

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/iomt/iomt/analytics/glucose"
)

func TestRender(t *testing.T) {
	loc := time.FixedZone("UTC-5", -5*3600)
	start := time.Date(2026, 1, 5, 0, 0, 0, 0, loc)
	var rs []glucose.Reading
	for i := 0; i < 3*288; i++ {
		// A daily swing from 60 to 260 mg/dL touches every range.
		v := 160 + 100*float64((i%288)-144)/144
		rs = append(rs, glucose.Reading{Time: start.Add(time.Duration(i) * 5 * time.Minute), MgdL: v})
	}
	subj := Subject{ID: `<script>alert("x")</script>`, Summary: glucose.Summarize(rs, loc),
		AGP: glucose.AGP(rs, loc), Days: glucose.Daily(rs, loc)}
	var b bytes.Buffer
	if err := Render(&b, Page{Source: "test", Location: loc, Generated: start, Subjects: []Subject{subj, subj}}); err != nil {
		t.Fatal(err)
	}
	page := b.String()
	if strings.Contains(page, "<script>") {
		t.Error("subject id not escaped")
	}
	for _, want := range []string{"&lt;script&gt;", "Time in ranges", "Ambulatory glucose profile", "Daily glucose profiles",
		"Very High", "Very Low", "95%", "12pm", "Mon</tspan> Jan 5"} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if n := strings.Count(page, `<section class="subject">`); n != 2 {
		t.Errorf("%d subject sections", n)
	}
	// One daily profile per day and one chart each for AGP and time in ranges, per subject.
	if n := strings.Count(page, "<svg"); n != 2*(3+2) {
		t.Errorf("%d charts", n)
	}
	if strings.Contains(page, "http://") || strings.Contains(page, "https://") {
		t.Error("page refers to the network")
	}
	// No data: the chart says so instead of drawing garbage.
	b.Reset()
	if err := Render(&b, Page{Subjects: []Subject{{ID: "empty", Summary: glucose.Summarize(nil, loc), AGP: glucose.AGP(nil, loc)}}}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "not enough data") {
		t.Error("empty subject rendered without notice")
	}
}

func TestDailyProfilesLastFourteenDays(t *testing.T) {
	loc := time.UTC
	start := time.Date(2026, 2, 1, 0, 0, 0, 0, loc)
	var rs []glucose.Reading
	for i := 0; i < 20*288; i++ {
		at := start.Add(time.Duration(i) * 5 * time.Minute)
		if d := at.Day(); d == 17 || d == 18 {
			continue // the sensor was off for two days
		}
		rs = append(rs, glucose.Reading{Time: at, MgdL: 120})
	}
	v := subjectView(Subject{ID: "p", Summary: glucose.Summarize(rs, loc), Days: glucose.Daily(rs, loc)}, loc)
	if len(v.Daily) != 14 || v.Days != "20" || !strings.Contains(v.DailyNote, "last 14 of the 20 days") {
		t.Fatalf("%d panels, %s days, note %q", len(v.Daily), v.Days, v.DailyNote)
	}
	// Feb 7 is the first panel; Feb 17 and 18 are empty panels that say so.
	if !strings.Contains(string(v.Daily[0]), "Feb 7") || !strings.Contains(string(v.Daily[10]), "no data") ||
		!strings.Contains(string(v.Daily[11]), "no data") || strings.Contains(string(v.Daily[12]), "no data") {
		t.Error("daily panels out of order or missing days not shown")
	}
}

func TestDayTime(t *testing.T) {
	for pct, want := range map[float64]string{70: "16h 48min", 4: "58min", 25: "6h", 0: "0min"} {
		if got := dayTime(pct); got != want {
			t.Errorf("dayTime(%v) = %q, want %q", pct, got, want)
		}
	}
}

func TestDataNote(t *testing.T) {
	loc := time.UTC
	start := time.Date(2026, 3, 1, 0, 0, 0, 0, loc)
	series := func(days int, keep func(i int) bool) []glucose.Reading {
		var rs []glucose.Reading
		for i := 0; i < days*288; i++ {
			if keep(i) {
				rs = append(rs, glucose.Reading{Time: start.Add(time.Duration(i) * 5 * time.Minute), MgdL: 120})
			}
		}
		return rs
	}
	all := func(int) bool { return true }
	cases := []struct {
		name string
		rs   []glucose.Reading
		want []string // empty: no note
	}{
		{"14 full days", series(14, all), nil},
		{"3 days", series(3, all), []string{"Too little data: readings over 3 days (the consensus asks for at least 14 days"}},
		// Every third hour missing: about 67 % active over 14 days.
		{"14 days, 67 % active", series(14, func(i int) bool { return (i/12)%3 != 0 }), []string{"Too little data: CGM active 66.", "% (the consensus", "active at least 70% of the time"}},
		{"one reading", series(14, func(i int) bool { return i == 0 }), []string{"0 days, CGM active time unknown"}},
		{"none", nil, []string{"Too little data: no readings"}},
	}
	for _, c := range cases {
		note := DataNote(glucose.Summarize(c.rs, loc))
		t.Logf("%s: %q", c.name, note)
		if len(c.want) == 0 && note != "" {
			t.Errorf("%s: note %q, want none", c.name, note)
		}
		for _, w := range c.want {
			if !strings.Contains(note, w) {
				t.Errorf("%s: note %q lacks %q", c.name, note, w)
			}
		}
	}
	// The page shows the note next to the statistics.
	rs := series(3, all)
	var b bytes.Buffer
	subj := Subject{ID: "p", Summary: glucose.Summarize(rs, loc), AGP: glucose.AGP(rs, loc), Days: glucose.Daily(rs, loc)}
	if err := Render(&b, Page{Location: loc, Subjects: []Subject{subj}}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), `<p class="note warn">Too little data: readings over 3 days (`) {
		t.Error("page lacks the data-sufficiency note")
	}
}
