package sensing

import (
	"image"
	"image/color"
	"image/png"
	"math"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 24, 8, 0, 0, 0, time.UTC)

func mustScenario(t testing.TB, y string) Scenario {
	t.Helper()
	sc, err := LoadScenario(strings.NewReader(y))
	if err != nil {
		t.Fatalf("LoadScenario: %v", err)
	}
	return sc
}

func builtin(t testing.TB, name string) Scenario {
	t.Helper()
	sc, ok := Builtin()[name]
	if !ok {
		t.Fatalf("no builtin scenario %q", name)
	}
	return sc
}

// run advances a patient one second at a time, as a simulator would.
func run(p *Patient, from, to time.Duration) []Emission {
	var out []Emission
	for d := from + time.Second; d <= to; d += time.Second {
		out = p.AdvanceAppend(out, p.Start().Add(d))
	}
	return out
}

// wave concatenates a device's waveform chunks, returning the values and their device times
// in seconds since t0.
func waveOf(es []Emission, code string) (v, ts []float64) {
	for _, e := range es {
		for _, c := range e.Chunks {
			if c.Code != code {
				continue
			}
			for i, x := range c.Values {
				v = append(v, x)
				ts = append(ts, c.Start.Sub(t0).Seconds()+float64(i)*c.Period.Seconds())
			}
		}
	}
	return v, ts
}

// series returns a code's spot samples as times (s since t0) and values.
func series(es []Emission, device, code string) (ts, v []float64) {
	for _, e := range es {
		if device != "" && e.Device != device {
			continue
		}
		for _, s := range e.Samples {
			if s.Code == code {
				ts = append(ts, s.Time.Sub(t0).Seconds())
				v = append(v, s.Value)
			}
		}
	}
	return ts, v
}

func mean(v []float64) float64 {
	s := 0.0
	for _, x := range v {
		s += x
	}
	return s / float64(len(v))
}

func percentile(v []float64, p float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[int(p*float64(len(s)-1))]
}

// rPeaks is a plain QRS detector: local maxima above half the 99.5th percentile, at least
// 250 ms apart (the tallest wins within that window).
func rPeaks(v, ts []float64) []float64 {
	th := 0.5 * percentile(v, 0.995)
	var peaks []float64
	last := -1
	for i := 1; i+1 < len(v); i++ {
		if v[i] < th || v[i] < v[i-1] || v[i] < v[i+1] {
			continue
		}
		if last >= 0 && ts[i]-ts[last] < 0.25 {
			if v[i] > v[last] {
				peaks[len(peaks)-1] = ts[i]
				last = i
			}
			continue
		}
		peaks = append(peaks, ts[i])
		last = i
	}
	return peaks
}

func intervals(peaks []float64) []float64 {
	var rr []float64
	for i := 1; i < len(peaks); i++ {
		rr = append(rr, peaks[i]-peaks[i-1])
	}
	return rr
}

// renderStrip draws an ECG on paper at 25 mm/s and 10 mm/mV, 5 px per mm, with the 1 mm and
// 5 mm grid, into a small paletted PNG.
func renderStrip(path string, v []float64, fs float64, lo, hi float64) error {
	const pxmm = 5.0
	w := int(float64(len(v)) / fs * 25 * pxmm)
	h := int((hi - lo) * 10 * pxmm)
	pal := color.Palette{
		color.RGBA{255, 255, 255, 255},
		color.RGBA{250, 205, 205, 255},
		color.RGBA{235, 140, 140, 255},
		color.RGBA{20, 20, 20, 255},
	}
	img := image.NewPaletted(image.Rect(0, 0, w, h), pal)
	for x := range w {
		for y := range h {
			c := uint8(0)
			if x%int(pxmm) == 0 || y%int(pxmm) == 0 {
				c = 1
			}
			if x%int(5*pxmm) == 0 || y%int(5*pxmm) == 0 {
				c = 2
			}
			img.SetColorIndex(x, y, c)
		}
	}
	yOf := func(mv float64) int { return int(math.Round((hi - mv) * 10 * pxmm)) }
	xOf := func(i int) int { return int(math.Round(float64(i) / fs * 25 * pxmm)) }
	plot := func(x, y int) {
		for dy := 0; dy < 2; dy++ {
			if x >= 0 && x < w && y+dy >= 0 && y+dy < h {
				img.SetColorIndex(x, y+dy, 3)
			}
		}
	}
	for i := 1; i < len(v); i++ {
		x0, y0, x1, y1 := xOf(i-1), yOf(v[i-1]), xOf(i), yOf(v[i])
		n := max(abs(x1-x0), abs(y1-y0), 1)
		for k := 0; k <= n; k++ {
			plot(x0+(x1-x0)*k/n, y0+(y1-y0)*k/n)
		}
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	enc := png.Encoder{CompressionLevel: png.BestCompression}
	if err := enc.Encode(f, img); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}
