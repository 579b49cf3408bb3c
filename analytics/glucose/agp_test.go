package glucose

import (
	"math"
	"testing"
	"time"
)

func TestAGPAndDaily(t *testing.T) {
	loc := time.FixedZone("UTC+2", 2*3600)
	// Two local days sampled every 5 minutes: 100 mg/dL at night, 200 mg/dL from 12:00 to 18:00
	// local time on the first day and 150 on the second.
	start := time.Date(2026, 5, 1, 0, 0, 0, 0, loc)
	var rs []Reading
	for i := 0; i < 2*288; i++ {
		at := start.Add(time.Duration(i) * 5 * time.Minute)
		v := 100.0
		if h := at.Hour(); h >= 12 && h < 18 {
			v = 200
			if i >= 288 {
				v = 150
			}
		}
		rs = append(rs, Reading{Time: at.UTC(), MgdL: v})
	}
	agp := AGP(rs, loc)
	if len(agp) != 96 {
		t.Fatalf("%d AGP points, want one every 15 minutes", len(agp))
	}
	at := func(hh, mm int) AGPPoint { return agp[(hh*60+mm)/15] }
	if p := at(3, 0); p.P5 != 100 || p.P95 != 100 {
		t.Errorf("03:00 local: %+v", p)
	}
	if p := at(15, 0); p.P25 != 150 || p.P75 != 200 || p.P50 != 175 {
		t.Errorf("15:00 local: %+v, want 150/175/200", p)
	}
	// AGP time of day follows the zone given: 11:00 UTC is 13:00 local, inside the rise.
	if p := AGP(rs, time.UTC)[(11*60)/15]; p.P50 != 175 {
		t.Errorf("11:00 UTC (13:00 local): %+v", p)
	}
	days := Daily(rs, loc)
	if len(days) != 2 || len(days[0].Readings) != 288 || !days[1].Date.Equal(start.AddDate(0, 0, 1)) {
		t.Fatalf("days: %d", len(days))
	}
	if d := days[0]; math.Abs(d.Above180-25) > 1e-9 || math.Abs(d.InRange-75) > 1e-9 || d.Mean != 125 {
		t.Errorf("day 1: %+v", d)
	}
	if d := days[1]; d.Above180 != 0 || d.InRange != 100 {
		t.Errorf("day 2: %+v", d)
	}
}

func TestGridGaps(t *testing.T) {
	// Readings 40 minutes apart are interpolated over, 50 minutes apart are not (inter_gap 45).
	rs := []Reading{{t0, 100}, {t0.Add(40 * time.Minute), 140}, {t0.Add(90 * time.Minute), 100}}
	g := DayByDay(rs, 5*time.Minute, DefaultInterGap, time.UTC)
	slot := func(d time.Duration) float64 {
		k := int(t0.Add(d).Sub(g.Start)/g.Step) - 1
		return g.Values[k]
	}
	if v := slot(20 * time.Minute); v != 120 {
		t.Errorf("20 min: %v, want 120", v)
	}
	if v := slot(60 * time.Minute); !math.IsNaN(v) {
		t.Errorf("inside a 50-minute gap: %v, want missing", v)
	}
	if v := slot(40 * time.Minute); v != 140 {
		t.Errorf("at a reading: %v", v)
	}
	if s := Summarize(nil, time.UTC); s.Readings != 0 || !math.IsNaN(s.Mean) {
		t.Errorf("empty summary %+v", s)
	}
	// Two readings a century apart: the time-independent metrics stand, the grid ones are NaN.
	far := []Reading{{t0, 100}, {t0.AddDate(100, 0, 0), 120}}
	if s := Summarize(far, time.UTC); s.Mean != 110 || !math.IsNaN(s.CONGA) || !math.IsNaN(s.MODD) || !math.IsNaN(s.MAGE) {
		t.Errorf("century-long series: %+v", s)
	}
	if p := AGP(far, time.UTC); len(p) != 96 || !math.IsNaN(p[0].P50) {
		t.Errorf("AGP of a century-long series: %+v", p[0])
	}
}

func BenchmarkSummarize(b *testing.B) {
	ids, by := loadIglu(b, "example_data_5_subject.csv")
	rs := by[ids[0]]
	b.ReportAllocs()
	for b.Loop() {
		Summarize(rs, est)
	}
	b.ReportMetric(float64(len(rs)), "readings/op")
}

func BenchmarkMonitorObserve(b *testing.B) {
	ids, by := loadIglu(b, "example_data_5_subject.csv")
	rs := Clean(by[ids[0]])
	b.ReportAllocs()
	for b.Loop() {
		m, _ := NewMonitor(DefaultSettings())
		for _, r := range rs {
			m.Observe(r)
		}
	}
	b.ReportMetric(float64(len(rs)), "readings/op")
}
