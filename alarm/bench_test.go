package alarm

import (
	"strconv"
	"testing"
	"time"

	"github.com/iomt/iomt"
)

// BenchmarkObserve feeds one-second batches (ECG: HR + RR; oximeter: SpO2 + pulse rate) of
// 1,000 patients to the default rules, NEWS2 condition included; ns/op is per batch.
func BenchmarkObserve(b *testing.B) {
	const patients = 1000
	c := newClock()
	e := newEngine(b, c, Config{})
	batches := make([]iomt.Batch, 0, 2*patients)
	for i := range patients {
		p := "p" + strconv.Itoa(i)
		batches = append(batches,
			batch(p, p+"-ecg", t0, obs("8867-4", 80+float64(i%7)), obs("9279-1", 16)),
			batch(p, p+"-ox", t0, obs("59408-5", 96), obs("8889-8", 80)))
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		bt := &batches[i%len(batches)]
		if i%len(batches) == 0 {
			c.Add(time.Second)
		}
		for j := range bt.Observations {
			bt.Observations[j].Time = c.now
		}
		bt.Received = c.now
		e.Observe(*bt)
		i++
	}
}

// BenchmarkTick is one Tick over 1,000 patients with two devices each.
func BenchmarkTick(b *testing.B) {
	c := newClock()
	e := newEngine(b, c, Config{})
	for i := range 1000 {
		p := "p" + strconv.Itoa(i)
		e.Observe(batch(p, p+"-ecg", c.now, obs("8867-4", 80)))
		e.Observe(batch(p, p+"-ox", c.now, obs("59408-5", 96)))
	}
	b.ReportAllocs()
	for b.Loop() {
		c.Add(time.Second)
		e.Tick(c.now)
	}
}
