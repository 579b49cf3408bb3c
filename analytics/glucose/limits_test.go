package glucose

import (
	"testing"
	"time"

	"github.com/iomt/iomt"
)

// A patient whose clinician raises the low threshold to 80 is alerted at 75 from the next
// reading on; thresholds out of order are refused and change nothing.
func TestSetThresholds(t *testing.T) {
	m, err := NewMonitor(DefaultSettings())
	if err != nil {
		t.Fatal(err)
	}
	at := func(i int) time.Time { return t0.Add(time.Duration(i) * 5 * time.Minute) }
	if as := m.Observe(Reading{Time: at(0), MgdL: 75}); len(as) != 0 {
		t.Fatalf("75 mg/dL on the defaults raised %+v", as)
	}
	if err := m.SetThresholds(iomt.GlucoseLimits{UrgentLow: 60, Low: 80, High: 180, UrgentHigh: 250}); err != nil {
		t.Fatal(err)
	}
	as := m.Observe(Reading{Time: at(1), MgdL: 75})
	if len(as) != 1 || as[0].Kind != LowAlert {
		t.Fatalf("75 mg/dL with a low of 80 raised %+v, want one low alert", as)
	}
	m.Observe(Reading{Time: at(2), MgdL: 175})
	if as := m.Observe(Reading{Time: at(12), MgdL: 190}); len(as) != 1 || as[0].Kind != HighAlert {
		t.Fatalf("190 mg/dL with a high of 180 raised %+v, want one high alert", as)
	}
	if err := m.SetThresholds(iomt.GlucoseLimits{UrgentLow: 80, Low: 70, High: 180, UrgentHigh: 250}); err == nil {
		t.Fatal("urgent low above low accepted")
	}
	if s := m.Settings(); s.Low != 80 || s.UrgentLow != 60 || s.High != 180 || s.UrgentHigh != 250 {
		t.Fatalf("a refused change left %+v", s)
	}
}
