package audit_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/iomt/iomt"
	"github.com/iomt/iomt/audit"
	"github.com/iomt/iomt/store/embedded"
	"github.com/iomt/iomt/store/postgres"
)

// BenchmarkRecorder records from many goroutines at once, each waiting for its record to be
// durable (fsynced by Pebble; committed by PostgreSQL), and reports durable records/s. It is
// the bar of ≥ 20,000 records/s on the embedded store.
//
//	go test -run - -bench Recorder ./audit/
func BenchmarkRecorder(b *testing.B) {
	for _, backend := range []string{"embedded", "postgres"} {
		for _, callers := range []int{64, 256, 1024} {
			b.Run(fmt.Sprintf("%s/callers=%d", backend, callers), func(b *testing.B) {
				var store iomt.AuditStore
				if backend == "embedded" {
					s, err := embedded.Open(b.TempDir(), embedded.Options{Logger: quiet})
					if err != nil {
						b.Fatal(err)
					}
					defer s.Close()
					store = s
				} else {
					s, err := postgres.Open(context.Background(), testDB(b), postgres.Options{Logger: quiet})
					if err != nil {
						b.Fatal(err)
					}
					defer s.Close()
					store = s
				}
				benchRecorder(b, store, callers)
			})
		}
	}
}

func benchRecorder(b *testing.B, store iomt.AuditStore, callers int) {
	ctx := context.Background()
	r := audit.NewRecorder(store, audit.Options{Signer: audit.NewSigner(newKey(b)), Logger: quiet, Node: "bench"})
	defer r.Close(ctx)
	// A realistic record: a user reading a patient's observations over HTTP.
	e := iomt.AuditEvent{Actor: "user:4f2a9c1e7b3d5a60", ActorName: "nurse.jones", Action: "observation.search", Outcome: iomt.OutcomeSuccess,
		Status: 200, Patients: []string{"aaaaaaaaaaaaaaaa"}, Resource: "/api/v1/patients/aaaaaaaaaaaaaaaa/observations", Source: "10.1.2.3:51234"}
	var next sync.WaitGroup
	work := make(chan struct{}, callers)
	errs := make(chan error, 1)
	b.ResetTimer()
	for range callers {
		next.Add(1)
		go func() {
			defer next.Done()
			for range work {
				if err := r.Record(ctx, e); err != nil {
					select {
					case errs <- err:
					default:
					}
					return
				}
			}
		}()
	}
	for range b.N {
		work <- struct{}{}
	}
	close(work)
	next.Wait()
	b.StopTimer()
	select {
	case err := <-errs:
		b.Fatal(err)
	default:
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
}
