package fhir_test

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/iomt/iomt"
	"github.com/iomt/iomt/fhir"
)

func ids(b map[string]any) []string {
	var out []string
	for _, e := range entries(b) {
		out = append(out, e["id"].(string))
	}
	slices.Sort(out)
	return out
}

// TestDirectReadsAreLimitedToTheCallersPatients: a read of another team's patient is refused
// with 403 to a clinician of the tenant (who may break the glass, and is told how), and with
// 404 to anyone else, worded as for a patient who does not exist.
func TestDirectReadsAreLimitedToTheCallersPatients(t *testing.T) {
	f := newFixture(t)
	obsP1 := entries(f.get(t, "Observation?patient="+p1+"&code=8867-4&_count=1"))[0]["id"].(string)
	obsP2 := entries(f.get(t, "Observation?patient="+p2))[0]["id"].(string)
	_, absent := f.as(t, token, "GET", "Patient/nobody", nil)
	_, absentDiag := issue(t, absent)
	for _, tc := range []struct {
		who, method, path string
		status            int
		diag              string // a part of the diagnostics, for refusals
	}{
		{"alice", "GET", "Patient/" + p1, 200, ""},
		{"alice", "GET", "Patient/" + p2, 403, "not in the care of your teams; in an emergency, open it with POST /api/v1/patients/" + p2 + "/break-glass"},
		{"bob", "GET", "Patient/" + p2, 200, ""},
		{"bob", "GET", "Patient/" + p1, 403, "break-glass"},
		{"carl", "GET", "Patient/" + p1, 200, ""},
		{"carl", "GET", "Patient/" + p2, 404, "Patient/" + p2 + " not found"},
		{"olga", "GET", "Patient/" + p1, 404, "Patient/" + p1 + " not found"},
		{"olga", "GET", "Patient/" + pOther, 200, ""},
		{"alice", "GET", "Patient/" + pOther, 404, "not found"},
		{"adam", "GET", "Patient/" + p1, 403, "roles give no access to patient data"},
		{"alice", "GET", "Observation/" + obsP1, 200, ""},
		{"alice", "GET", "Observation/" + obsP2, 403, "break-glass"},
		{"carl", "GET", "Observation/" + obsP1, 404, "Observation/" + obsP1 + " not found"}, // a carer sees a summary only
		{"olga", "GET", "Observation/" + obsP1, 404, "not found"},
		{"alice", "GET", "Observation/$lastn?patient=" + p1, 200, ""},
		{"alice", "GET", "Observation/$lastn?patient=" + p2, 403, "break-glass"},
		{"carl", "GET", "Observation/$lastn?patient=" + p1, 404, "Patient/" + p1 + " not found"},
		// Devices: bound ones as their patient's summary, and every one to admins.
		{"alice", "GET", "Device/" + dOx, 200, ""},
		{"carl", "GET", "Device/" + dOx, 200, ""},
		{"adam", "GET", "Device/" + dOx, 200, ""},
		{"adam", "GET", "Device/" + dFree, 200, ""},
		{"bob", "GET", "Device/" + dOx, 403, "break-glass"},
		{"olga", "GET", "Device/" + dOx, 404, "Device/" + dOx + " not found"},
		{"alice", "GET", "Device/" + dFree, 403, "admin role"},
		{"alice", "GET", "DeviceMetric/" + dOx + "-150456", 200, ""},
		{"bob", "GET", "DeviceMetric/" + dOx + "-150456", 403, "break-glass"},
		{"olga", "GET", "DeviceMetric/" + dOx + "-150456", 404, "DeviceMetric/" + dOx + "-150456 not found"},
	} {
		st, m := f.as(t, tc.who, tc.method, tc.path, nil)
		if st != tc.status {
			t.Errorf("%s %s %s: %d, want %d: %v", tc.who, tc.method, tc.path, st, tc.status, m)
			continue
		}
		if st == 200 {
			continue
		}
		code, diag := issue(t, m)
		wantCode := map[int]string{403: "forbidden", 404: "not-found"}[st]
		if code != wantCode || !strings.Contains(diag, tc.diag) {
			t.Errorf("%s %s: issue %s %q, want %s containing %q", tc.who, tc.path, code, diag, wantCode, tc.diag)
		}
	}
	// A hidden patient and an absent one are told apart by nothing but the id.
	_, hidden := f.as(t, "carl", "GET", "Patient/"+p2, nil)
	if _, d := issue(t, hidden); strings.ReplaceAll(d, p2, "nobody") != absentDiag {
		t.Errorf("hidden %q, absent %q", d, absentDiag)
	}
}

