package sim

import (
	"bytes"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/iomt/iomt/sensing"
	"github.com/iomt/iomt/wire/senml"
)

// The direct encoder writes the same bytes as wire/senml's encoders of AppendPack's records,
// for every device of every built-in scenario over simulated minutes.
func TestPackEncoderMatchesSenML(t *testing.T) {
	start := time.Date(2026, 11, 24, 3, 0, 0, 0, time.UTC)
	packs := 0
	for name, sc := range sensing.Builtin() {
		p := sensing.NewPatient(sc, 7, start)
		var em []sensing.Emission
		var pk senml.Pack
		var buf []byte
		encs := map[bool]*packEncoder{false: newPackEncoder(false), true: newPackEncoder(true)}
		for s := 1; s <= 180; s++ {
			em = p.AdvanceAppend(em[:0], start.Add(time.Duration(s)*time.Second))
			for i := range em {
				e := &em[i]
				var n int
				pk, n = AppendPack(pk[:0], e)
				for _, cbor := range []bool{false, true} {
					got, gn, err := encs[cbor].appendPack(buf[:0], e)
					if err != nil {
						t.Fatalf("%s: %v", name, err)
					}
					buf = got
					if len(pk) == 0 {
						if len(got) != 0 {
							t.Fatalf("%s: empty emission encoded as %x", name, got)
						}
						continue
					}
					want, err := senml.EncodeJSON(pk)
					if cbor {
						want, err = senml.EncodeCBOR(pk)
					}
					if err != nil {
						t.Fatal(err)
					}
					if gn != n || !bytes.Equal(got, want) {
						t.Fatalf("%s %s cbor=%v: values %d (want %d)\n got %q\nwant %q", name, e.Device, cbor, gn, n, got, want)
					}
					packs++
				}
			}
		}
	}
	if packs < 100 {
		t.Fatalf("only %d packs compared", packs)
	}
}

// Floats take the same CBOR width as in fxamacker/cbor with ShortestFloat16, including
// subnormal halves and values just outside float16 and float32.
func TestCBORFloatMatchesSenML(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	vals := []float64{0, math.Copysign(0, -1), 1, -1, 0.5, 65504, 65505, 65520, 1e-5, 5.960464477539063e-08, 6.1e-5,
		math.MaxFloat32, math.SmallestNonzeroFloat32, 1e300, 0.1, 0.004, 3.14159, 1 << 24, 1<<24 + 1}
	for range 20000 {
		switch r.IntN(4) {
		case 0:
			vals = append(vals, float64(float32(r.NormFloat64()*100)))
		case 1:
			vals = append(vals, math.Round(r.NormFloat64()*1000)/1000)
		case 2:
			vals = append(vals, math.Ldexp(float64(r.IntN(2048)), r.IntN(60)-40))
		default:
			vals = append(vals, r.NormFloat64()*math.Pow(10, float64(r.IntN(40)-20)))
		}
	}
	for _, v := range vals {
		pk := senml.Pack{{Value: &v}}
		want, err := senml.EncodeCBOR(pk)
		if err != nil {
			t.Fatal(err)
		}
		// want is [ {2: v} ]: array head, map head, key, then the float.
		got := cborFloat(nil, v)
		if !bytes.Equal(got, want[3:]) {
			t.Fatalf("%v: got %x want %x", v, got, want[3:])
		}
	}
}

func TestPackEncoderRefusesNaN(t *testing.T) {
	e := sensing.Emission{Device: "x", Time: time.Now(), Samples: []sensing.Sample{{Code: "8867-4", Time: time.Now(), Value: math.NaN()}}}
	for _, cbor := range []bool{false, true} {
		if _, _, err := newPackEncoder(cbor).appendPack(nil, &e); err == nil {
			t.Fatalf("cbor=%v: NaN encoded", cbor)
		}
	}
}

func BenchmarkPackEncoder(b *testing.B) {
	start := time.Date(2026, 11, 24, 3, 0, 0, 0, time.UTC)
	for _, kind := range []string{sensing.ECGPatch, sensing.PulseOximeter} {
		sc := Bed{Kinds: []string{kind}}.scenario(sensing.Builtin()["stable-adult"])
		p := sensing.NewPatient(sc, 1, start)
		em := p.AdvanceAppend(nil, start.Add(10*time.Second))
		e := &em[len(em)-1]
		for _, format := range []string{"json", "cbor"} {
			b.Run(kind+"/"+format+"/direct", func(b *testing.B) {
				enc := newPackEncoder(format == "cbor")
				var buf []byte
				for b.Loop() {
					buf, _, _ = enc.appendPack(buf[:0], e)
				}
				b.SetBytes(int64(len(buf)))
			})
			b.Run(kind+"/"+format+"/senml", func(b *testing.B) {
				var pk senml.Pack
				for b.Loop() {
					pk, _ = AppendPack(pk[:0], e)
					if format == "cbor" {
						_, _ = senml.EncodeCBOR(pk)
					} else {
						_, _ = senml.EncodeJSON(pk)
					}
				}
			})
		}
	}
}

// BenchmarkAdvance is the model's cost per device-second.
func BenchmarkAdvance(b *testing.B) {
	start := time.Date(2026, 11, 24, 3, 0, 0, 0, time.UTC)
	for _, kind := range []string{sensing.ECGPatch, sensing.PulseOximeter} {
		b.Run(kind, func(b *testing.B) {
			sc := Bed{Kinds: []string{kind}}.scenario(sensing.Builtin()["stable-adult"])
			p := sensing.NewPatient(sc, 1, start)
			var em []sensing.Emission
			s := 0
			for b.Loop() {
				s++
				em = p.AdvanceAppend(em[:0], start.Add(time.Duration(s)*time.Second))
			}
		})
	}
}
