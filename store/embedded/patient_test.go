package embedded

import (
	"context"
	"slices"
	"testing"

	"github.com/cockroachdb/pebble/v2"

	"github.com/iomt/iomt"
)

// A patient record written before patients had a gender and a structured name (the exact
// bytes of that encoding) reads with those fields empty, and can be updated to have them;
// the store still reads its own record after reopening.
func TestPatientRecordWithoutGenderOrNameParts(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir)
	ctx := context.Background()
	old := `{"id":"p1","tenant":"t1","name":"Ada Lovelace","birthDate":"1815-12-10","mrn":"m1","spo2Scale":2,"createdAt":"2026-01-02T03:04:05Z"}`
	b := s.db.NewBatch()
	_ = b.Set(strKey('p', "p1"), []byte(old), nil)
	_ = b.Set(strKey('P', "t1", "p1"), nil, nil)
	_ = b.Set(strKey('M', "t1", "m1"), []byte("p1"), nil)
	if err := b.Commit(pebble.Sync); err != nil {
		t.Fatal(err)
	}
	b.Close()
	p, err := s.Patient(ctx, "p1")
	if err != nil {
		t.Fatal(err)
	}
	if p.Name != "Ada Lovelace" || p.MRN != "m1" || p.SpO2Scale != 2 || p.Gender != "" || p.Family != "" || p.Given != nil {
		t.Fatalf("old record read as %+v", p)
	}
	if ps, err := s.Patients(ctx, iomt.PatientFilter{Tenant: "t1", MRN: "m1"}); err != nil || len(ps) != 1 || ps[0].Name != "Ada Lovelace" {
		t.Fatalf("by MRN: %+v %v", ps, err)
	}
	p.Gender, p.Family, p.Given = iomt.GenderFemale, "Lovelace", []string{"Augusta", "Ada"}
	if err := s.UpdatePatient(ctx, p); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openTest(t, dir)
	defer s.Close()
	ps, err := s.Patients(ctx, iomt.PatientFilter{Tenant: "t1"})
	if err != nil || len(ps) != 1 {
		t.Fatalf("after reopening: %+v %v", ps, err)
	}
	if got := ps[0]; got.Gender != "female" || got.Family != "Lovelace" || !slices.Equal(got.Given, []string{"Augusta", "Ada"}) || got.SpO2Scale != 2 || !got.CreatedAt.Equal(p.CreatedAt) {
		t.Fatalf("after update and reopening: %+v", got)
	}
}
