package ecg

import (
	"math"
	"math/rand/v2"
	"testing"
)

// AFSettled is a promise about later output: no AF episode opens or closes before it, it
// never moves back, and it keeps up with the signal (within the decision lag).
func TestAFSettledIsNeverContradicted(t *testing.T) {
	const fs = 250
	rng := rand.New(rand.NewPCG(21, 22))
	// Sinus, AF, sinus, AF to the end: episodes open and close, and one is still open.
	const dur = 420
	x := make([]float64, 0, dur*fs)
	tt, from := 0.5, 0.0
	for _, part := range []struct {
		end float64
		af  bool // irregular beats without P waves, with fibrillatory waves
	}{{90, false}, {210, true}, {300, false}, {dur, true}} {
		var beats []float64
		for ; tt < part.end; tt += 0.85 {
			if part.af {
				tt += 0.5*rng.Float64() - 0.4
			}
			beats = append(beats, tt)
		}
		seg := synth(fs, beats, part.end, part.af, rng)[int(from*fs):]
		if part.af {
			ph := 0.0
			for i := range seg {
				ph += 2 * math.Pi * (6 + rng.Float64()*2 - 1) / fs
				seg[i] += 0.05 * math.Sin(ph)
			}
		}
		x = append(x, seg...)
		from = part.end
	}
	m, err := NewMonitor(DefaultConfig(fs))
	if err != nil {
		t.Fatal(err)
	}
	var settled int64
	opened, closed := 0, 0
	check := func(o Output, end bool) {
		for _, e := range o.Started {
			if e.Kind == AF {
				opened++
				if e.Onset < settled {
					t.Errorf("AF opened at %d, before the settled %d", e.Onset, settled)
				}
			}
		}
		for _, e := range o.Episodes {
			if e.Kind == AF {
				closed++
				if e.Offset < settled && !end {
					t.Errorf("AF closed at %d, before the settled %d", e.Offset, settled)
				}
			}
		}
		s := m.AFSettled()
		if s < settled {
			t.Errorf("AFSettled went back from %d to %d", settled, s)
		}
		settled = s
	}
	for i := 0; i < len(x); i += fs / 2 {
		check(m.Process(x[i:min(i+fs/2, len(x))]), false)
		if i > 60*fs && settled < int64(i)-60*fs {
			t.Fatalf("AFSettled %d lags the signal at %d by more than a minute", settled, i)
		}
	}
	check(m.Flush(), true)
	if opened != 2 || closed != 2 {
		t.Errorf("AF opened %d and closed %d times, want 2 and 2", opened, closed)
	}
	if settled != int64(len(x)) {
		t.Errorf("after Flush AFSettled is %d, want the end %d", settled, len(x))
	}
}
