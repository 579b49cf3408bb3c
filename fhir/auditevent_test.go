package fhir_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/iomt/iomt"
)

// auditFixture adds an audit trail to the fixture's store: a read, a search naming two
// patients, a refused sign-in, a break-the-glass, a credential rotation without HTTP, and a
// record of another tenant.
func auditFixture(t *testing.T) *fixture {
	f := newFixture(t)
	node := map[string]string{"node": "n1"}
	ev := []iomt.AuditEvent{
		{Time: t0, Tenant: iomt.DefaultTenant, Actor: "user:u1", ActorName: "Dr Ada", Action: "patient.read", Outcome: iomt.OutcomeSuccess,
			Status: 200, Patients: []string{p1}, Resource: "/fhir/r4/Patient/" + p1, Source: "192.0.2.7:5000", Detail: node},
		{Time: t0.Add(time.Minute), Tenant: iomt.DefaultTenant, Actor: "user:u2", Action: "observation.search", Outcome: iomt.OutcomeSuccess,
			Status: 200, Patients: []string{p1, p2}, Resource: "/api/v1/observations", Source: "[2001:db8::1]:443", Detail: node},
		{Time: t0.Add(2 * time.Minute), Tenant: iomt.DefaultTenant, Actor: "user:u1", Action: "session.signin", Outcome: iomt.OutcomeDenied,
			Status: 401, Reason: "bad password", Source: "192.0.2.9:1"},
		{Time: t0.Add(3 * time.Minute), Tenant: iomt.DefaultTenant, Actor: "user:u3", Action: "breakglass.open", Outcome: iomt.OutcomeSuccess,
			Patients: []string{p2}, Purpose: "ETREAT", Reason: "cardiac arrest in bed 4", Detail: map[string]string{"node": "n2", "until": "2026-11-20T11:03:00Z"}},
		{Time: t0.Add(4 * time.Minute), Tenant: iomt.DefaultTenant, Actor: "device:d1", Action: "device.credentials.rotate", Outcome: iomt.OutcomeFailure, Reason: "store down"},
		{Time: t0.Add(5 * time.Minute), Tenant: "other", Actor: "user:u9", Action: "patient.read", Outcome: iomt.OutcomeSuccess, Patients: []string{p1}},
	}
	if _, err := f.store.AppendAudit(context.Background(), ev); err != nil {
		t.Fatal(err)
	}
	return f
}

func auditIDs(b map[string]any) []string {
	out := []string{}
	for _, e := range entries(b) {
		out = append(out, e["id"].(string))
	}
	return out
}

