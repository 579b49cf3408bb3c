package fhir_test

import (
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// ehrPatient is a Patient as an EHR sends one: narrative, meta, gender, an official name in
// parts.
const ehrPatient = `{
  "resourceType": "Patient",
  "meta": {"versionId": "7", "lastUpdated": "2026-10-01T12:00:00Z", "source": "urn:ehr:epic", "profile": ["http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient"], "tag": [{"system": "urn:ehr", "code": "imported"}]},
  "text": {"status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">Marie Curie, female, born 1967-11-07</div>"},
  "identifier": [{"use": "usual", "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}]}, "system": "urn:ehr:mrn", "value": "MRN-1867"}],
  "active": true,
  "name": [{"use": "official", "family": "Curie", "given": ["Marie", "Salomea"]}],
  "gender": "female",
  "birthDate": "1967-11-07"
}`

// A Patient with gender, a name in parts, a narrative and meta is created (201); it reads back
// with the gender and the name as text, family and given, without the sender's narrative or
// meta. A PUT changes gender and name parts and keeps the SpO2 scale. A gender outside the
// administrative genders, elements iomt does not keep (address, telecom, name prefix, ...) and
// security labels are refused with 422 naming the element.
func TestPatientGenderAndName(t *testing.T) {
	f := newFixture(t)
	st, p, h := f.do(t, "POST", "Patient", ehrPatient)
	if st != 201 || p["id"] == nil {
		t.Fatalf("create: %d %v", st, p)
	}
	id := p["id"].(string)
	wantName := map[string]any{"text": "Marie Salomea Curie", "family": "Curie", "given": []any{"Marie", "Salomea"}}
	for _, m := range []map[string]any{p, f.get(t, "Patient/"+id)} {
		if m["gender"] != "female" || !reflect.DeepEqual(m["name"], []any{wantName}) || m["birthDate"] != "1967-11-07" {
			t.Errorf("Patient/%s: %v", id, m)
		}
		if m["text"] != nil || m["meta"] != nil {
			t.Errorf("the sender's narrative or meta came back: %v", m)
		}
	}
	if !strings.HasSuffix(h.Get("Location"), "/Patient/"+id) {
		t.Errorf("Location %q", h.Get("Location"))
	}
	got, err := f.store.Patient(t.Context(), id)
	if err != nil || got.Name != "Marie Salomea Curie" || got.Family != "Curie" || !slices.Equal(got.Given, []string{"Marie", "Salomea"}) || got.Gender != "female" || got.MRN != "MRN-1867" {
		t.Fatalf("stored: %+v %v", got, err)
	}
	for q, want := range map[string]int{"name=curie": 1, "name=Salomea": 1, "name=Marie%20Sal": 1, "name=Sklodowska": 0} {
		if b := f.get(t, "Patient?"+q); total(b) != want {
			t.Errorf("Patient?%s: %d, want %d", q, total(b), want)
		}
	}

	// PUT replaces gender and name (text and parts) and keeps the NEWS2 SpO2 scale.
	got.SpO2Scale = 2
	if err := f.store.UpdatePatient(t.Context(), got); err != nil {
		t.Fatal(err)
	}
	var put map[string]any
	if err := json.Unmarshal([]byte(ehrPatient), &put); err != nil {
		t.Fatal(err)
	}
	put["id"], put["gender"] = id, "other"
	put["name"] = []any{map[string]any{"use": "usual", "text": "Maria Skłodowska-Curie", "family": "Skłodowska-Curie", "given": []any{"Maria"}}}
	if st, m, _ := f.do(t, "PUT", "Patient/"+id, put); st != 200 || m["gender"] != "other" ||
		!reflect.DeepEqual(m["name"], []any{map[string]any{"text": "Maria Skłodowska-Curie", "family": "Skłodowska-Curie", "given": []any{"Maria"}}}) {
		t.Fatalf("PUT: %d %v", st, m)
	}
	got, err = f.store.Patient(t.Context(), id)
	if err != nil || got.Gender != "other" || got.Family != "Skłodowska-Curie" || !slices.Equal(got.Given, []string{"Maria"}) || got.SpO2Scale != 2 {
		t.Fatalf("stored after PUT: %+v %v", got, err)
	}
	// A PUT without gender and with a name as text only leaves neither gender nor parts.
	delete(put, "gender")
	put["name"] = []any{map[string]any{"text": "M. Curie"}}
	if st, m, _ := f.do(t, "PUT", "Patient/"+id, put); st != 200 || m["gender"] != nil || !reflect.DeepEqual(m["name"], []any{map[string]any{"text": "M. Curie"}}) {
		t.Fatalf("PUT without gender or parts: %d %v", st, m)
	}
	if got, err := f.store.Patient(t.Context(), id); err != nil || got.Gender != "" || got.Family != "" || got.Given != nil || got.SpO2Scale != 2 {
		t.Fatalf("stored after the second PUT: %+v %v", got, err)
	}

	// Refused by name, and nothing is stored.
	with := func(field, value string) string {
		return strings.Replace(ehrPatient, `"active": true,`, `"active": true, `+field+`: `+value+`,`, 1)
	}
	for _, tc := range []struct {
		body       string
		code, expr string
	}{
		{strings.Replace(ehrPatient, `"gender": "female"`, `"gender": "m"`, 1), "code-invalid", "Patient.gender"},
		{strings.Replace(ehrPatient, `"gender": "female"`, `"gender": "F"`, 1), "code-invalid", "Patient.gender"},
		{with(`"address"`, `[{"city": "Paris"}]`), "not-supported", "Patient.address"},
		{with(`"telecom"`, `[{"system": "phone", "value": "+33 1 00"}]`), "not-supported", "Patient.telecom"},
		{with(`"contact"`, `[{"name": {"text": "Pierre"}}]`), "not-supported", "Patient.contact"},
		{with(`"photo"`, `[{"url": "http://x/p.jpg"}]`), "not-supported", "Patient.photo"},
		{with(`"extension"`, `[{"url": "http://x", "valueString": "y"}]`), "not-supported", "Patient.extension"},
		{strings.Replace(ehrPatient, `"use": "official",`, `"use": "official", "prefix": ["Mme"],`, 1), "not-supported", "Patient.name[0].prefix"},
		{strings.Replace(ehrPatient, `"use": "official",`, `"use": "official", "period": {"start": "1895"},`, 1), "not-supported", "Patient.name[0].period"},
		{strings.Replace(ehrPatient, `["Marie", "Salomea"]`, `["Marie", " "]`, 1), "value", "Patient.name[0].given[1]"},
		{strings.Replace(ehrPatient, `"tag":`, `"security": [{"system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "code": "R"}], "tag":`, 1), "not-supported", "Patient.meta.security"},
	} {
		st, m, _ := f.do(t, "POST", "Patient", tc.body)
		if st != 422 {
			t.Errorf("%s: %d, want 422: %v", tc.expr, st, m)
			continue
		}
		code, diag := issue(t, m)
		var expr string
		if es, ok := m["issue"].([]any)[0].(map[string]any)["expression"].([]any); ok {
			expr = es[0].(string)
		}
		if code != tc.code || expr != tc.expr || diag == "" {
			t.Errorf("issue %s at %s (%q), want %s at %s", code, expr, diag, tc.code, tc.expr)
		}
		if tc.expr == "Patient.address" && !strings.Contains(diag, "data minimisation") {
			t.Errorf("refusal of an address does not say why: %q", diag)
		}
		if tc.expr == "Patient.gender" && !strings.Contains(diag, "male, female, other, unknown") {
			t.Errorf("refusal of a gender does not list the genders: %q", diag)
		}
	}
	if b := f.get(t, "Patient?identifier=MRN-1867"); total(b) != 1 {
		t.Errorf("refused Patients were stored: %d with MRN-1867", total(b))
	}
}
