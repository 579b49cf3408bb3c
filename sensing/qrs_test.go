package sensing

import (
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/iomt/iomt/analytics/ecg"
)

// TestProjectDetectorFindsSimulatedBeats runs iomt's own QRS detector (validated on MIT-BIH)
// over the simulated ECG: it must find the beats at the rate the scenario asks for, and find
// AF's irregularity, or the simulator would not be fit for testing analytics.
func TestProjectDetectorFindsSimulatedBeats(t *testing.T) {
	for _, c := range []struct {
		extra string
		hr    float64
	}{{"hr: 50", 50}, {"hr: 72", 72}, {"hr: 120", 120}, {"hr: 160", 160}} {
		t.Run(fmt.Sprint(c.hr), func(t *testing.T) {
			p := NewPatient(ecgScenario(t, c.extra), 11, t0)
			v, _ := waveOf(run(p, 0, 3*time.Minute), CodeECGII)
			d, err := ecg.NewDetector(250)
			if err != nil {
				t.Fatal(err)
			}
			var beats []ecg.Beat
			for i := 0; i < len(v); i += 250 {
				beats = append(beats, d.Process(v[i:min(i+250, len(v))])...)
			}
			beats = append(beats, d.Flush()...)
			if len(beats) < 10 {
				t.Fatalf("%d beats detected in 3 minutes", len(beats))
			}
			span := float64(beats[len(beats)-1].Sample-beats[0].Sample) / 250
			rate := 60 * float64(len(beats)-1) / span
			t.Logf("scenario %g/min: detector finds %d beats, %.1f/min", c.hr, len(beats), rate)
			if math.Abs(rate-c.hr) > 3 {
				t.Errorf("detector finds %.1f/min, scenario says %g/min", rate, c.hr)
			}
		})
	}
}
