package embedded

import (
	"math/rand/v2"
	"testing"
)

func BenchmarkDecodeChunk(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 2))
	c := newChunkEnc()
	v := 72.0
	for i := 0; i < 7200; i++ {
		v = walk(r, v, 40, 180)
		c.append(1_700_000_000_000+int64(i)*1000, v)
	}
	data := c.bytes(false)
	buf := make([]sample, 0, 7200)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, _, err := decodeChunk(buf[:0], data); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*7200), "ns/sample")
}