func TestWritesFollowThePolicy(t *testing.T) {
	f := newFixture(t)
	pat := func(id, mrn string) map[string]any {
		p := map[string]any{"resourceType": "Patient", "name": []any{map[string]any{"text": "Emmy Noether"}}, "birthDate": "1882-03-23"}
		if id != "" {
			p["id"] = id
		}
		if mrn != "" {
			p["identifier"] = []any{map[string]any{"system": "urn:iomt:mrn", "value": mrn}}
		}
		return p
	}
	cur := f.get(t, "Patient/"+p1)
	dev := map[string]any{"resourceType": "Device", "type": map[string]any{"coding": []any{map[string]any{"system": fhir.SystemDeviceKind, "code": "scale"}}}}
	for _, tc := range []struct {
		who, method, path string
		body              any
		status            int
		hdr               []string
	}{
		{"carl", "POST", "Patient", pat("", ""), 403, nil},
		{"adam", "POST", "Patient", pat("", ""), 403, nil},
		{"alice", "POST", "Patient", pat("", ""), 201, nil},
		{"svc-all", "POST", "Patient", pat("", ""), 201, nil},
		{"svc-obs", "POST", "Patient", pat("", ""), 403, nil}, // scope: Observation only
		{"alice", "PUT", "Patient/" + p1, cur, 200, nil},
		{"bob", "PUT", "Patient/" + p1, cur, 403, nil},
		{"carl", "PUT", "Patient/" + p1, cur, 404, nil},
		{"olga", "PUT", "Patient/" + p1, cur, 404, nil},
		{"alice", "PUT", "Patient/new-by-alice", pat("new-by-alice", ""), 201, nil}, // update as create
		{"carl", "PUT", "Patient/new-by-carl", pat("new-by-carl", ""), 403, nil},
		// Conditional create shows the match only to who may read it; the MRN's holder is
		// named only to them too.
		{"bob", "POST", "Patient", pat("", "MRN-001"), 403, []string{"If-None-Exist", "identifier=MRN-001"}},
		{"alice", "POST", "Patient", pat("", "MRN-001"), 200, []string{"If-None-Exist", "identifier=MRN-001"}},
		{"svc-all", "POST", "Patient", pat("", "MRN-002"), 409, []string{"If-None-Exist", "identifier=MRN-002"}},
		{"alice", "POST", "Device", dev, 403, nil},
		{"adam", "POST", "Device", dev, 201, nil},
		{"svc-all", "POST", "Device", dev, 403, nil}, // devices need the admin role, whatever the scope
		{"alice", "PUT", "Device/" + dFree, map[string]any{"resourceType": "Device", "id": dFree}, 403, nil},
		{"adam", "PUT", "Device/" + dFree, map[string]any{"resourceType": "Device", "id": dFree}, 200, nil},
	} {
		st, m := f.as(t, tc.who, tc.method, tc.path, tc.body, tc.hdr...)
		if st != tc.status {
			t.Errorf("%s %s %s: %d, want %d: %v", tc.who, tc.method, tc.path, st, tc.status, m)
		}
	}
	// A duplicate MRN names the holder to those who may read it only.
	for _, tc := range []struct{ who, mrn, want string }{
		{"alice", "MRN-001", `MRN "MRN-001" already belongs to Patient/` + p1},
		{"svc-all", "MRN-001", `MRN "MRN-001" already belongs to Patient/` + p1},
		{"alice", "MRN-002", `another patient already has MRN "MRN-002"`},
	} {
		who, want := tc.who, tc.want
		st, m := f.as(t, who, "POST", "Patient", pat("", tc.mrn))
		if _, d := issue(t, m); st != 409 || d != want {
			t.Errorf("%s: duplicate MRN: %d %q, want %q", who, st, d, want)
		}
	}
	// The new patient is known to the policy at once: the bootstrap principal reads it.
	_, m := f.as(t, "svc-all", "POST", "Patient", pat("", "MRN-NEW"))
	if st, got := f.as(t, token, "GET", "Patient/"+m["id"].(string), nil); st != 200 {
		t.Errorf("a new patient is not readable at once: %d %v", st, got)
	}
	// A clinician's new patient comes into their team's care: they read it at once, the other
	// ward does not.
	st, m := f.as(t, "alice", "POST", "Patient", pat("", "MRN-ALICE"))
	if st != 201 {
		t.Fatalf("alice creates a patient: %d %v", st, m)
	}
	if st, got := f.as(t, "alice", "GET", "Patient/"+m["id"].(string), nil); st != 200 {
		t.Errorf("alice cannot read the patient she admitted: %d %v", st, got)
	}
	if st, _ := f.as(t, "bob", "GET", "Patient/"+m["id"].(string), nil); st != 403 {
		t.Errorf("another ward reads alice's new patient: %d, want 403", st)
	}
}

