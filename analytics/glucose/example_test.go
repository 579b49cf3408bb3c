package glucose_test

import (
	"fmt"
	"time"

	"github.com/iomt/iomt/analytics/glucose"
)

// One patient's monitor with their own low threshold, fed readings as they arrive.
func ExampleMonitor() {
	s := glucose.DefaultSettings()
	s.Low = 80 // this patient's clinician set a higher low alert
	m, err := glucose.NewMonitor(s)
	if err != nil {
		panic(err)
	}
	t0 := time.Date(2026, 3, 1, 22, 0, 0, 0, time.UTC)
	for i, v := range []float64{150, 139, 128, 117, 106, 95, 84, 73} {
		for _, a := range m.Observe(glucose.Reading{Time: t0.Add(time.Duration(i) * 5 * time.Minute), MgdL: v}) {
			fmt.Printf("%s %s at %.0f mg/dL\n", a.Time.Format("15:04"), a.Kind, a.MgdL)
		}
	}
	// No reading for 15 minutes: the sensor or the phone has gone quiet.
	for _, a := range m.Tick(t0.Add(50 * time.Minute)) {
		fmt.Printf("%s %s\n", a.Time.Format("15:04"), a.Kind)
	}
	// Output:
	// 22:10 falling_fast at 128 mg/dL
	// 22:25 predicted_low at 95 mg/dL
	// 22:35 low at 73 mg/dL
	// 22:50 stale
}
