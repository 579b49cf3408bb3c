package embedded

import (
	"context"
	"reflect"
	"testing"

	"github.com/iomt/iomt"
	"github.com/iomt/iomt/store/storetest"
)

// The trail survives a close and reopen, and a crash (no checkpoint, no flush): the chain goes
// on from where it was, with the indexes.
func TestAuditDurable(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openTest(t, dir)
	first, err := s.AppendAudit(ctx, []iomt.AuditEvent{storetest.AuditEvent(0, "user:u1", "patient.read", "p1"),
		storetest.AuditEvent(1, "user:u2", "patient.read", "p2")})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openTest(t, dir)
	second, err := s.AppendAudit(ctx, []iomt.AuditEvent{storetest.AuditEvent(2, "user:u1", "patient.read", "p1")})
	if err != nil {
		t.Fatal(err)
	}
	s.abandon() // as kill -9 would leave it
	s = openTest(t, dir)
	defer s.Close()
	third, err := s.AppendAudit(ctx, []iomt.AuditEvent{storetest.AuditEvent(3, "user:u3", "session.signin")})
	if err != nil {
		t.Fatal(err)
	}
	all, err := s.AuditEvents(ctx, iomt.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	want := append(append(first, second...), third...)
	if !reflect.DeepEqual(all, want) {
		t.Fatalf("after reopen and crash\n%+v\nwant\n%+v", all, want)
	}
	storetest.CheckChain(t, all)
	p1, err := s.AuditEvents(ctx, iomt.AuditFilter{Patient: "p1"})
	if err != nil || len(p1) != 2 || p1[0].Seq != 1 || p1[1].Seq != 3 {
		t.Fatalf("p1's records after reopen: %+v, %v", p1, err)
	}
}

// Without its head key (lost, or deleted by someone covering tracks), the store continues
// after the last record rather than overwriting record 1.
func TestAuditHeadLost(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openTest(t, dir)
	if _, err := s.AppendAudit(ctx, []iomt.AuditEvent{storetest.AuditEvent(0, "user:u1", "patient.read"), storetest.AuditEvent(1, "user:u1", "patient.read")}); err != nil {
		t.Fatal(err)
	}
	if err := s.db.Delete(keyAuditHead, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openTest(t, dir)
	defer s.Close()
	out, err := s.AppendAudit(ctx, []iomt.AuditEvent{storetest.AuditEvent(2, "user:u1", "patient.read")})
	if err != nil {
		t.Fatal(err)
	}
	if out[0].Seq != 3 {
		t.Fatalf("append after the head key was lost got seq %d, want 3", out[0].Seq)
	}
	all, _ := s.AuditEvents(ctx, iomt.AuditFilter{})
	storetest.CheckChain(t, all)
}
