package cgmcsv

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "*.csv"))
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, uint8(0))
	}
	f.Add([]byte("id,time,glucose\na,2024-01-01T10:00:00Z,100\n"), uint8(1))
	f.Add([]byte("Device;Serial Number;Device Timestamp;Record Type;Historic Glucose mmol/L\nX;1;13-02-2023 23:01;0;6,2\n"), uint8(3))
	formats := []Format{Auto, Generic, Dexcom, Libre}
	f.Fuzz(func(t *testing.T, data []byte, which uint8) {
		opt := Options{Format: formats[int(which)%len(formats)], Location: time.UTC}
		res, err := Parse(bytes.NewReader(data), opt)
		if err != nil {
			if res != nil {
				t.Fatal("result with error")
			}
			return
		}
		if len(res.Readings) == 0 {
			t.Fatal("success without readings")
		}
		for _, r := range res.Readings {
			if !(r.MgdL >= minPlausible && r.MgdL <= maxPlausible) {
				t.Fatalf("implausible value %v accepted", r.MgdL)
			}
			if r.Time.IsZero() {
				t.Fatal("zero time accepted")
			}
		}
	})
}
