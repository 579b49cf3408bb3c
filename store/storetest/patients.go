package storetest

import (
	"context"
	"errors"
	"reflect"
	"testing"

	"github.com/iomt/iomt"
)

// Gender and the parts of the name are kept by create, replaced by update (a patient without
// them has none: nil given names, whichever the store), listed with the patient; a gender
// outside FHIR's administrative genders is refused by both without changing anything.
func testPatientGenderAndName(t *testing.T, s iomt.Store) {
	ctx := context.Background()
	get := func(id string) iomt.Patient {
		t.Helper()
		p, err := s.Patient(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	curie := iomt.Patient{ID: "p1", Tenant: "t1", Name: "Marie Salomea Skłodowska Curie", Family: "Curie", Given: []string{"Marie", "Salomea"},
		Gender: iomt.GenderFemale, BirthDate: "1867-11-07", MRN: "m1", SpO2Scale: 2, CreatedAt: T0}
	if err := s.CreatePatient(ctx, curie); err != nil {
		t.Fatal(err)
	}
	if err := s.CreatePatient(ctx, iomt.Patient{ID: "p2", Tenant: "t1", Name: "Bea", CreatedAt: T0}); err != nil {
		t.Fatal(err)
	}
	if p := get("p1"); !reflect.DeepEqual(p, curie) {
		t.Fatalf("read\n%+v, want\n%+v", p, curie)
	}
	if p := get("p2"); p.Gender != "" || p.Family != "" || p.Given != nil {
		t.Fatalf("a patient created without them has gender %q, family %q, given %#v", p.Gender, p.Family, p.Given)
	}
	ps, err := s.Patients(ctx, iomt.PatientFilter{Tenant: "t1"})
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) != 2 || !reflect.DeepEqual(ps[0], curie) || ps[1].Given != nil {
		t.Fatalf("Patients: %+v", ps)
	}

	// Update replaces all three, and can clear them.
	nw := curie
	nw.Gender, nw.Family, nw.Given = iomt.GenderUnknown, "Skłodowska", []string{"Maria"}
	if err := s.UpdatePatient(ctx, nw); err != nil {
		t.Fatal(err)
	}
	if p := get("p1"); !reflect.DeepEqual(p, nw) {
		t.Fatalf("after update\n%+v, want\n%+v", p, nw)
	}
	nw.Gender, nw.Family, nw.Given = "", "", nil
	if err := s.UpdatePatient(ctx, nw); err != nil {
		t.Fatal(err)
	}
	if p := get("p1"); !reflect.DeepEqual(p, nw) {
		t.Fatalf("after clearing\n%+v, want\n%+v", p, nw)
	}
	if err := s.UpdatePatient(ctx, iomt.Patient{ID: "p2", Name: "Bea", Gender: iomt.GenderMale, Given: []string{}}); err != nil {
		t.Fatal(err)
	}
	if p := get("p2"); p.Gender != "male" || len(p.Given) != 0 {
		t.Fatalf("p2 after update: %+v", p)
	}

	for _, bad := range []string{"m", "F", "Female", "diverse"} {
		if err := s.UpdatePatient(ctx, iomt.Patient{ID: "p2", Name: "Changed", Gender: bad}); !errors.Is(err, iomt.ErrInvalid) {
			t.Fatalf("update to gender %q: %v, want ErrInvalid", bad, err)
		}
		if p := get("p2"); p.Gender != "male" || p.Name != "Bea" {
			t.Fatalf("a refused update (gender %q) changed p2: %+v", bad, p)
		}
		if err := s.CreatePatient(ctx, iomt.Patient{ID: "p3", Tenant: "t1", Name: "Cy", Gender: bad, CreatedAt: T0}); !errors.Is(err, iomt.ErrInvalid) {
			t.Fatalf("create with gender %q: %v, want ErrInvalid", bad, err)
		}
		if _, err := s.Patient(ctx, "p3"); !errors.Is(err, iomt.ErrNotFound) {
			t.Fatalf("a refused create (gender %q) left a patient: %v", bad, err)
		}
	}
}

// testPatientCGMLimits: a patient's CGM alert limits are kept, replaced and cleared by an
// update, and limits the alert monitor could not use are refused, changing nothing.
func testPatientCGMLimits(t *testing.T, s iomt.Store) {
	ctx := context.Background()
	limits := iomt.GlucoseLimits{UrgentLow: 60, Low: 80, High: 180, UrgentHigh: 250}
	p := iomt.Patient{ID: "g1", Tenant: "t1", Name: "Gil", CGMLimits: limits, CreatedAt: T0}
	if err := s.CreatePatient(ctx, p); err != nil {
		t.Fatal(err)
	}
	check := func(want iomt.GlucoseLimits) {
		t.Helper()
		got, err := s.Patient(ctx, "g1")
		if err != nil {
			t.Fatal(err)
		}
		if got.CGMLimits != want {
			t.Fatalf("CGM limits %+v, want %+v", got.CGMLimits, want)
		}
	}
	check(limits)
	p.CGMLimits.High = 200
	if err := s.UpdatePatient(ctx, p); err != nil {
		t.Fatal(err)
	}
	check(p.CGMLimits)
	for _, bad := range []iomt.GlucoseLimits{
		{UrgentLow: 60, Low: 80},                             // not all four
		{UrgentLow: 80, Low: 70, High: 180, UrgentHigh: 250}, // out of order
		{UrgentLow: 30, Low: 70, High: 180, UrgentHigh: 250}, // below what CGMs read
		{UrgentLow: 55, Low: 70, High: 180, UrgentHigh: 450}, // above
	} {
		q := p
		q.CGMLimits = bad
		if err := s.UpdatePatient(ctx, q); !errors.Is(err, iomt.ErrInvalid) {
			t.Fatalf("update to %+v: %v, want ErrInvalid", bad, err)
		}
		q.ID = "g2"
		if err := s.CreatePatient(ctx, q); !errors.Is(err, iomt.ErrInvalid) {
			t.Fatalf("create with %+v: %v, want ErrInvalid", bad, err)
		}
	}
	check(p.CGMLimits)
	if _, err := s.Patient(ctx, "g2"); !errors.Is(err, iomt.ErrNotFound) {
		t.Fatalf("a refused create left a patient: %v", err)
	}
	p.CGMLimits = iomt.GlucoseLimits{}
	if err := s.UpdatePatient(ctx, p); err != nil {
		t.Fatal(err)
	}
	check(iomt.GlucoseLimits{})
}
