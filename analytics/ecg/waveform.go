package ecg

import (
	"fmt"
	"time"

	"github.com/iomt/iomt"
)

// Millivolts converts a waveform segment to the millivolts Monitor expects, with its sampling
// rate. Units mV, uV and V (UCUM) are accepted.
func Millivolts(w iomt.Waveform) ([]float64, float64, error) {
	var k float64
	switch w.Unit {
	case "mV":
		k = 1
	case "uV":
		k = 1e-3
	case "V":
		k = 1e3
	default:
		return nil, 0, fmt.Errorf("ecg: waveform unit %q is not a voltage (mV, uV, V)", w.Unit)
	}
	if w.Period <= 0 {
		return nil, 0, fmt.Errorf("ecg: waveform period %v is not positive", w.Period)
	}
	out := make([]float64, len(w.Samples))
	for i, s := range w.Samples {
		out[i] = float64(s) * w.Scale * k
	}
	return out, float64(time.Second) / float64(w.Period), nil
}
