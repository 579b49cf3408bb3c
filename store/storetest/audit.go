package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/iomt/iomt"
)

// AuditEvent returns a valid audit record at T0 + i seconds (Time, Tenant, Actor, Action,
// Outcome set); tests change what they need.
func AuditEvent(i int, actor, action string, patients ...string) iomt.AuditEvent {
	return iomt.AuditEvent{Time: T0.Add(time.Duration(i) * time.Second), Tenant: iomt.DefaultTenant, Actor: actor,
		Action: action, Outcome: iomt.OutcomeSuccess, Patients: patients}
}

func appendAudit(t *testing.T, s iomt.AuditStore, events ...iomt.AuditEvent) []iomt.AuditEvent {
	t.Helper()
	out, err := s.AppendAudit(context.Background(), events)
	if err != nil {
		t.Fatalf("AppendAudit: %v", err)
	}
	if len(out) != len(events) {
		t.Fatalf("AppendAudit returned %d records for %d", len(out), len(events))
	}
	return out
}

func auditEvents(t *testing.T, s iomt.AuditStore, f iomt.AuditFilter) []iomt.AuditEvent {
	t.Helper()
	out, err := s.AuditEvents(context.Background(), f)
	if err != nil {
		t.Fatalf("AuditEvents(%+v): %v", f, err)
	}
	return out
}

// CheckChain fails t unless events are records 1..len(events) of one valid chain.
func CheckChain(t testing.TB, events []iomt.AuditEvent) {
	t.Helper()
	prev := iomt.GenesisHash()
	for i, e := range events {
		if e.Seq != uint64(i+1) {
			t.Fatalf("record %d has seq %d", i+1, e.Seq)
		}
		if !bytes.Equal(e.Prev, prev) {
			t.Fatalf("record %d: prev %x, want %x", e.Seq, e.Prev, prev)
		}
		if h := e.ChainHash(prev); !bytes.Equal(e.Hash, h) {
			t.Fatalf("record %d: hash %x, want %x", e.Seq, e.Hash, h)
		}
		prev = e.Hash
	}
}

func seqs(events []iomt.AuditEvent) []uint64 {
	out := []uint64{}
	for _, e := range events {
		out = append(out, e.Seq)
	}
	return out
}

// Appends assign Seq 1, 2, ... across calls, chain each record to the one before and return
// the records exactly as they read back: time in UTC at millisecond precision, no empty lists.
func testAuditAppend(t *testing.T, s iomt.Store) {
	if got := auditEvents(t, s, iomt.AuditFilter{}); len(got) != 0 {
		t.Fatalf("a new store has %d audit records", len(got))
	}
	first := AuditEvent(0, "user:u1", "patient.read", "p1")
	first.Time = first.Time.Add(1234567 * time.Nanosecond).In(time.FixedZone("CET", 3600)) // kept as 1 ms, UTC
	first.ActorName, first.Status, first.Resource, first.Source = "Dr Ada", 200, "/api/v1/patients/p1", "192.0.2.7:5123"
	first.Detail = map[string]string{"query": "a=1", "z": "ü"}
	second := AuditEvent(1, "device:d1", "session.signin")
	second.Patients, second.Detail = []string{}, map[string]string{} // stored as none
	second.Outcome, second.Reason = iomt.OutcomeDenied, "bad password"
	a := appendAudit(t, s, first, second)
	b := appendAudit(t, s, AuditEvent(2, "user:u2", "breakglass.open", "p2", "p3"))
	got := append(a, b...)
	if want := T0.Add(time.Millisecond); !got[0].Time.Equal(want) || got[0].Time.Location() != time.UTC {
		t.Errorf("time stored as %v, want %v in UTC", got[0].Time, want)
	}
	if got[1].Patients != nil || got[1].Detail != nil {
		t.Errorf("empty patients and detail returned as %#v, %#v; want nil", got[1].Patients, got[1].Detail)
	}
	CheckChain(t, got)
	read := auditEvents(t, s, iomt.AuditFilter{})
	if !reflect.DeepEqual(read, got) {
		t.Fatalf("read back\n%+v\nwant (as AppendAudit returned)\n%+v", read, got)
	}
	if out, err := s.AppendAudit(context.Background(), nil); err != nil || len(out) != 0 {
		t.Fatalf("empty append: %v, %v", out, err)
	}
	c := appendAudit(t, s, AuditEvent(3, "user:u1", "patient.read"))
	if c[0].Seq != 4 || !bytes.Equal(c[0].Prev, got[2].Hash) {
		t.Fatalf("fourth record: seq %d prev %x, want 4 and %x", c[0].Seq, c[0].Prev, got[2].Hash)
	}
}

