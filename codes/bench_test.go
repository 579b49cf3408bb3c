package codes_test

import (
	"testing"

	"github.com/iomt/iomt/codes"
)

// b.Loop keeps the calls in its body from being optimised away, so no sinks are needed.

func BenchmarkLookup(b *testing.B) {
	c := codes.New()
	for _, name := range []string{"hr", "8867-4", "MDC_PULS_OXIM_SAT_O2", "150456", "SpO2", "mdc_ecg_elec_potl_ii", "unknown"} {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				c.Lookup(name)
			}
		})
	}
}

func BenchmarkConvert(b *testing.B) {
	c := codes.New()
	for _, tc := range []struct {
		name, unit string
		v          float64
	}{{"hr", "/min", 72}, {"hr", "beats/min", 72}, {"temp", "degF", 98.6}, {"glucose", "mmol/L", 5.5}, {"spo2", "/", 0.97}} {
		code, _ := c.Lookup(tc.name)
		b.Run(tc.name+"/"+tc.unit, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_, _ = c.Convert(code, tc.v, tc.unit)
			}
		})
	}
}

// The ingest hot path: one SenML record's name and unit.
func BenchmarkLookupConvert(b *testing.B) {
	c := codes.New()
	b.ReportAllocs()
	for b.Loop() {
		code, _ := c.Lookup("spo2")
		_, _ = c.Convert(code, 97, "%")
	}
}

func BenchmarkNew(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		_ = codes.New()
	}
}
