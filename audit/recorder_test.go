package audit_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/iomt/iomt"
	"github.com/iomt/iomt/audit"
	"github.com/iomt/iomt/store/embedded"
)

func openEmbedded(t testing.TB) *embedded.Store {
	t.Helper()
	s, err := embedded.Open(t.TempDir(), embedded.Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// Many goroutines record at once: each Record returns once its record is in the store, the
// records form one chain with every caller's record in it, appends were shared (group
// commit), and checkpoints were signed along the way and at Close.
func TestRecorderConcurrent(t *testing.T) {
	ctx := context.Background()
	s := openEmbedded(t)
	key := newKey(t)
	counting := &countingStore{AuditStore: s}
	r := audit.NewRecorder(counting, audit.Options{Signer: audit.NewSigner(key), CheckpointEvery: 100, Logger: quiet, Node: "n1"})
	const workers, each = 40, 25
	var wg sync.WaitGroup
	errs := make(chan error, workers*each)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				e := event(i)
				e.Actor = fmt.Sprintf("user:w%d", w)
				e.Detail = map[string]string{"i": fmt.Sprint(i)}
				if err := r.Record(ctx, e); err != nil {
					errs <- err
					continue
				}
				// Durable means stored: the record is there when Record returns.
				got, err := s.AuditEvents(ctx, iomt.AuditFilter{Actor: e.Actor})
				if err != nil || len(got) != i+1 || got[i].Detail["i"] != fmt.Sprint(i) {
					errs <- fmt.Errorf("worker %d: after Record %d the store has %d of its records (%v)", w, i, len(got), err)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if err := r.Close(ctx); err != nil {
		t.Fatal(err)
	}
	all, err := s.AuditEvents(ctx, iomt.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != workers*each {
		t.Fatalf("%d records, want %d", len(all), workers*each)
	}
	for _, e := range all {
		if e.Detail["node"] != "n1" || e.Tenant != iomt.DefaultTenant {
			t.Fatalf("record %d: node %q tenant %q", e.Seq, e.Detail["node"], e.Tenant)
		}
	}
	if n := counting.appends(); n >= workers*each {
		t.Errorf("%d appends for %d records: no group commit", n, workers*each)
	} else {
		t.Logf("%d records in %d appends", workers*each, n)
	}
	rep, err := audit.Verify(ctx, s, []ed25519.PublicKey{key.Public().(ed25519.PublicKey)})
	if err != nil || !rep.OK() {
		t.Fatalf("verify: %v %v", err, rep.Problem)
	}
	// A checkpoint follows as soon as 100 records are unsigned; an append holds at most one
	// record per worker, so checkpoints are less than 100 + workers records apart.
	cps, _ := s.AuditCheckpoints(ctx)
	var prev uint64
	for _, c := range cps {
		if c.Seq-prev >= 100+workers {
			t.Errorf("checkpoints at %d and %d: %d records apart", prev, c.Seq, c.Seq-prev)
		}
		prev = c.Seq
	}
	if rep.Checkpoints != len(cps) || prev != workers*each {
		t.Errorf("%d of %d checkpoints verified, the last at %d; want all, the last at %d", rep.Checkpoints, len(cps), prev, workers*each)
	}
}

// countingStore counts appends.
type countingStore struct {
	iomt.AuditStore
	mu sync.Mutex
	n  int
}

func (c *countingStore) AppendAudit(ctx context.Context, e []iomt.AuditEvent) ([]iomt.AuditEvent, error) {
	c.mu.Lock()
	c.n++
	c.mu.Unlock()
	return c.AuditStore.AppendAudit(ctx, e)
}

func (c *countingStore) appends() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

// A record no store can keep is refused before anything is written, with the reason; the
// callers batched with it are not affected.
func TestRecorderRefusesInvalid(t *testing.T) {
	ctx := context.Background()
	s := openEmbedded(t)
	r := audit.NewRecorder(s, audit.Options{Logger: quiet})
	defer r.Close(ctx)
	for name, e := range map[string]iomt.AuditEvent{
		"no actor":    {Action: "patient.read", Outcome: iomt.OutcomeSuccess},
		"bad outcome": {Actor: "user:u", Action: "patient.read", Outcome: "fine"},
		"NUL":         {Actor: "user:u", Action: "patient.read", Outcome: iomt.OutcomeSuccess, Reason: "a\x00"},
	} {
		err := r.Record(ctx, e)
		if !errors.Is(err, iomt.ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", name, err)
		}
	}
	if err := r.Record(ctx, event(1)); err != nil {
		t.Fatal(err)
	}
	all, _ := s.AuditEvents(ctx, iomt.AuditFilter{})
	if len(all) != 1 || all[0].Seq != 1 {
		t.Fatalf("stored %+v", all)
	}
}

// A store that fails makes Record fail, so the caller does not return data unrecorded; Close
// refuses further records; a cancelled context is answered at once.
func TestRecorderFailures(t *testing.T) {
	ctx := context.Background()
	s := openEmbedded(t)
	r := audit.NewRecorder(s, audit.Options{Logger: quiet})
	if err := r.Record(ctx, event(1)); err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := r.Record(cctx, event(2)); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := r.Record(ctx, event(3)); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Errorf("record on a closed store: %v", err)
	}
	if err := r.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := r.Record(ctx, event(4)); !errors.Is(err, audit.ErrClosed) {
		t.Errorf("record after Close: %v", err)
	}
}

// With few records, a checkpoint still comes within CheckpointInterval, over the last record.
func TestRecorderCheckpointInterval(t *testing.T) {
	ctx := context.Background()
	s := openEmbedded(t)
	key := newKey(t)
	r := audit.NewRecorder(s, audit.Options{Signer: audit.NewSigner(key), CheckpointInterval: 20 * time.Millisecond, Logger: quiet})
	defer r.Close(ctx)
	for i := range 3 {
		if err := r.Record(ctx, event(i)); err != nil {
			t.Fatal(err)
		}
	}
	last, _ := s.AuditEvents(ctx, iomt.AuditFilter{AfterSeq: 2})
	deadline := time.Now().Add(10 * time.Second)
	for {
		cps, err := s.AuditCheckpoints(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(cps) > 0 {
			c := cps[len(cps)-1]
			if c.Seq != 3 || !bytes.Equal(c.Hash, last[0].Hash) || c.KeyID != audit.KeyID(key.Public().(ed25519.PublicKey)) {
				t.Fatalf("checkpoint %+v, want seq 3 hash %x", c, last[0].Hash)
			}
			if !ed25519.Verify(key.Public().(ed25519.PublicKey), c.CheckpointMessage(), c.Signature) {
				t.Fatal("checkpoint signature does not verify")
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no checkpoint within 10 s with a 20 ms interval")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// No new records: no new checkpoints.
	time.Sleep(100 * time.Millisecond)
	if cps, _ := s.AuditCheckpoints(ctx); len(cps) != 1 {
		t.Errorf("%d checkpoints over the same record", len(cps))
	}
}

// Export writes the selected records as JSON lines, across pages, up to the limit.
func TestExport(t *testing.T) {
	ctx := context.Background()
	s := openEmbedded(t)
	buildTrail(t, s, nil, 30)
	var b bytes.Buffer
	n, err := audit.Export(ctx, s, iomt.AuditFilter{Patient: "p1"}, &b)
	if err != nil || n != 6 {
		t.Fatalf("export p1: %d records, %v", n, err)
	}
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if len(lines) != 6 || !strings.Contains(lines[0], `"seq":2,`) || !strings.Contains(lines[0], `"patients":["p1"]`) || !strings.Contains(lines[0], `"hash":"`) {
		t.Fatalf("export: %q", lines)
	}
	b.Reset()
	if n, err := audit.Export(ctx, s, iomt.AuditFilter{Limit: 4, AfterSeq: 10}, &b); err != nil || n != 4 || !strings.HasPrefix(b.String(), `{"seq":11,`) {
		t.Fatalf("export with limit: %d %v %q", n, err, b.String())
	}
}