// Every filter of AuditFilter, alone and together.
func testAuditFilters(t *testing.T, s iomt.Store) {
	ev := []iomt.AuditEvent{
		AuditEvent(0, "user:u1", "patient.read", "p1"),               // 1
		AuditEvent(10, "user:u2", "patient.search", "p1", "p2"),      // 2
		AuditEvent(20, "user:u1", "observation.read", "p2"),          // 3
		AuditEvent(30, "device:d1", "patient", "p1"),                 // 4: "patient" exactly
		AuditEvent(40, "user:u1", "patients.list", "p3", "p1", "p1"), // 5: a patient named twice
		AuditEvent(50, "user:u2", "session.signin"),                  // 6
	}
	ev[5].Tenant = "t2"
	appendAudit(t, s, ev[:3]...)
	appendAudit(t, s, ev[3:]...)
	for _, tc := range []struct {
		f    iomt.AuditFilter
		want []uint64
	}{
		{iomt.AuditFilter{}, []uint64{1, 2, 3, 4, 5, 6}},
		{iomt.AuditFilter{Patient: "p1"}, []uint64{1, 2, 4, 5}},
		{iomt.AuditFilter{Patient: "p2"}, []uint64{2, 3}},
		{iomt.AuditFilter{Patient: "p9"}, []uint64{}},
		{iomt.AuditFilter{Actor: "user:u1"}, []uint64{1, 3, 5}},
		{iomt.AuditFilter{Actor: "user:u"}, []uint64{}},
		{iomt.AuditFilter{Action: "patient.read"}, []uint64{1}},
		{iomt.AuditFilter{Action: "patient."}, []uint64{1, 2}},
		{iomt.AuditFilter{Action: "patient"}, []uint64{4}},
		{iomt.AuditFilter{Action: "patient.r"}, []uint64{}}, // a prefix must end in "."
		{iomt.AuditFilter{Since: T0.Add(20 * time.Second)}, []uint64{3, 4, 5, 6}},
		{iomt.AuditFilter{Until: T0.Add(20 * time.Second)}, []uint64{1, 2}},
		{iomt.AuditFilter{Since: T0.Add(10 * time.Second), Until: T0.Add(40 * time.Second)}, []uint64{2, 3, 4}},
		{iomt.AuditFilter{AfterSeq: 4}, []uint64{5, 6}},
		{iomt.AuditFilter{AfterSeq: 6}, []uint64{}},
		{iomt.AuditFilter{AfterSeq: ^uint64(0)}, []uint64{}},
		{iomt.AuditFilter{Limit: 2}, []uint64{1, 2}},
		{iomt.AuditFilter{AfterSeq: 1, Limit: 2}, []uint64{2, 3}},
		{iomt.AuditFilter{Tenant: "t2"}, []uint64{6}},
		{iomt.AuditFilter{Tenant: iomt.DefaultTenant, Patient: "p1", Actor: "user:u1"}, []uint64{1, 5}},
		{iomt.AuditFilter{Patient: "p1", AfterSeq: 1, Limit: 2}, []uint64{2, 4}},
		{iomt.AuditFilter{Actor: "user:u2", Action: "session."}, []uint64{6}},
		{iomt.AuditFilter{Patient: "p1", Since: T0.Add(5 * time.Second), Action: "patient."}, []uint64{2}},
	} {
		if got := seqs(auditEvents(t, s, tc.f)); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("AuditEvents(%+v) = %v, want %v", tc.f, got, tc.want)
		}
	}
}

