package postgres

import (
	"context"
	"errors"
	"testing"

	"github.com/iomt/iomt"
	"github.com/iomt/iomt/store/storetest"
)

// A patient written by plain SQL without gender or name parts (as every patient before
// migration 0006) reads as having none; the table refuses a gender outside FHIR's
// administrative genders and a NULL given name, whoever writes.
func TestPatientGenderAndNameColumns(t *testing.T) {
	t.Parallel()
	s := openTest(t, testDB(t), Options{})
	ctx := context.Background()
	if _, err := s.Pool().Exec(ctx, `INSERT INTO patients (id, tenant, name, birth_date, created_at) VALUES ('p1', 't1', 'Ada Lovelace', '', now())`); err != nil {
		t.Fatal(err)
	}
	p, err := s.Patient(ctx, "p1")
	if err != nil || p.Name != "Ada Lovelace" || p.Gender != "" || p.Family != "" || p.Given != nil {
		t.Fatalf("patient without gender or name parts: %+v, %v", p, err)
	}
	for sql, want := range map[string]string{
		`UPDATE patients SET gender = 'm' WHERE id = 'p1'`:               "patients_gender_check",
		`UPDATE patients SET gender = 'Female' WHERE id = 'p1'`:          "patients_gender_check",
		`UPDATE patients SET given = ARRAY['Ada', NULL] WHERE id = 'p1'`: "patients_given_check",
	} {
		if _, err := s.Pool().Exec(ctx, sql); constraint(err) != want {
			t.Errorf("%s: %v, want the check constraint %s", sql, err, want)
		}
	}
	if err := s.CreatePatient(ctx, iomt.Patient{ID: "p2", Tenant: "t1", Name: "Bea", Given: []string{"B\x00"}, CreatedAt: storetest.T0}); !errors.Is(err, iomt.ErrInvalid) {
		t.Fatalf("a given name with a NUL byte: %v, want ErrInvalid", err)
	}
}