func TestSearchesFilterToTheCallersPatients(t *testing.T) {
	f := newFixture(t)
	obsP1 := entries(f.get(t, "Observation?patient="+p1+"&code=8867-4&_count=1"))[0]["id"].(string)
	obsP2 := entries(f.get(t, "Observation?patient="+p2))[0]["id"].(string)
	for _, tc := range []struct {
		who, path string
		want      []string // ids, sorted
	}{
		{"alice", "Patient", []string{p1}},
		{"alice", "Patient?_id=" + p1 + "," + p2, []string{p1}},
		{"alice", "Patient?name=grace", nil},
		{"alice", "Patient?identifier=MRN-002", nil},
		{"bob", "Patient", []string{p2}},
		{"carl", "Patient", []string{p1}},
		{"olga", "Patient?identifier=MRN-001", []string{pOther}},
		{"svc-all", "Patient", []string{p1}},
		{"alice", "Device", []string{dMon, dOx, dECG}},
		{"bob", "Device?patient=" + p1, nil},
		{"bob", "Device", nil},
		{"adam", "Device", []string{dMon, dOx, dECG, dFree}},
		{"olga", "Device", nil},
		{"alice", "DeviceMetric?source=Device/" + dFree, nil},
		{"bob", "DeviceMetric", nil},
		{"alice", "DeviceMetric?_id=" + dOx + "-150456", []string{dOx + "-150456"}},
		{"bob", "DeviceMetric?_id=" + dOx + "-150456", nil},
		{"alice", "Observation?_id=" + obsP1 + "," + obsP2, []string{obsP1}},
		{"bob", "Observation?_id=" + obsP1 + "," + obsP2, []string{obsP2}},
		{"carl", "Observation?patient=" + p1, nil}, // a carer reads summaries, not the record
		{"olga", "Observation?patient=" + p1, nil},
	} {
		st, b := f.as(t, tc.who, "GET", tc.path, nil)
		if st != 200 {
			t.Errorf("%s %s: %d %v", tc.who, tc.path, st, b)
			continue
		}
		want := slices.Clone(tc.want)
		slices.Sort(want)
		if got := ids(b); !slices.Equal(got, want) || total(b) != len(want) {
			t.Errorf("%s %s: %v (total %d), want %v", tc.who, tc.path, got, total(b), want)
		}
	}
	// Paging counts what the caller may see only.
	_, b := f.as(t, "alice", "GET", "Patient?_count=1", nil)
	if total(b) != 1 || link(b, "next") != "" || link(b, "last") == "" || !strings.Contains(link(b, "last"), "_count=1") || strings.Contains(link(b, "last"), "_offset") {
		t.Errorf("paging of one patient: total %d, links %v", total(b), b["link"])
	}
	_, b = f.as(t, "alice", "GET", "DeviceMetric?_count=2", nil)
	all := f.get(t, "DeviceMetric?_count=1000")
	want := 0
	for _, m := range entries(all) {
		if src := m["source"].(map[string]any)["reference"]; src != "Device/"+dFree {
			want++
		}
	}
	if total(b) != want || len(entries(b)) != 2 || link(b, "next") == "" {
		t.Errorf("alice's metrics: total %d, want %d", total(b), want)
	}
	// Searches refused as a whole, and searches that find nothing the caller may not see.
	for _, tc := range []struct {
		who, path string
		status    int
		none      bool // finds nothing
	}{
		{"adam", "Patient", 403, false},                    // an admin reads no patient data
		{"adam", "Observation?patient=" + p1, 403, false},  // ... nor Observations
		{"adam", "Observation?_id=" + obsP1, 403, false},   // ... by id either
		{"bob", "Observation?patient=" + p1, 403, false},   // a clinician outside P1's teams, who may break the glass
		{"svc-obs", "Patient", 403, false},                 // scope: Observation only
		{"svc-obs", "Device", 403, false},                  // scope: Observation only
		{"alice", "Observation?patient=" + p1, 200, false}, // no scopes: the roles decide
		{"svc-obs", "Observation?patient=" + p1, 200, false},
		{"svc-obs", "Observation?patient=" + p2, 200, true}, // P2 is not ward A's
		{"carl", "Observation?_id=" + obsP1, 200, true},     // a carer reads summaries only
		{"alice", "Observation?patient=" + pOther, 200, true},
		{"alice", "Observation?patient=nobody", 200, true},
	} {
		st, b := f.as(t, tc.who, "GET", tc.path, nil)
		if st != tc.status {
			t.Errorf("%s %s: %d, want %d: %v", tc.who, tc.path, st, tc.status, b)
			continue
		}
		if st == 200 && (total(b) == 0) != tc.none {
			t.Errorf("%s %s: found %d", tc.who, tc.path, total(b))
		}
	}
}

