package fhir_test

import (
	"strings"
	"testing"
)

// Control characters (NUL above all) and over-long text in a Patient's name parts or MRN, or a
// Device's identifiers, are refused with 422 and an OperationOutcome naming the element and
// the reason, by create (POST) and update (PUT) alike, and nothing is stored.
func TestHostileText(t *testing.T) {
	f := newFixture(t)
	before := total(f.get(t, "Patient"))
	st, m, _ := f.do(t, "POST", "Patient", ehrPatient)
	if st != 201 {
		t.Fatalf("create: %d %v", st, m)
	}
	id := m["id"].(string)
	long := strings.Repeat("x", 201)
	for _, tc := range []struct {
		body, expr, why string
	}{
		{strings.Replace(ehrPatient, `"family": "Curie"`, `"family": "Cu\u0000rie"`, 1), "Patient.name[0].family", "has a control character (U+0000)"},
		{strings.Replace(ehrPatient, `["Marie", "Salomea"]`, `["Marie", "Salo\u001bmea"]`, 1), "Patient.name[0].given[1]", "has a control character (U+001B)"},
		{strings.Replace(ehrPatient, `"use": "official",`, `"use": "official", "text": "Marie\u0000Curie",`, 1), "Patient.name[0].text", "has a control character (U+0000)"},
		{strings.Replace(ehrPatient, `"MRN-1867"`, `"MRN\u00001867"`, 1), "Patient.identifier.value", "has a control character (U+0000)"},
		{strings.Replace(ehrPatient, `"family": "Curie"`, `"family": "`+long+`"`, 1), "Patient.name[0].family", "is 201 bytes long, at most 200"},
	} {
		for _, w := range []struct{ method, path string }{{"POST", "Patient"}, {"PUT", "Patient/" + id}} {
			body := tc.body
			if w.method == "PUT" {
				body = strings.Replace(body, `"resourceType": "Patient",`, `"resourceType": "Patient", "id": "`+id+`",`, 1)
			}
			st, m, _ := f.do(t, w.method, w.path, body)
			if st != 422 {
				t.Errorf("%s %s (%s): %d, want 422: %v", w.method, w.path, tc.expr, st, m)
				continue
			}
			code, diag := issue(t, m)
			var expr string
			if es, ok := m["issue"].([]any)[0].(map[string]any)["expression"].([]any); ok {
				expr = es[0].(string)
			}
			if code != "value" || expr != tc.expr || !strings.Contains(diag, tc.why) {
				t.Errorf("%s: issue %s at %s (%q), want value at %s saying %q", w.method, code, expr, diag, tc.expr, tc.why)
			}
		}
	}
	if n := total(f.get(t, "Patient")); n != before+1 {
		t.Errorf("refused Patients were stored: %d patients, want %d", n, before+1)
	}
	st, m, _ = f.do(t, "GET", "Patient/"+id, nil)
	if st != 200 || m["name"].([]any)[0].(map[string]any)["family"] != "Curie" {
		t.Errorf("after refused PUTs: %d %v", st, m["name"])
	}

	dev := `{"resourceType": "Device", "identifier": [{"system": "urn:sn", "value": "SN\u00001"}]}`
	st, m, _ = f.do(t, "POST", "Device", dev)
	if code, diag := issue(t, m); st != 422 || code != "value" || !strings.Contains(diag, "identifier 0: value has a control character (U+0000)") {
		t.Errorf("Device with a NUL in an identifier: %d %s %q, want 422 value naming it", st, code, diag)
	}
}
