package embedded

import (
	"math"
	"math/rand/v2"
	"testing"
)

func roundTrip(t *testing.T, in []sample) []byte {
	t.Helper()
	c := newChunkEnc()
	for _, s := range in {
		c.append(s.t, s.v)
	}
	b := c.bytes(true)
	out, sealed, err := decodeChunk(nil, b)
	if err != nil {
		t.Fatalf("decode: %v", err)
	}
	if !sealed {
		t.Fatal("sealed flag lost")
	}
	if len(out) != len(in) {
		t.Fatalf("decoded %d samples, want %d", len(out), len(in))
	}
	for i := range in {
		if out[i].t != in[i].t || math.Float64bits(out[i].v) != math.Float64bits(in[i].v) {
			t.Fatalf("sample %d: got %v want %v", i, out[i], in[i])
		}
	}
	return b
}

func TestChunkRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	cases := map[string][]sample{}
	// 1 Hz heart rate, integer random walk.
	var hr []sample
	v := 72.0
	for i := 0; i < 7200; i++ {
		v += float64(r.IntN(3) - 1)
		hr = append(hr, sample{1_700_000_000_000 + int64(i)*1000, v})
	}
	cases["hr"] = hr
	// Jittered and irregular times, random floats, extreme values.
	var odd []sample
	tm := int64(-5_000_000)
	for i := 0; i < 3000; i++ {
		switch r.IntN(6) {
		case 0:
			tm += int64(r.IntN(100))
		case 1:
			tm += int64(r.IntN(5000))
		case 2:
			tm += int64(r.IntN(1_000_000))
		case 3:
			tm += int64(r.Uint64() >> 24)
		default:
			tm += 1000
		}
		var x float64
		switch r.IntN(5) {
		case 0:
			x = r.NormFloat64() * 1e6
		case 1:
			x = math.Inf(1)
		case 2:
			x = math.NaN()
		case 3:
			x = math.Copysign(0, -1)
		default:
			x = math.Float64frombits(r.Uint64())
		}
		odd = append(odd, sample{tm, x})
	}
	cases["odd"] = odd
	cases["one"] = []sample{{42, 1.5}}
	cases["extremes"] = []sample{{math.MinInt64 / 4, 0}, {0, 1}, {math.MaxInt64 / 4, 2}, {math.MaxInt64/4 + 1, 3}}
	for name, in := range cases {
		t.Run(name, func(t *testing.T) {
			b := roundTrip(t, in)
			t.Logf("%d samples, %d bytes, %.3f B/sample", len(in), len(b), float64(len(b))/float64(len(in)))
		})
	}
	// The 1 Hz integer vital sign is what the 1.5 B/sample target is about.
	b := roundTrip(t, hr)
	if per := float64(len(b)) / float64(len(hr)); per > 1.5 {
		t.Errorf("1 Hz heart rate takes %.3f B/sample, want <= 1.5", per)
	}
}

func TestChunkDecodeRejectsTruncation(t *testing.T) {
	c := newChunkEnc()
	for i := 0; i < 500; i++ {
		c.append(int64(i)*1000+int64(i%7), float64(i%13)*1.1)
	}
	b := c.bytes(false)
	for cut := 0; cut < len(b)-1; cut++ {
		if _, _, err := decodeChunk(nil, b[:cut]); err == nil {
			t.Fatalf("truncated chunk of %d/%d bytes decoded without error", cut, len(b))
		}
	}
}

func TestWaveRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	in := []int32{math.MaxInt32, math.MinInt32, 0, -1, 1}
	for i := 0; i < 1000; i++ {
		in = append(in, int32(r.Uint32()))
	}
	for i := 0; i < 1000; i++ {
		in = append(in, int32(500*math.Sin(float64(i)/10)))
	}
	b := encodeWave(nil, in)
	out, err := decodeWave(nil, b, len(in))
	if err != nil {
		t.Fatal(err)
	}
	for i := range in {
		if in[i] != out[i] {
			t.Fatalf("sample %d: %d != %d", i, out[i], in[i])
		}
	}
	if _, err := decodeWave(nil, b[:len(b)-1], len(in)); err == nil {
		t.Fatal("truncated waveform decoded")
	}
}

func FuzzDecodeChunk(f *testing.F) {
	c := newChunkEnc()
	for i := 0; i < 50; i++ {
		c.append(int64(i)*1000+int64(i%3), float64(70+i%5))
	}
	f.Add(c.bytes(false))
	f.Add([]byte{1, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		out, _, err := decodeChunk(nil, b)
		if err != nil {
			return
		}
		// A chunk that decodes re-encodes to something that decodes to the same samples.
		c := newChunkEnc()
		for _, s := range out {
			c.append(s.t, s.v)
		}
		again, _, err := decodeChunk(nil, c.bytes(false))
		if err != nil || len(again) != len(out) {
			t.Fatalf("re-encoded chunk: %v (%d vs %d samples)", err, len(again), len(out))
		}
	})
}

func FuzzDecodeWave(f *testing.F) {
	f.Add(encodeWave(nil, []int32{1, 5, -3, 1 << 30}), 4)
	f.Fuzz(func(t *testing.T, b []byte, n int) {
		_, _ = decodeWave(nil, b, n)
	})
}