// TestObservationSearchWithoutPatient: a search of Observations without a patient covers the
// caller's patients, as far as their roles and scopes let them read each record.
func TestObservationSearchWithoutPatient(t *testing.T) {
	f := newFixture(t)
	for _, tc := range []struct {
		who, path string
		status    int
		want      int
		patients  []string
	}{
		{token, "Observation?code=8867-4&_count=1000", 200, f.nHR + 1, []string{p1, p2}},
		{"alice", "Observation?code=8867-4&_count=1000", 200, f.nHR, []string{p1}},
		{"bob", "Observation?code=8867-4&_count=1000", 200, 1, []string{p2}},
		{"bob", "Observation?code=8867-4&_count=1", 200, 1, []string{p2}},
		{"carl", "Observation?code=8867-4", 200, 0, nil}, // a carer lists patients, and reads no record
		{"olga", "Observation?code=8867-4", 200, 0, nil},
		{"adam", "Observation?code=8867-4", 403, 0, nil},
		{"svc-vitals", "Observation?category=vital-signs&code=8867-4&_count=1000", 200, f.nHR, []string{p1}},
		{"svc-vitals", "Observation?code=8867-4", 403, 0, nil},
		{"alice", "Observation?code=8867-4&device=Device/" + dOx, 200, 0, nil},
	} {
		f.audit.take()
		st, b := f.as(t, tc.who, "GET", tc.path, nil)
		if st != tc.status {
			t.Errorf("%s %s: %d, want %d: %v", tc.who, tc.path, st, tc.status, b)
			continue
		}
		recs := f.audit.take()
		if len(recs) != 1 || !slices.Equal(recs[0].Patients, tc.patients) {
			t.Errorf("%s %s: audit %+v, want patients %v", tc.who, tc.path, recs, tc.patients)
		}
		if st != 200 {
			continue
		}
		if total(b) != tc.want {
			t.Errorf("%s %s: total %d, want %d", tc.who, tc.path, total(b), tc.want)
		}
		subjects := map[string]bool{}
		for _, o := range entries(b) {
			subjects[o["subject"].(map[string]any)["reference"].(string)] = true
		}
		for _, p := range []string{p1, p2} {
			if subjects["Patient/"+p] != slices.Contains(tc.patients, p) {
				t.Errorf("%s %s: subjects %v, want %v", tc.who, tc.path, subjects, tc.patients)
			}
		}
	}
}

