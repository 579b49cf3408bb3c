package sensing_test

import (
	"fmt"
	"time"

	"github.com/iomt/iomt/sensing"
)

func Example() {
	sc := sensing.Builtin()["sepsis"]
	start := time.Date(2026, 11, 24, 8, 0, 0, 0, time.UTC)
	p := sensing.NewPatient(sc, 1, start)
	ecgSamples := 0
	for now := start.Add(time.Second); !now.After(start.Add(time.Minute)); now = now.Add(time.Second) {
		for _, e := range p.Advance(now) {
			for _, c := range e.Chunks {
				if c.Code == sensing.CodeECGII {
					ecgSamples += len(c.Values)
				}
			}
		}
	}
	fmt.Println(p.Devices())
	fmt.Println(ecgSamples > 14500 && ecgSamples <= 15000)
	// Output:
	// [ecg-patch pulse-oximeter thermometer bp-monitor]
	// true
}
