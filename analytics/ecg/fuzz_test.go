package ecg

import (
	"encoding/binary"
	"math"
	"testing"
)

// FuzzMonitor feeds arbitrary samples (including NaN and infinities) in arbitrary chunks: the
// monitor must not panic and must report beats in order, inside the stream.
func FuzzMonitor(f *testing.F) {
	f.Add([]byte{0, 0, 0, 0, 0, 0, 240, 63}, uint8(3), uint16(250))
	f.Add(make([]byte, 8*400), uint8(1), uint16(1000))
	f.Fuzz(func(t *testing.T, raw []byte, chunk uint8, rate uint16) {
		fs := 125 + float64(rate%876)
		m, err := NewMonitor(DefaultConfig(fs))
		if err != nil {
			t.Fatal(err)
		}
		x := make([]float64, len(raw)/8)
		for i := range x {
			x[i] = math.Float64frombits(binary.LittleEndian.Uint64(raw[8*i:]))
		}
		c := int(chunk%64) + 1
		last := int64(-1)
		check := func(o Output) {
			for _, b := range o.Beats {
				if b.Sample <= last || b.Sample >= int64(len(x)) {
					t.Fatalf("beat at %d after %d in %d samples", b.Sample, last, len(x))
				}
				last = b.Sample
			}
		}
		for i := 0; i < len(x); i += c {
			check(m.Process(x[i:min(i+c, len(x))]))
		}
		check(m.Flush())
	})
}
