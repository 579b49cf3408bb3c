package iomt_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/iomt/iomt"
)

func TestCheckGender(t *testing.T) {
	for _, g := range []string{"", "male", "female", "other", "unknown"} {
		if err := iomt.CheckGender(g); err != nil {
			t.Errorf("CheckGender(%q): %v", g, err)
		}
	}
	for _, g := range []string{"m", "F", "Male", " female", "x", "diverse"} {
		err := iomt.CheckGender(g)
		if !errors.Is(err, iomt.ErrInvalid) || !strings.Contains(err.Error(), "male, female, other, unknown") {
			t.Errorf("CheckGender(%q) = %v, want ErrInvalid listing the genders", g, err)
		}
	}
}

func TestJoinName(t *testing.T) {
	for _, c := range []struct {
		given  []string
		family string
		want   string
	}{
		{[]string{"Marie", "Salomea"}, "Curie", "Marie Salomea Curie"},
		{nil, "Curie", "Curie"},
		{[]string{"Marie"}, "", "Marie"},
		{[]string{" Marie ", "", "  "}, " Curie", "Marie Curie"},
		{nil, "", ""},
	} {
		if got := iomt.JoinName(c.given, c.family); got != c.want {
			t.Errorf("JoinName(%q, %q) = %q, want %q", c.given, c.family, got, c.want)
		}
	}
}

// CheckPatient refuses control characters and over-long text in every name and identifier
// with a *TextError naming the field; a name's parts are blamed before the name joined from
// them.
func TestCheckPatientText(t *testing.T) {
	ok := iomt.Patient{ID: "p1", Tenant: "t1", Name: "Ada Lovelace", Family: "Lovelace", Given: []string{"Ada"}}
	if err := iomt.CheckPatient(ok); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		p     iomt.Patient
		field string
	}{
		{iomt.Patient{Name: "Ada\x00"}, "name"},
		{iomt.Patient{Name: "Ada\x00 Lovelace", Given: []string{"Ada\x00"}, Family: "Lovelace"}, "given[0]"},
		{iomt.Patient{Name: "Ada \tLovelace", Family: "\tLovelace"}, "family"},
		{iomt.Patient{Name: "Ada", MRN: strings.Repeat("1", iomt.MaxNameLen+1)}, "mrn"},
		{iomt.Patient{Name: "Ada", Location: "ward\x7f"}, "location"},
		{iomt.Patient{ID: "p\x001", Name: "Ada"}, "id"},
	} {
		var te *iomt.TextError
		err := iomt.CheckPatient(c.p)
		if !errors.As(err, &te) || te.Field != c.field || !errors.Is(err, iomt.ErrInvalid) {
			t.Errorf("CheckPatient(%q): %v, want a TextError on %s", c.p.Name, err, c.field)
		}
	}
}
