package spool

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
)

// BenchmarkPut measures durable (fsync) Put throughput; concurrent writers share fsyncs.
func BenchmarkPut(b *testing.B) {
	for _, size := range []int{200, 3000} {
		for _, writers := range []int{1, 64} {
			b.Run(fmt.Sprintf("payload=%dB/writers=%d", size, writers), func(b *testing.B) {
				s := open(b, b.TempDir(), Options{MaxBytes: 1 << 30})
				payload := make([]byte, size)
				var n atomic.Int64
				b.SetBytes(int64(size))
				b.ResetTimer()
				var wg sync.WaitGroup
				for w := 0; w < writers; w++ {
					wg.Add(1)
					go func() {
						defer wg.Done()
						dev := fmt.Sprintf("dev%03d", w)
						for n.Add(1) <= int64(b.N) {
							if _, err := s.Put(context.Background(), Entry{Device: dev, Class: Waveform, Payload: payload}); err != nil {
								b.Error(err)
								return
							}
						}
					}()
				}
				wg.Wait()
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "entries/s")
			})
		}
	}
}

// BenchmarkNextAck drains 200 B entries from 64 devices, 100 per Next, each Ack durable.
func BenchmarkNextAck(b *testing.B) {
	dir := b.TempDir()
	fill := open(b, dir, Options{MaxBytes: 1 << 30, NoSync: true})
	payload := make([]byte, 200)
	for i := 0; i < b.N; i++ {
		if _, err := fill.Put(context.Background(), Entry{Device: fmt.Sprintf("dev%03d", i%64), Class: Class(1 + i%3), Payload: payload}); err != nil {
			b.Fatal(err)
		}
	}
	fill.Close()
	s := open(b, dir, Options{MaxBytes: 1 << 30})
	b.ResetTimer()
	n := 0
	for n < b.N {
		es, err := s.Next(100)
		if err != nil {
			b.Fatal(err)
		}
		if len(es) == 0 {
			b.Fatalf("drained %d of %d", n, b.N)
		}
		if err := s.Ack(es...); err != nil {
			b.Fatal(err)
		}
		n += len(es)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "entries/s")
}
