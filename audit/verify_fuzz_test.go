package audit_test

import (
	"context"
	"crypto/ed25519"
	"testing"

	"github.com/iomt/iomt"
	"github.com/iomt/iomt/audit"
)

// sliceStore holds a trail in a slice, in the order a store would return it, so the fuzzer
// can damage it freely. Only what Verify calls is implemented.
type sliceStore struct {
	iomt.AuditStore
	events []iomt.AuditEvent
	cps    []iomt.AuditCheckpoint
}

func (s *sliceStore) AuditEvents(_ context.Context, f iomt.AuditFilter) ([]iomt.AuditEvent, error) {
	var out []iomt.AuditEvent
	for _, e := range s.events {
		if e.Seq > f.AfterSeq && (f.Limit == 0 || len(out) < f.Limit) {
			out = append(out, e)
		}
	}
	return out, nil
}

func (s *sliceStore) AuditCheckpoints(context.Context) ([]iomt.AuditCheckpoint, error) {
	return s.cps, nil
}

// FuzzVerify damages a valid trail of 40 records (checkpoints at 16 and 32) in the ways the
// fuzzer picks — a byte of a record's actor changed, a record deleted, two records' contents
// swapped — and checks that Verify names the first damaged record, and passes an undamaged
// trail.
func FuzzVerify(f *testing.F) {
	f.Add(uint8(0), uint8(5), uint8(0), uint8(0))
	f.Add(uint8(1), uint8(39), uint8(0), uint8(0))
	f.Add(uint8(2), uint8(3), uint8(4), uint8(0))
	f.Add(uint8(2), uint8(0), uint8(39), uint8(0))
	f.Add(uint8(3), uint8(0), uint8(0), uint8(0))
	key := ed25519.NewKeyFromSeed(make([]byte, 32))
	signer := audit.NewSigner(key)
	var base []iomt.AuditEvent
	prev := iomt.GenesisHash()
	for i := range 40 {
		e := event(i)
		e.Tenant, e.Seq, e.Prev = iomt.DefaultTenant, uint64(i+1), prev
		e.Hash = e.ChainHash(prev)
		prev = e.Hash
		base = append(base, e)
	}
	cps := []iomt.AuditCheckpoint{signer.Sign(16, base[15].Hash, t0), signer.Sign(32, base[31].Hash, t0)}
	f.Fuzz(func(t *testing.T, op, a, b, x uint8) {
		events := append([]iomt.AuditEvent(nil), base...)
		n := uint8(len(events))
		a, b = a%n, b%n
		var first uint64 // the first damaged record, 0 if none
		switch op % 4 {
		case 0: // change one byte of the actor
			act := []byte(events[a].Actor)
			act[int(x)%len(act)] ^= 1 + x%127
			events[a].Actor = string(act)
			first = uint64(a) + 1
		case 1: // delete
			events = append(events[:a], events[a+1:]...)
			if a < n-1 {
				first = uint64(a) + 1
			} // else: the last record, after the last checkpoint, goes unnoticed (see the package doc)
		case 2: // swap the contents, each keeping the other's seq
			if a == b {
				break
			}
			sa, sb := events[a].Seq, events[b].Seq
			events[a], events[b] = events[b], events[a]
			events[a].Seq, events[b].Seq = sa, sb
			first = uint64(min(a, b)) + 1
		}
		rep, err := audit.Verify(context.Background(), &sliceStore{events: events, cps: cps}, []ed25519.PublicKey{signer.PublicKey()})
		if err != nil {
			t.Fatal(err)
		}
		if first == 0 {
			if !rep.OK() {
				t.Fatalf("undamaged trail: %v", rep.Problem)
			}
			return
		}
		if rep.OK() {
			t.Fatalf("op %d at %d/%d not detected", op%4, a, b)
		}
		if rep.Problem.Seq != first {
			t.Fatalf("op %d at %d/%d: problem %v, want at record %d", op%4, a, b, rep.Problem, first)
		}
		if rep.Problem.Reason == "" || rep.Records != first-1 {
			t.Fatalf("problem %+v after %d good records", rep.Problem, rep.Records)
		}
	})
}
