package nats

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/iomt/iomt"
)

// Benchmarks run on an embedded server (in this process, so sharing its CPUs), or on the
// server named by IOMT_TEST_NATS when it is set.
//
//	go test ./bus/nats -run XXX -bench . -benchtime 3s
func benchEnv(b *testing.B) *env {
	if url := os.Getenv(envURL); url != "" {
		return external(b, url)
	}
	return embedded(b)
}

var benchSeq atomic.Int64

func benchBatch(kind string, patient int) iomt.Batch {
	i := int(benchSeq.Add(1)) // unique readings: no batch is a duplicate of another
	p := fmt.Sprintf("patient-%04d", patient)
	if kind == "ecg250" {
		return ecgBatch(p, i)
	}
	return vitalsBatch(p, i)
}

// BenchmarkPublish measures Publish (which waits for the PubAck) one at a time and from 16
// goroutines, and, for comparison, raw asynchronous publishing with a window of 256 pending
// acks, which is what a batching Publish could reach.
func BenchmarkPublish(b *testing.B) {
	for _, kind := range []string{"vitals5", "ecg250"} {
		b.Run(kind+"/sync", func(b *testing.B) {
			bus := benchEnv(b).open(nil)
			ctx := context.Background()
			for i := 0; b.Loop(); i++ {
				if err := bus.Publish(ctx, benchBatch(kind, i%1000)); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
		})
		b.Run(kind+"/parallel16", func(b *testing.B) {
			bus := benchEnv(b).open(nil)
			ctx := context.Background()
			var n atomic.Int64
			b.SetParallelism(16 / max(1, runtimeProcs()))
			b.ResetTimer()
			start := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := bus.Publish(ctx, benchBatch(kind, int(n.Add(1))%1000)); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
		})
		b.Run(kind+"/async256", func(b *testing.B) {
			e := benchEnv(b)
			bus := e.open(nil)
			js, err := jetstream.New(bus.nc, jetstream.WithPublishAsyncMaxPending(256))
			if err != nil {
				b.Fatal(err)
			}
			var buf []byte
			start := time.Now()
			for i := 0; b.Loop(); i++ {
				batch := benchBatch(kind, i%1000)
				buf = encodeBatch(buf[:0], &batch)
				msg := &natsgo.Msg{
					Subject: bus.subjects[Partition(batch.Patient, bus.opts.Partitions)],
					Data:    append([]byte(nil), buf...),
					Header:  natsgo.Header{jetstream.MsgIDHeader: []string{MsgID(&batch)}},
				}
				if _, err := js.PublishMsgAsync(msg); err != nil {
					b.Fatal(err)
				}
			}
			select {
			case <-js.PublishAsyncComplete():
			case <-time.After(30 * time.Second):
				b.Fatal("async acks did not arrive")
			}
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
		})
	}
}

// BenchmarkEndToEnd measures the time from the start of Publish to the handler, for a named
// group (durable consumers, one batch in flight per partition) and for a broadcast, with one
// publisher at a time and with 8 concurrent publishers.
func BenchmarkEndToEnd(b *testing.B) {
	for _, group := range []string{"group", ""} {
		for _, pubs := range []int{1, 8} {
			name := "group"
			if group == "" {
				name = "broadcast"
			}
			b.Run(fmt.Sprintf("%s/publishers=%d", name, pubs), func(b *testing.B) {
				benchEndToEnd(b, group, pubs)
			})
		}
	}
}

func benchEndToEnd(b *testing.B, group string, pubs int) {
	bus := benchEnv(b).open(nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var mu sync.Mutex
	lat := make([]time.Duration, 0, 1<<16)
	var got atomic.Int64
	err := bus.Subscribe(ctx, group, func(_ context.Context, batch iomt.Batch) error {
		d := time.Since(batch.Received) // Received carries the time Publish was called
		mu.Lock()
		lat = append(lat, d)
		mu.Unlock()
		got.Add(1)
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	if group != "" {
		eventually(b, 10*time.Second, "leases", func() bool { return len(bus.Owned(group)) == bus.Partitions() })
	}
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	var next atomic.Int64
	for range pubs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(b.N) {
				batch := benchBatch("vitals5", int(benchSeq.Load()%1000))
				batch.Received = time.Now()
				if err := bus.Publish(ctx, batch); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	deadline := time.Now().Add(60 * time.Second)
	for got.Load() < int64(b.N) && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	mu.Lock()
	defer mu.Unlock()
	if len(lat) < b.N {
		b.Fatalf("%d of %d batches arrived", len(lat), b.N)
	}
	slices.Sort(lat)
	q := func(f float64) float64 { return float64(lat[int(f*float64(len(lat)-1))].Microseconds()) / 1000 }
	b.ReportMetric(q(0.5), "p50-ms")
	b.ReportMetric(q(0.99), "p99-ms")
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
}

func runtimeProcs() int { return runtime.GOMAXPROCS(0) }

// BenchmarkGroupDrain measures how fast one member works through a backlog spread over all
// partitions (one batch in flight per partition), with a handler that does nothing.
func BenchmarkGroupDrain(b *testing.B) {
	e := benchEnv(b)
	bus := e.open(nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	gate := make(chan struct{})
	var got atomic.Int64
	err := bus.Subscribe(ctx, "drain", func(ctx context.Context, _ iomt.Batch) error {
		select {
		case <-gate:
		case <-ctx.Done():
		}
		got.Add(1)
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	eventually(b, 10*time.Second, "leases", func() bool { return len(bus.Owned("drain")) == bus.Partitions() })
	js, err := jetstream.New(bus.nc, jetstream.WithPublishAsyncMaxPending(256))
	if err != nil {
		b.Fatal(err)
	}
	for i := range b.N {
		batch := benchBatch("vitals5", i%1000)
		msg := &natsgo.Msg{
			Subject: bus.subjects[Partition(batch.Patient, bus.opts.Partitions)],
			Data:    encodeBatch(nil, &batch),
			Header:  natsgo.Header{jetstream.MsgIDHeader: []string{MsgID(&batch)}},
		}
		if _, err := js.PublishMsgAsync(msg); err != nil {
			b.Fatal(err)
		}
	}
	<-js.PublishAsyncComplete()
	b.ResetTimer()
	start := time.Now()
	close(gate)
	eventually(b, 120*time.Second, "the backlog to drain", func() bool { return got.Load() >= int64(b.N) })
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
}
