package embedded

import (
	"context"
	"testing"
	"time"

	"github.com/iomt/iomt"
)

// BenchmarkReplay measures Open after a crash: replaying a WAL of 1,000 devices × 4 vital
// signs × 10 minutes (2.4M samples) written since the last checkpoint.
func BenchmarkReplay(b *testing.B) {
	dir := b.TempDir()
	s, err := Open(dir, Options{Logger: quiet, CheckpointInterval: -1})
	if err != nil {
		b.Fatal(err)
	}
	devs := make([]*device, fleet)
	for k := range devs {
		devs[k] = newDevice(k)
	}
	batches := make([]iomt.Batch, fleet)
	n := 0
	for sec := 0; sec < 600; sec++ {
		for k, d := range devs {
			batches[k] = d.vitals(sec)
			n += 4
		}
		if _, err := s.Append(context.Background(), batches); err != nil {
			b.Fatal(err)
		}
	}
	walBytes := dirBytes(b, dir+"/wal")
	s.abandon()
	b.ResetTimer()
	var el time.Duration
	for i := 0; i < b.N; i++ {
		start := time.Now()
		s, err := Open(dir, Options{Logger: quiet, CheckpointInterval: -1})
		if err != nil {
			b.Fatal(err)
		}
		el += time.Since(start)
		b.StopTimer()
		s.abandon()
		b.StartTimer()
	}
	b.ReportMetric(float64(n)*float64(b.N)/el.Seconds(), "samples/s")
	b.ReportMetric(float64(walBytes)/float64(n), "walB/sample")
}