func TestAuditEventSearch(t *testing.T) {
	f := auditFixture(t)
	at := func(m time.Duration) string { return url.QueryEscape(t0.Add(m * time.Minute).Format(time.RFC3339)) }
	for _, tc := range []struct {
		q    string
		want []string
	}{
		{"", []string{"1", "2", "3", "4", "5"}},
		{"patient=" + p1, []string{"1", "2"}},
		{"patient=Patient/" + p2, []string{"2", "4"}},
		{"agent=user:u1", []string{"1", "3"}},
		{"agent=urn:iomt:actor|user:u3", []string{"4"}},
		{"date=ge" + at(1) + "&date=lt" + at(3), []string{"2", "3"}},
		{"date=gt" + at(3), []string{"5"}},
		{"date=le" + at(0), []string{"1"}},
		{"action=R", []string{"1", "2", "4"}},
		{"action=E", []string{"3"}},
		{"action=U,D", []string{"5"}},
		{"type=110114", []string{"3"}},
		{"type=" + url.QueryEscape("http://dicom.nema.org/resources/ontology/DCM|110110"), []string{"1", "2"}},
		{"type=rest", []string{}},
		{"subtype=patient.read", []string{"1"}},
		{"subtype=patient.", []string{"1"}},
		{"subtype=" + url.QueryEscape("urn:iomt:audit-action|observation.search"), []string{"2"}},
		{"subtype=search-type", []string{"2"}},
		{"subtype=110127", []string{"4"}},
		{"subtype=read,110122", []string{"1", "3"}},
		{"outcome=4", []string{"3"}},
		{"outcome=8", []string{"5"}},
		{"patient=" + p1 + "&agent=user:u2&action=R", []string{"2"}},
		{"_id=4,2,99,x", []string{"2", "4"}},
	} {
		b := f.get(t, "AuditEvent?"+tc.q)
		if got := auditIDs(b); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("AuditEvent?%s: %v, want %v", tc.q, got, tc.want)
		}
		if total(b) != len(tc.want) {
			t.Errorf("AuditEvent?%s: total %d, want %d", tc.q, total(b), len(tc.want))
		}
	}
	// Paging: a total only once the end is reached, next links until then.
	b := f.get(t, "AuditEvent?_count=2")
	if got := auditIDs(b); !reflect.DeepEqual(got, []string{"1", "2"}) || b["total"] != nil || link(b, "next") == "" {
		t.Fatalf("first page: %v total %v next %q", got, b["total"], link(b, "next"))
	}
	b = f.get(t, link(b, "next"))
	if got := auditIDs(b); !reflect.DeepEqual(got, []string{"3", "4"}) || link(b, "previous") == "" {
		t.Fatalf("second page: %v", got)
	}
	b = f.get(t, link(b, "next"))
	if got := auditIDs(b); !reflect.DeepEqual(got, []string{"5"}) || total(b) != 5 || link(b, "next") != "" {
		t.Fatalf("last page: %v total %v next %q", got, b["total"], link(b, "next"))
	}
	if b := f.get(t, "AuditEvent?patient="+p1+"&_summary=count"); total(b) != 2 || len(entries(b)) != 0 {
		t.Fatalf("_summary=count: %v", b)
	}
	for _, tc := range []struct {
		method, path string
		status       int
		says         string
	}{
		{"GET", "AuditEvent?action=X", 400, "one of C, R, U, D, E"},
		{"GET", "AuditEvent?outcome=1", 400, "one of 0, 4, 8, 12"},
		{"GET", "AuditEvent?patient=" + p1 + "," + p2, 400, "one value"},
		{"GET", "AuditEvent?entity=x", 400, "not supported"},
		{"GET", "AuditEvent?date=ap2026", 400, "ap"},
		{"GET", "AuditEvent/6", 404, "not found"}, // another tenant's
		{"GET", "AuditEvent/99", 404, "not found"},
		{"GET", "AuditEvent/abc", 404, "record numbers"},
		{"POST", "AuditEvent", 405, "cannot be created or changed"},
		{"PUT", "AuditEvent/1", 405, "cannot be created or changed"},
	} {
		st, m, _ := f.do(t, tc.method, tc.path, map[string]any{"resourceType": "AuditEvent"})
		if tc.method == "GET" {
			st, m, _ = f.do(t, tc.method, tc.path, nil)
		}
		if st != tc.status {
			t.Errorf("%s %s: status %d, want %d: %v", tc.method, tc.path, st, tc.status, m)
			continue
		}
		if _, d := issue(t, m); !strings.Contains(d, tc.says) {
			t.Errorf("%s %s: %q, want it to say %q", tc.method, tc.path, d, tc.says)
		}
	}
	// Reading the trail is itself audited, naming the patient searched for.
	found := false
	for _, e := range f.audit.take() {
		if e.Action == "fhir.auditevent.search" && slices.Contains(e.Patients, p1) {
			found = true
		}
	}
	if !found {
		t.Error("the audit search naming a patient left no record naming them")
	}
}

