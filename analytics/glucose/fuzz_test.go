package glucose

import (
	"encoding/binary"
	"encoding/json"
	"testing"
	"time"
)

// FuzzMonitor replays arbitrary series — any spacing from simultaneous to 42 minutes, glucose
// from 0 to 1,310 mg/dL, silences checked by Tick — through a monitor with each predictor: no
// panic, every alert encodes as JSON (no NaN or infinity reaches the API), the readings' alerts
// come in time order, and a predicted low is raised only while glucose is not low and the forecast is.
func FuzzMonitor(f *testing.F) {
	f.Add([]byte{30, 0x1d, 0x4c, 30, 0x1b, 0x58, 30, 0x19, 0x64, 30, 0x17, 0x70, 30, 0x15, 0x7c, 30, 0x13, 0x88})
	f.Add([]byte{6, 0x13, 0x88, 6, 0x13, 0x56, 6, 0x13, 0x24, 0, 0x12, 0xf2, 255, 0x01, 0x00})
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, p := range []Predictor{Trend{}, AR2{}} {
			s := DefaultSettings()
			s.Predictor = p
			m := newMonitor(t, s)
			at := t0
			var last time.Time
			for i := 0; i+3 <= len(data); i += 3 {
				at = at.Add(time.Duration(data[i]) * 10 * time.Second)
				v := float64(binary.BigEndian.Uint16(data[i+1:])) / 50
				alerts := m.Observe(Reading{Time: at, MgdL: v})
				for _, a := range alerts {
					if a.Time.Before(last) {
						t.Fatalf("%s: alert at %v after one at %v", p.Name(), a.Time, last)
					}
					last = a.Time
				}
				if data[i]%7 == 0 { // a clock check, possibly later than the next reading's time
					alerts = append(alerts, m.Tick(at.Add(time.Duration(data[i])*time.Minute))...)
				}
				for _, a := range alerts {
					if _, err := json.Marshal(a); err != nil {
						t.Fatalf("%s: alert %+v does not encode: %v", p.Name(), a, err)
					}
					if a.Kind == PredictedLow && !(a.MgdL >= s.Low && a.Predicted < s.Low) {
						t.Fatalf("%s: predicted low raised at %.1f mg/dL with forecast %.1f", p.Name(), a.MgdL, a.Predicted)
					}
				}
			}
		}
	})
}