// Appends from many goroutines at once form one chain with no gap, and each caller gets its
// records as stored.
func testAuditConcurrent(t *testing.T, s iomt.Store) {
	const workers, rounds = 16, 20
	var wg sync.WaitGroup
	var mu sync.Mutex
	returned := map[uint64]iomt.AuditEvent{}
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range rounds {
				batch := make([]iomt.AuditEvent, 1+r%3)
				for i := range batch {
					batch[i] = AuditEvent(r, fmt.Sprintf("user:w%d", w), "patient.read", fmt.Sprintf("p%d", w))
				}
				out, err := s.AppendAudit(context.Background(), batch)
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				for i, e := range out {
					if i > 0 && e.Seq != out[i-1].Seq+1 {
						errs <- fmt.Errorf("one append's records are not consecutive: %d after %d", e.Seq, out[i-1].Seq)
					}
					returned[e.Seq] = e
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	all := auditEvents(t, s, iomt.AuditFilter{})
	want := workers * (rounds/3*6 + []int{0, 1, 3}[rounds%3])
	if len(all) != want {
		t.Fatalf("%d records stored, want %d", len(all), want)
	}
	CheckChain(t, all)
	for _, e := range all {
		if r, ok := returned[e.Seq]; !ok || !reflect.DeepEqual(r, e) {
			t.Fatalf("record %d stored as %+v, returned as %+v", e.Seq, e, r)
		}
	}
}

// A record a store cannot keep faithfully is refused with ErrInvalid, and the batch it is in
// is not appended.
func testAuditInvalid(t *testing.T, s iomt.Store) {
	ctx := context.Background()
	ok := AuditEvent(0, "user:u1", "patient.read", "p1")
	for name, mod := range map[string]func(e *iomt.AuditEvent){
		"no time":       func(e *iomt.AuditEvent) { e.Time = time.Time{} },
		"no actor":      func(e *iomt.AuditEvent) { e.Actor = "" },
		"no action":     func(e *iomt.AuditEvent) { e.Action = "" },
		"bad outcome":   func(e *iomt.AuditEvent) { e.Outcome = "ok" },
		"NUL reason":    func(e *iomt.AuditEvent) { e.Reason = "a\x00b" },
		"bad UTF-8":     func(e *iomt.AuditEvent) { e.ActorName = "\xff" },
		"NUL patient":   func(e *iomt.AuditEvent) { e.Patients = []string{"p\x00"} },
		"empty patient": func(e *iomt.AuditEvent) { e.Patients = []string{""} },
		"NUL detail":    func(e *iomt.AuditEvent) { e.Detail = map[string]string{"k": "\x00"} },
	} {
		bad := ok
		mod(&bad)
		if _, err := s.AppendAudit(ctx, []iomt.AuditEvent{ok, bad}); !errors.Is(err, iomt.ErrInvalid) {
			t.Errorf("%s: AppendAudit error %v, want ErrInvalid", name, err)
		}
	}
	if got := auditEvents(t, s, iomt.AuditFilter{}); len(got) != 0 {
		t.Fatalf("refused batches left %d records", len(got))
	}
	if out := appendAudit(t, s, ok); out[0].Seq != 1 {
		t.Fatalf("first record after refusals has seq %d", out[0].Seq)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := s.AppendAudit(cctx, []iomt.AuditEvent{ok}); !errors.Is(err, context.Canceled) {
		t.Errorf("AppendAudit with a cancelled context: %v", err)
	}
	if _, err := s.AuditEvents(cctx, iomt.AuditFilter{}); !errors.Is(err, context.Canceled) {
		t.Errorf("AuditEvents with a cancelled context: %v", err)
	}
	if out := appendAudit(t, s, ok); out[0].Seq != 2 {
		t.Fatalf("record after a cancelled append has seq %d, want 2", out[0].Seq)
	}
}

// Checkpoints are kept as given (time at millisecond precision) and listed by Seq.
func testAuditCheckpoints(t *testing.T, s iomt.Store) {
	ctx := context.Background()
	if cs, err := s.AuditCheckpoints(ctx); err != nil || len(cs) != 0 {
		t.Fatalf("a new store's checkpoints: %v, %v", cs, err)
	}
	mk := func(seq uint64, key string) iomt.AuditCheckpoint {
		return iomt.AuditCheckpoint{Seq: seq, Hash: bytes.Repeat([]byte{byte(seq)}, 32), Time: T0.Add(time.Duration(seq) * time.Second),
			KeyID: key, Signature: bytes.Repeat([]byte{7}, 64)}
	}
	late := mk(2000, "0123456789abcdef")
	early := mk(1000, "fedcba9876543210")
	early.Time = early.Time.Add(500 * time.Microsecond) // stored as whole milliseconds
	for _, c := range []iomt.AuditCheckpoint{late, early, mk(1000, "0123456789abcdef"), late} {
		if err := s.SaveAuditCheckpoint(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	early.Time = early.Time.Truncate(time.Millisecond)
	cs, err := s.AuditCheckpoints(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []iomt.AuditCheckpoint{mk(1000, "0123456789abcdef"), early, late}
	if !reflect.DeepEqual(cs, want) {
		t.Fatalf("checkpoints\n%+v\nwant\n%+v", cs, want)
	}
	for name, mod := range map[string]func(c *iomt.AuditCheckpoint){
		"seq 0":        func(c *iomt.AuditCheckpoint) { c.Seq = 0 },
		"short hash":   func(c *iomt.AuditCheckpoint) { c.Hash = c.Hash[:31] },
		"no key":       func(c *iomt.AuditCheckpoint) { c.KeyID = "" },
		"no signature": func(c *iomt.AuditCheckpoint) { c.Signature = nil },
		"no time":      func(c *iomt.AuditCheckpoint) { c.Time = time.Time{} },
	} {
		c := mk(3000, "0123456789abcdef")
		mod(&c)
		if err := s.SaveAuditCheckpoint(ctx, c); !errors.Is(err, iomt.ErrInvalid) {
			t.Errorf("%s: SaveAuditCheckpoint error %v, want ErrInvalid", name, err)
		}
	}
}
