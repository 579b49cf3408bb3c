package api_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/iomt/iomt/api"
)

type namedPatient struct {
	ID     string
	Name   string
	Family string
	Given  []string
	Gender string
	MRN    string
}

// A patient's gender and name parts are set at creation or by PATCH and returned with the
// patient; a name given only in parts is displayed as given names then family name and follows
// the parts when they change; a typed name stays. A gender outside FHIR's administrative
// genders, or an empty given name, is refused with 400 naming the field, and changes nothing.
// The audit names the fields changed, not their values.
func TestPatientGenderAndName(t *testing.T) {
	srv, audit := newServer(t)
	var p namedPatient
	if code := call(t, srv, "POST", "/api/v1/patients", `{"family":" Curie ","given":["Marie","Salomea"],"gender":"female","mrn":"m1"}`, &p); code != 201 ||
		p.Name != "Marie Salomea Curie" || p.Family != "Curie" || !slices.Equal(p.Given, []string{"Marie", "Salomea"}) || p.Gender != "female" {
		t.Fatalf("create from parts: %d %+v", code, p)
	}
	var got namedPatient
	if code := call(t, srv, "GET", "/api/v1/patients/"+p.ID, "", &got); code != 200 || !equalNamed(got, p) {
		t.Fatalf("read: %d %+v, want %+v", code, got, p)
	}
	var typed namedPatient
	if code := call(t, srv, "POST", "/api/v1/patients", `{"name":"Dr Ada King","family":"King","given":["Ada"]}`, &typed); code != 201 || typed.Name != "Dr Ada King" || typed.Gender != "" {
		t.Fatalf("create with a typed name: %d %+v", code, typed)
	}
	var plain namedPatient
	if code := call(t, srv, "POST", "/api/v1/patients", `{"name":"Bea"}`, &plain); code != 201 || plain.Family != "" || plain.Given != nil || plain.Gender != "" {
		t.Fatalf("create with a name only: %d %+v", code, plain)
	}

	var problem api.Problem
	for body, want := range map[string]string{
		`{"name":"Cy","gender":"m"}`:        `"gender" must be one of male, female, other, unknown (or left out), got "m"`,
		`{"name":"Cy","gender":"Female"}`:   `"gender" must be one of male, female, other, unknown`,
		`{"family":"Cy","given":["A"," "]}`: `"given" names cannot be empty (given[1])`,
		`{"given":[],"family":" "}`:         `"name" is required (or its parts, "family" and "given")`,
		`{"name":"Cy","gender":1}`:          "invalid JSON body",
		`{"name":"Cy","given":"Cy"}`:        "invalid JSON body",
	} {
		if code := call(t, srv, "POST", "/api/v1/patients", body, &problem); code != 400 || !strings.Contains(problem.Detail, want) {
			t.Errorf("create %s: %d %+v, want 400 %q", body, code, problem, want)
		}
	}
	var list struct{ Patients []namedPatient }
	if call(t, srv, "GET", "/api/v1/patients", "", &list); len(list.Patients) != 3 {
		t.Fatalf("a refused create left a patient: %+v", list.Patients)
	}

	// Refused: nothing of the request is applied.
	for body, want := range map[string]string{
		`{"family":"Sklodowska","gender":"f"}`: `"gender" must be one of male, female, other, unknown (or left out), got "f"`,
		`{"gender":"other","given":[""]}`:      `"given" names cannot be empty (given[0])`,
	} {
		if code := call(t, srv, "PATCH", "/api/v1/patients/"+p.ID, body, &problem); code != 400 || !strings.Contains(problem.Detail, want) {
			t.Errorf("PATCH %s: %d %+v, want 400 %q", body, code, problem, want)
		}
	}
	if call(t, srv, "GET", "/api/v1/patients/"+p.ID, "", reset(&got)); !equalNamed(got, p) {
		t.Fatalf("a refused PATCH changed the patient: %+v", got)
	}

	// The parts change; the name, their join, follows. Gender "" clears it.
	want := p
	want.Family, want.Given, want.Name, want.Gender = "Skłodowska", []string{"Maria"}, "Maria Skłodowska", ""
	if code := call(t, srv, "PATCH", "/api/v1/patients/"+p.ID, `{"family":"Skłodowska","given":["Maria"],"gender":""}`, reset(&got)); code != 200 || !equalNamed(got, want) {
		t.Fatalf("PATCH of the parts: %d %+v, want %+v", code, got, want)
	}
	// A typed name stays when a part changes; clearing the parts leaves the name.
	if code := call(t, srv, "PATCH", "/api/v1/patients/"+typed.ID, `{"family":"Lovelace","gender":"female"}`, reset(&got)); code != 200 || got.Name != "Dr Ada King" || got.Family != "Lovelace" || got.Gender != "female" {
		t.Fatalf("PATCH of a typed name's family: %d %+v", code, got)
	}
	if code := call(t, srv, "PATCH", "/api/v1/patients/"+p.ID, `{"family":"","given":[]}`, reset(&got)); code != 200 || got.Name != "Maria Skłodowska" || got.Family != "" || got.Given != nil {
		t.Fatalf("PATCH clearing the parts: %d %+v", code, got)
	}
	// null keeps a field, as for the others.
	if code := call(t, srv, "PATCH", "/api/v1/patients/"+typed.ID, `{"gender":null,"given":null}`, reset(&got)); code != 200 || got.Gender != "female" || !slices.Equal(got.Given, []string{"Ada"}) {
		t.Fatalf("PATCH with nulls: %d %+v", code, got)
	}

	updates := audit.records(t, "patient.update")
	if len(updates) != 6 {
		t.Fatalf("update audit: %d records, want 6: %v", len(updates), updates)
	}
	if r := updates[2]; r["patient"] != p.ID || r["status"] != 200.0 || r["changed"] != "name,family,given,gender" {
		t.Errorf("change of the parts audited as %v", r)
	}
	if r := updates[3]; r["changed"] != "family,gender" {
		t.Errorf("change of a family name and gender audited as %v", r)
	}
	for _, r := range updates {
		for k, v := range r {
			if s, ok := v.(string); ok && (strings.Contains(s, "Skłodowska") || strings.Contains(s, "female") || strings.Contains(s, "Lovelace")) {
				t.Errorf("audit %s = %q: the values of identifying fields stay out of the audit log", k, s)
			}
		}
	}
}

func equalNamed(a, b namedPatient) bool {
	return a.ID == b.ID && a.Name == b.Name && a.Family == b.Family && slices.Equal(a.Given, b.Given) && a.Gender == b.Gender && a.MRN == b.MRN
}

// reset empties p before a reply is decoded into it: fields a reply leaves out must not keep
// the previous reply's values.
func reset(p *namedPatient) *namedPatient {
	*p = namedPatient{}
	return p
}