// The mapping: BALP shapes for a patient read over HTTP, a refused sign-in, break-the-glass
// and an action without HTTP.
func TestAuditEventMapping(t *testing.T) {
	f := auditFixture(t)
	type m = map[string]any
	get := func(id string) m { return f.get(t, "AuditEvent/"+id) }
	str := func(v any) string { return fmt.Sprint(v) }
	coding := func(v any) string {
		c := v.(m)
		return str(c["system"]) + "|" + str(c["code"])
	}
	codings := func(v any) []string {
		var out []string
		for _, c := range v.([]any) {
			out = append(out, coding(c))
		}
		return out
	}

	read := get("1")
	if coding(read["type"]) != "http://dicom.nema.org/resources/ontology/DCM|110110" || read["action"] != "R" || read["outcome"] != "0" ||
		read["recorded"] != "2026-11-20T10:00:00.000Z" {
		t.Errorf("read: %v", read)
	}
	if got := codings(read["subtype"]); !reflect.DeepEqual(got, []string{"http://hl7.org/fhir/restful-interaction|read", "urn:iomt:audit-action|patient.read"}) {
		t.Errorf("read subtype %v", got)
	}
	agent := read["agent"].([]any)[0].(m)
	who := agent["who"].(m)
	if agent["requestor"] != true || who["display"] != "Dr Ada" || who["identifier"].(m)["value"] != "user:u1" || who["identifier"].(m)["system"] != "urn:iomt:actor" ||
		agent["network"].(m)["address"] != "192.0.2.7" || agent["network"].(m)["type"] != "2" || codings(agent["type"].(m)["coding"])[0] != "http://terminology.hl7.org/CodeSystem/extra-security-role-type|humanuser" {
		t.Errorf("read agent %v", agent)
	}
	src := read["source"].(m)
	if src["observer"].(m)["display"] != "n1" || src["site"] != iomt.DefaultTenant || codings(src["type"])[0] != "http://terminology.hl7.org/CodeSystem/security-source-type|4" {
		t.Errorf("read source %v", src)
	}
	ents := read["entity"].([]any)
	pat := ents[0].(m)
	if pat["what"].(m)["reference"] != "Patient/"+p1 || coding(pat["role"]) != "http://terminology.hl7.org/CodeSystem/object-role|1" || coding(pat["type"]) != "http://terminology.hl7.org/CodeSystem/audit-entity-type|1" {
		t.Errorf("patient entity %v", pat)
	}
	if obj := ents[1].(m); obj["description"] != "/fhir/r4/Patient/"+p1 || str(obj["detail"]) != "[map[type:http-status valueString:200]]" {
		t.Errorf("resource entity %v", obj)
	}
	if ents := get("2")["entity"].([]any); len(ents) != 3 {
		t.Errorf("a search naming two patients has %d entities", len(ents))
	}
	if n := get("2")["agent"].([]any)[0].(m)["network"].(m); n["address"] != "2001:db8::1" || n["type"] != "2" {
		t.Errorf("IPv6 source: %v", n)
	}

	signin := get("3")
	if coding(signin["type"]) != "http://dicom.nema.org/resources/ontology/DCM|110114" || signin["outcome"] != "4" || signin["outcomeDesc"] != "bad password" || signin["action"] != "E" ||
		codings(signin["subtype"])[0] != "http://dicom.nema.org/resources/ontology/DCM|110122" {
		t.Errorf("sign-in: %v", signin)
	}

	btg := get("4")
	if coding(btg["type"]) != "http://dicom.nema.org/resources/ontology/DCM|110113" || codings(btg["subtype"])[0] != "http://dicom.nema.org/resources/ontology/DCM|110127" {
		t.Errorf("break-the-glass type %v subtype %v", btg["type"], btg["subtype"])
	}
	pou := btg["purposeOfEvent"].([]any)[0].(m)
	if codings(pou["coding"])[0] != "http://terminology.hl7.org/CodeSystem/v3-ActReason|ETREAT" || pou["text"] != "cardiac arrest in bed 4" {
		t.Errorf("break-the-glass purpose %v", pou)
	}
	if btg["source"].(m)["observer"].(m)["display"] != "n2" || btg["entity"].([]any)[0].(m)["what"].(m)["reference"] != "Patient/"+p2 {
		t.Errorf("break-the-glass %v", btg)
	}

	rot := get("5")
	if coding(rot["type"]) != "http://dicom.nema.org/resources/ontology/DCM|110100" || rot["action"] != "U" || rot["outcome"] != "8" || rot["outcomeDesc"] != "store down" ||
		codings(rot["agent"].([]any)[0].(m)["type"].(m)["coding"])[0] != "http://terminology.hl7.org/CodeSystem/extra-security-role-type|datacollector" {
		t.Errorf("rotation: %v", rot)
	}
	if _, ok := rot["entity"]; ok {
		t.Errorf("rotation without patients or resource has entities: %v", rot["entity"])
	}
	if st, _, _ := f.do(t, "GET", "AuditEvent/1", nil, "Authorization", ""); st != http.StatusUnauthorized {
		t.Errorf("without a token: %d", st)
	}
}

// Every AuditEvent served, in searchsets and by read, passes the R4 schema.
func TestAuditEventsValidate(t *testing.T) {
	ts := newTypeSchemas(t)
	f := auditFixture(t)
	root := ts.root(t)
	for i := 1; i <= 5; i++ {
		a := f.get(t, fmt.Sprintf("AuditEvent/%d", i))
		if err := validate(ts.get(t, "AuditEvent"), a); err != nil {
			t.Errorf("AuditEvent/%d: %v", i, err)
		}
		if err := validate(root, a); err != nil {
			t.Errorf("AuditEvent/%d fails the root schema: %v", i, err)
		}
	}
	b := f.get(t, "AuditEvent?_count=2")
	delete(b, "entry")
	if err := validate(ts.get(t, "Bundle"), b); err != nil {
		t.Errorf("searchset without a total: %v", err)
	}
}