// TestBreakTheGlass: an emergency access opens a patient to a clinician outside their team
// until it ends, and every access through it is recorded with purpose of use ETREAT.
func TestBreakTheGlass(t *testing.T) {
	f := newFixture(t)
	now := t0.Add(3 * time.Hour)
	f.src.glass = []iomt.BreakGlass{
		{ID: "g1", Tenant: iomt.DefaultTenant, User: uBob, Patient: p1, Reason: "cardiac arrest on ward A", Start: now.Add(-time.Minute), Until: now.Add(time.Hour)},
		{ID: "g2", Tenant: iomt.DefaultTenant, User: uAlice, Patient: p2, Reason: "ended", Start: now.Add(-2 * time.Hour), Until: now.Add(-time.Hour)},
	}
	f.reload(t)
	f.audit.take()
	if st, m := f.as(t, "bob", "GET", "Patient/"+p1, nil); st != 200 {
		t.Fatalf("bob with an emergency access: %d %v", st, m)
	}
	if st, _ := f.as(t, "alice", "GET", "Patient/"+p2, nil); st != 403 {
		t.Errorf("an ended emergency access still opens P2 to alice: %d", st)
	}
	_, b := f.as(t, "bob", "GET", "Patient", nil)
	_, own := f.as(t, "bob", "GET", "Patient?_id="+p2, nil)
	recs := f.audit.take()
	if !slices.Equal(ids(b), []string{p1, p2}) || len(entries(own)) != 1 || len(recs) != 4 {
		t.Fatalf("bob's patients: %v; records %d", ids(b), len(recs))
	}
	for i, want := range []struct {
		patients []string
		purpose  string
		outcome  string
	}{{[]string{p1}, "ETREAT", iomt.OutcomeSuccess}, {[]string{p2}, "", iomt.OutcomeDenied}, {[]string{p1, p2}, "ETREAT", iomt.OutcomeSuccess}, {[]string{p2}, "", iomt.OutcomeSuccess}} {
		if e := recs[i]; !slices.Equal(e.Patients, want.patients) || e.Purpose != want.purpose || e.Outcome != want.outcome {
			t.Errorf("record %d: %+v, want %v", i, e, want)
		}
	}
}

