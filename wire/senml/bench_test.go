package senml_test

import (
	"math"
	"testing"
	"time"

	"github.com/iomt/iomt/wire/senml"
)

const ecgSamples = 250 // one second of one ECG lead at 250 Hz

// ecgPack is one second of a lead II ECG as a gateway would batch it: base name, base time and
// base unit once, then one record per sample 4 ms apart.
func ecgPack() senml.Pack {
	p := make(senml.Pack, ecgSamples)
	for i := range p {
		// A crude beat: baseline wander plus a narrow R wave, to three decimals like a device.
		phase := float64(i) / ecgSamples
		mv := 0.05*math.Sin(2*math.Pi*phase) + 1.2*math.Exp(-math.Pow((phase-0.3)/0.01, 2))
		mv = math.Round(mv*1000) / 1000
		p[i] = senml.Record{Name: "MDC_ECG_ELEC_POTL_II", Time: float64(i) * 0.004, Value: &mv}
	}
	p[0].BaseName, p[0].BaseTime, p[0].BaseUnit = "urn:dev:x:", 1793700000.125, "mV"
	return p
}

func reportRecords(b *testing.B, perOp int) {
	b.ReportMetric(float64(b.N*perOp)/b.Elapsed().Seconds(), "records/s")
}

func BenchmarkDecodeJSON(b *testing.B) {
	data, err := senml.EncodeJSON(ecgPack())
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := senml.DecodeJSON(data); err != nil {
			b.Fatal(err)
		}
	}
	reportRecords(b, ecgSamples)
}

func BenchmarkDecodeCBOR(b *testing.B) {
	data, err := senml.EncodeCBOR(ecgPack())
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := senml.DecodeCBOR(data); err != nil {
			b.Fatal(err)
		}
	}
	reportRecords(b, ecgSamples)
}

func BenchmarkResolve(b *testing.B) {
	p := ecgPack()
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p.Resolve(now); err != nil {
			b.Fatal(err)
		}
	}
	reportRecords(b, ecgSamples)
}

func BenchmarkEncodeJSON(b *testing.B) {
	p := ecgPack()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := senml.EncodeJSON(p); err != nil {
			b.Fatal(err)
		}
	}
	reportRecords(b, ecgSamples)
}

func BenchmarkEncodeCBOR(b *testing.B) {
	p := ecgPack()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := senml.EncodeCBOR(p); err != nil {
			b.Fatal(err)
		}
	}
	reportRecords(b, ecgSamples)
}