// TestSMARTScopes: a token does what both its account's roles and its scopes allow.
func TestSMARTScopes(t *testing.T) {
	f := newFixture(t)
	ecg := entries(f.get(t, "Observation?patient="+p1+"&category=procedure&_count=1"))[0]["id"].(string)
	hr := entries(f.get(t, "Observation?patient="+p1+"&code=8867-4&_count=1"))[0]["id"].(string)
	for _, tc := range []struct {
		who, method, path string
		status            int
		body              string
	}{
		// system/Observation.rs reads Observations of ward A's patients, and nothing else.
		{"svc-obs", "GET", "Observation?patient=" + p1, 200, ""},
		{"svc-obs", "GET", "Observation/" + ecg, 200, ""},
		{"svc-obs", "GET", "Observation/$lastn?patient=" + p1, 200, ""},
		{"svc-obs", "GET", "Patient/" + p1, 403, ""},
		{"svc-obs", "GET", "Device/" + dOx, 403, ""},
		{"svc-obs", "GET", "Observation/" + entries(f.get(t, "Observation?patient="+p2))[0]["id"].(string), 404, ""},
		// patient/Observation.rs?category=vital-signs: vital signs only, and only searches
		// that ask for them.
		{"svc-vitals", "GET", "Observation?patient=" + p1 + "&category=vital-signs", 200, ""},
		{"svc-vitals", "GET", "Observation?patient=" + p1 + "&category=vital-signs&code=8867-4&_count=5", 200, ""},
		{"svc-vitals", "GET", "Observation?patient=" + p1, 403, ""},
		{"svc-vitals", "GET", "Observation?patient=" + p1 + "&category=procedure", 403, ""},
		{"svc-vitals", "GET", "Observation?patient=" + p1 + "&category=vital-signs,procedure", 403, ""},
		{"svc-vitals", "GET", "Observation?patient=" + p1 + "&category=vital-signs&category=procedure", 403, ""},
		{"svc-vitals", "POST", "Observation/_search", 200, "patient=" + p1 + "&category=vital-signs"},
		{"svc-vitals", "POST", "Observation/_search", 403, "patient=" + p1},
		{"svc-vitals", "GET", "Observation/$lastn?patient=" + p1 + "&category=vital-signs", 200, ""},
		{"svc-vitals", "GET", "Observation/$lastn?patient=" + p1, 403, ""},
		{"svc-vitals", "GET", "Observation/" + hr, 200, ""}, // a read: the Observation's own category
		{"svc-vitals", "GET", "Observation/" + ecg, 403, ""},
		{"svc-vitals", "GET", "Patient/" + p1, 200, ""}, // patient/Patient.r
		{"svc-vitals", "GET", "Patient", 403, ""},       // ... but not .s
		// system/*.cruds: everything the service account's roles allow.
		{"svc-all", "GET", "Patient/" + p1, 200, ""},
		{"svc-all", "GET", "Patient/" + p2, 404, ""},
		{"svc-all", "GET", "Device/" + dFree, 403, ""}, // devices unbound to a patient are the admins'
	} {
		var st int
		var m map[string]any
		if tc.body != "" {
			st, m = f.as(t, tc.who, tc.method, tc.path, tc.body, "Content-Type", "application/x-www-form-urlencoded")
		} else {
			st, m = f.as(t, tc.who, tc.method, tc.path, nil)
		}
		if st != tc.status {
			t.Errorf("%s %s %s %s: %d, want %d: %v", tc.who, tc.method, tc.path, tc.body, st, tc.status, m)
			continue
		}
		if st == 403 {
			if _, d := issue(t, m); tc.who != "svc-all" && !strings.Contains(d, "the token's scopes do not permit") {
				t.Errorf("%s %s: %q does not say the scope refused it", tc.who, tc.path, d)
			}
		}
		if st == 200 && strings.Contains(tc.path, "category=vital-signs") {
			for _, o := range entries(m) {
				if cat := o["category"].([]any)[0].(map[string]any)["coding"].([]any)[0].(map[string]any)["code"]; cat != "vital-signs" {
					t.Errorf("%s %s returned a %s Observation", tc.who, tc.path, cat)
				}
			}
			if total(m) == 0 {
				t.Errorf("%s %s found nothing", tc.who, tc.path)
			}
		}
	}
}

func TestAuditRecordsEveryRequest(t *testing.T) {
	f := newFixture(t)
	f.audit.take()
	f.as(t, "alice", "GET", "Patient/"+p2, nil)
	f.as(t, token, "GET", "Patient", nil)
	f.as(t, "svc-obs", "GET", "Observation?patient="+p1+"&_summary=count", nil)
	f.as(t, "adam", "GET", "Device", nil)
	f.as(t, "alice", "POST", "Patient", `{"resourceType":"Patient","name":[{"text":"New Person"}]}`)
	f.as(t, "adam", "PUT", "Device/"+dMon, map[string]any{"resourceType": "Device", "id": dMon, "patient": map[string]any{"reference": "Patient/" + p2}})
	f.as(t, "alice", "GET", "Observation?patient="+p1+"&date=2026-13", nil)
	recs := f.audit.take()
	if len(recs) != 7 {
		t.Fatalf("%d records: %+v", len(recs), recs)
	}
	created := recs[4].Patients
	for i, want := range []iomt.AuditEvent{
		{Actor: "user:" + uAlice, ActorName: "alice", Action: "fhir.patient.read", Outcome: iomt.OutcomeDenied, Status: 403, Patients: []string{p2}},
		{Actor: "bootstrap", ActorName: "bootstrap", Action: "fhir.patient.search", Outcome: iomt.OutcomeSuccess, Status: 200, Patients: []string{p1, p2}},
		{Actor: "token:t-obs", ActorName: "ward-a-integration", Action: "fhir.observation.search", Outcome: iomt.OutcomeSuccess, Status: 200, Patients: []string{p1}},
		// Unbound devices name no patient.
		{Actor: "user:" + uAdam, ActorName: "adam", Action: "fhir.device.search", Outcome: iomt.OutcomeSuccess, Status: 200, Patients: []string{p1}},
		{Actor: "user:" + uAlice, ActorName: "alice", Action: "fhir.patient.create", Outcome: iomt.OutcomeSuccess, Status: 201, Patients: created},
		// A device moved from P1 to P2 concerns both.
		{Actor: "user:" + uAdam, ActorName: "adam", Action: "fhir.device.update", Outcome: iomt.OutcomeSuccess, Status: 200, Patients: []string{p1, p2}},
		{Actor: "user:" + uAlice, ActorName: "alice", Action: "fhir.observation.search", Outcome: iomt.OutcomeFailure, Status: 400, Patients: []string{p1}},
	} {
		e := recs[i]
		if e.Actor != want.Actor || e.ActorName != want.ActorName || e.Action != want.Action || e.Outcome != want.Outcome ||
			e.Status != want.Status || !slices.Equal(e.Patients, want.Patients) || e.Tenant != iomt.DefaultTenant || e.Source != "127.0.0.1" ||
			!e.Time.Equal(t0.Add(3*time.Hour)) {
			t.Errorf("record %d: %+v\nwant %+v", i, e, want)
		}
		if (e.Outcome == iomt.OutcomeSuccess) != (e.Reason == "") {
			t.Errorf("record %d: reason %q with outcome %s", i, e.Reason, e.Outcome)
		}
	}
	if len(created) != 1 || created[0] == "" {
		t.Errorf("the created patient is not named: %v", created)
	}
	if !strings.Contains(recs[0].Reason, "not in the care of your teams") {
		t.Errorf("a refusal's record says why: %q", recs[0].Reason)
	}
	// The search's record names the parameters it applied, also when they came in a body.
	f.as(t, "alice", "POST", "Observation/_search", "patient="+p1+"&code=8867-4", "Content-Type", "application/x-www-form-urlencoded")
	if e := f.audit.take()[0]; e.Detail["query"] != "code=8867-4&patient="+p1 || e.Detail["method"] != "POST" {
		t.Errorf("POST _search detail: %v", e.Detail)
	}

	// When the audit trail cannot be written, no data leaves: 503, and the body says why.
	f.audit.fail(errors.New("disk full"))
	for _, path := range []string{"Patient/" + p1, "Observation?patient=" + p1} {
		req, _ := http.NewRequest("GET", f.url(path), nil)
		req.Header.Set("Authorization", "Bearer alice")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 503 || strings.Contains(string(body), "Lovelace") || strings.Contains(string(body), "valueQuantity") ||
			!strings.Contains(string(body), "audit trail cannot be written") || resp.Header.Get("Location") != "" {
			t.Errorf("%s with the audit trail down: %d %s", path, resp.StatusCode, body)
		}
	}
	// Discovery needs no principal and touches no patient: it is served, unrecorded.
	if st, m := f.as(t, "", "GET", "metadata", nil); st != 200 || m["resourceType"] != "CapabilityStatement" {
		t.Errorf("metadata with the audit trail down: %d", st)
	}
}

func getJSON(t *testing.T, url string) (int, http.Header, map[string]any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		t.Fatalf("%s: %v", url, err)
	}
	return resp.StatusCode, resp.Header, m
}

func strs(v any) []string {
	var out []string
	l, _ := v.([]any)
	for _, s := range l {
		out = append(out, s.(string))
	}
	return out
}

func TestSMARTConfiguration(t *testing.T) {
	// Without an OpenID provider: API tokens only, and the document says no more.
	f := newFixture(t)
	st, h, m := getJSON(t, f.url(".well-known/smart-configuration"))
	if st != 200 || !strings.HasPrefix(h.Get("Content-Type"), "application/json") || h.Get("Access-Control-Allow-Origin") != "*" {
		t.Fatalf("smart-configuration: %d %s", st, h.Get("Content-Type"))
	}
	if caps := strs(m["capabilities"]); !slices.Equal(caps, []string{"permission-v1", "permission-v2"}) {
		t.Errorf("capabilities without a provider: %v", caps)
	}
	for _, k := range []string{"issuer", "jwks_uri", "authorization_endpoint", "token_endpoint", "grant_types_supported", "response_types_supported"} {
		if _, ok := m[k]; ok {
			t.Errorf("%s given without a provider: %v", k, m[k])
		}
	}
	if c := strs(m["code_challenge_methods_supported"]); !slices.Equal(c, []string{"S256"}) {
		t.Errorf("code_challenge_methods_supported: %v", c)
	}
	sc := strs(m["scopes_supported"])
	for _, want := range []string{"system/Observation.rs", "user/Patient.crus", "user/Observation.rs?category=vital-signs"} {
		if !slices.Contains(sc, want) {
			t.Errorf("scopes_supported lacks %s: %v", want, sc)
		}
	}
	if slices.Contains(sc, "openid") {
		t.Errorf("openid offered without a provider")
	}
	if len(f.audit.take()) != 0 {
		t.Errorf("discovery was audited")
	}
	if resp, err := http.Post(f.url(".well-known/smart-configuration"), "application/json", nil); err != nil || resp.StatusCode != 405 {
		t.Errorf("POST: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}

	// With one: its endpoints, and the capabilities they give.
	f = newFixture(t, func(c *fhir.Config) {
		c.SMART = fhir.SMARTConfig{Issuer: "https://idp.example.org", JWKSURI: "https://idp.example.org/keys",
			AuthorizationEndpoint: "https://idp.example.org/authorize", TokenEndpoint: "https://idp.example.org/token",
			TokenEndpointAuthMethods: []string{"client_secret_basic"}}
	})
	_, _, m = getJSON(t, f.url(".well-known/smart-configuration"))
	if m["issuer"] != "https://idp.example.org" || m["jwks_uri"] != "https://idp.example.org/keys" ||
		m["authorization_endpoint"] != "https://idp.example.org/authorize" || m["token_endpoint"] != "https://idp.example.org/token" {
		t.Errorf("endpoints: %v", m)
	}
	if g := strs(m["grant_types_supported"]); !slices.Equal(g, []string{"authorization_code"}) {
		t.Errorf("grant types: %v", g)
	}
	if caps := strs(m["capabilities"]); !slices.Equal(caps, []string{"client-confidential-symmetric", "launch-standalone", "permission-user", "permission-v1", "permission-v2", "sso-openid-connect"}) {
		t.Errorf("capabilities: %v", caps)
	}
	if sc := strs(m["scopes_supported"]); !slices.Contains(sc, "openid") || !slices.Contains(sc, "fhirUser") {
		t.Errorf("scopes with a provider: %v", sc)
	}

	// The CapabilityStatement points SMART clients there.
	cs := f.get(t, "metadata")
	sec := cs["rest"].([]any)[0].(map[string]any)["security"].(map[string]any)
	svc := sec["service"].([]any)[0].(map[string]any)["coding"].([]any)[0].(map[string]any)
	if svc["code"] != "SMART-on-FHIR" || svc["system"] != "http://terminology.hl7.org/CodeSystem/restful-security-service" ||
		!strings.Contains(sec["description"].(string), "smart-configuration") {
		t.Errorf("security: %v", sec)
	}
}
