package api_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/iomt/iomt"
	"github.com/iomt/iomt/api"
	"github.com/iomt/iomt/policy"
	"github.com/iomt/iomt/store/embedded"
)

const token = "admin-secret-token"

// auditLog is an audit trail the handlers record to while the test reads it.
type auditLog struct {
	mu sync.Mutex
	ev []iomt.AuditEvent
}

func (l *auditLog) Record(_ context.Context, e iomt.AuditEvent) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.ev = append(l.ev, e)
	return nil
}

// records returns the audit records of one action, in order, as flat maps: actor, the first
// patient, status (a number) and the details.
func (l *auditLog) records(t *testing.T, action string) []map[string]any {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]any
	for _, e := range l.ev {
		if e.Action != action {
			continue
		}
		m := map[string]any{"actor": e.Actor, "status": float64(e.Status), "outcome": e.Outcome}
		if len(e.Patients) > 0 {
			m["patient"] = e.Patients[0]
		}
		for k, v := range e.Detail {
			m[k] = v
		}
		out = append(out, m)
	}
	return out
}

type patient struct {
	ID        string
	Name      string
	MRN       string
	SpO2Scale *int `json:"spo2Scale"`
}

func newServer(t *testing.T) (*httptest.Server, *auditLog) {
	t.Helper()
	st, err := embedded.Open(t.TempDir(), embedded.Options{NoSync: true, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	audit := &auditLog{}
	h, err := api.New(api.Config{Store: st, BootstrapToken: token, Policy: policy.New(), Auditor: audit})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv, audit
}

// call sends body (a JSON string) and decodes the reply into out.
func call(t *testing.T, srv *httptest.Server, method, path, body string, out any) int {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			t.Fatalf("%s %s: %d %s: %v", method, path, resp.StatusCode, data, err)
		}
	}
	return resp.StatusCode
}

func scaleOf(p patient) int {
	if p.SpO2Scale == nil {
		return 0
	}
	return *p.SpO2Scale
}

// A patient's NEWS2 SpO2 scale is set at creation or by PATCH, returned with the patient, and
// every change is audited with the scale before and after. A scale other than 1 or 2 (0 being
// "not set": scale 1) is refused with a reason that names the field, and changes nothing.
func TestPatientSpO2Scale(t *testing.T) {
	srv, audit := newServer(t)
	var p patient
	if code := call(t, srv, "POST", "/api/v1/patients", `{"name":"Ada","mrn":"m1","spo2Scale":2}`, &p); code != 201 || scaleOf(p) != 2 {
		t.Fatalf("create on scale 2: %d %+v", code, p)
	}
	var got patient
	if code := call(t, srv, "GET", "/api/v1/patients/"+p.ID, "", &got); code != 200 || scaleOf(got) != 2 {
		t.Fatalf("read: %d %+v", code, got)
	}
	var plain patient
	if code := call(t, srv, "POST", "/api/v1/patients", `{"name":"Bea"}`, &plain); code != 201 || plain.SpO2Scale != nil {
		t.Fatalf("create without a scale: %d %+v (want no spo2Scale: not set, scale 1)", code, plain)
	}

	var problem api.Problem
	const why = `"spo2Scale" must be 1 (NEWS2 SpO2 scale 1, the default; 0 means the same) or 2`
	for _, body := range []string{`{"name":"Cy","spo2Scale":3}`, `{"name":"Cy","spo2Scale":-1}`} {
		if code := call(t, srv, "POST", "/api/v1/patients", body, &problem); code != 400 || !strings.Contains(problem.Detail, why) {
			t.Fatalf("create %s: %d %+v", body, code, problem)
		}
	}
	var list struct{ Patients []patient }
	if call(t, srv, "GET", "/api/v1/patients", "", &list); len(list.Patients) != 2 {
		t.Fatalf("a refused create left a patient: %+v", list.Patients)
	}

	// Scale 3 does not exist: refused, and the rest of the same request is not applied.
	if code := call(t, srv, "PATCH", "/api/v1/patients/"+p.ID, `{"name":"Changed","spo2Scale":3}`, &problem); code != 400 || !strings.Contains(problem.Detail, why) || !strings.Contains(problem.Detail, "got 3") {
		t.Fatalf("PATCH scale 3: %d %+v", code, problem)
	}
	if call(t, srv, "GET", "/api/v1/patients/"+p.ID, "", &got); scaleOf(got) != 2 || got.Name != "Ada" {
		t.Fatalf("a refused PATCH changed the patient: %+v", got)
	}
	for _, c := range []struct {
		body string
		code int
		want string
	}{
		{`{"spo2Scale":"2"}`, 400, "invalid JSON body"},
		{`{"spo2Scale":1.5}`, 400, "invalid JSON body"},
		{`{"scale":2}`, 400, "unknown field"},
		{`{"name":" "}`, 400, `"name" cannot be empty`},
	} {
		if code := call(t, srv, "PATCH", "/api/v1/patients/"+p.ID, c.body, &problem); code != c.code || !strings.Contains(problem.Detail, c.want) {
			t.Errorf("PATCH %s: %d %+v, want %d %q", c.body, code, problem, c.code, c.want)
		}
	}
	if code := call(t, srv, "PATCH", "/api/v1/patients/nobody", `{"spo2Scale":2}`, &problem); code != 404 {
		t.Fatalf("PATCH of an unknown patient: %d %+v", code, problem)
	}

	// Back to scale 1; the other fields are kept.
	if code := call(t, srv, "PATCH", "/api/v1/patients/"+p.ID, `{"spo2Scale":1}`, &got); code != 200 || scaleOf(got) != 1 || got.Name != "Ada" || got.MRN != "m1" {
		t.Fatalf("PATCH to scale 1: %d %+v", code, got)
	}
	if call(t, srv, "GET", "/api/v1/patients/"+p.ID, "", &got); scaleOf(got) != 1 {
		t.Fatalf("after PATCH: %+v", got)
	}

	creates, updates := audit.records(t, "patient.create"), audit.records(t, "patient.update")
	if len(creates) != 4 || creates[0]["patient"] != p.ID || creates[0]["spo2Scale"] != "2" || creates[0]["status"] != 201.0 || creates[2]["status"] != 400.0 {
		t.Fatalf("create audit: %v", creates)
	}
	if len(updates) != 7 {
		t.Fatalf("update audit: %d records, want 7: %v", len(updates), updates)
	}
	if r := updates[0]; r["patient"] != p.ID || r["status"] != 400.0 || r["actor"] != "bootstrap" {
		t.Errorf("refused scale 3 audited as %v", r)
	}
	if r := updates[6]; r["patient"] != p.ID || r["status"] != 200.0 || r["changed"] != "spo2Scale" || r["spo2ScaleFrom"] != "2" || r["spo2ScaleTo"] != "1" {
		t.Errorf("scale change audited as %v", r)
	}
}

// A patient's CGM alert limits are set at creation or by PATCH (all four together; all 0
// goes back to the defaults), returned with the patient, and audited before and after. Limits
// the alert monitor could not use are refused with the reason, changing nothing.
func TestPatientCGMLimits(t *testing.T) {
	srv, audit := newServer(t)
	type withLimits struct {
		ID        string
		Name      string
		CGMLimits *iomt.GlucoseLimits `json:"cgmLimits"`
	}
	own := iomt.GlucoseLimits{UrgentLow: 60, Low: 80, High: 180, UrgentHigh: 250}
	var p withLimits
	if code := call(t, srv, "POST", "/api/v1/patients", `{"name":"Gil","cgmLimits":{"urgentLow":60,"low":80,"high":180,"urgentHigh":250}}`, &p); code != 201 || p.CGMLimits == nil || *p.CGMLimits != own {
		t.Fatalf("create with limits: %d %+v", code, p)
	}
	var plain withLimits
	if code := call(t, srv, "POST", "/api/v1/patients", `{"name":"Hal"}`, &plain); code != 201 || plain.CGMLimits != nil {
		t.Fatalf("create without limits: %d %+v (want none: the defaults)", code, plain)
	}
	var problem api.Problem
	const why = `"cgmLimits" must give all four of urgentLow < low < high < urgentHigh`
	for _, body := range []string{
		`{"name":"Cy","cgmLimits":{"low":80}}`,
		`{"name":"Cy","cgmLimits":{"urgentLow":80,"low":70,"high":180,"urgentHigh":250}}`,
		`{"name":"Cy","cgmLimits":{"urgentLow":55,"low":70,"high":180,"urgentHigh":500}}`,
	} {
		if code := call(t, srv, "POST", "/api/v1/patients", body, &problem); code != 400 || !strings.Contains(problem.Detail, why) {
			t.Fatalf("create %s: %d %+v", body, code, problem)
		}
	}
	if code := call(t, srv, "PATCH", "/api/v1/patients/"+p.ID, `{"name":"Changed","cgmLimits":{"urgentLow":60,"low":80}}`, &problem); code != 400 || !strings.Contains(problem.Detail, "got 60/80/0/0") {
		t.Fatalf("PATCH half the limits: %d %+v", code, problem)
	}
	var got withLimits
	if call(t, srv, "GET", "/api/v1/patients/"+p.ID, "", &got); got.CGMLimits == nil || *got.CGMLimits != own || got.Name != "Gil" {
		t.Fatalf("a refused PATCH changed the patient: %+v", got)
	}
	changed := iomt.GlucoseLimits{UrgentLow: 60, Low: 80, High: 200, UrgentHigh: 250}
	if code := call(t, srv, "PATCH", "/api/v1/patients/"+p.ID, `{"cgmLimits":{"urgentLow":60,"low":80,"high":200,"urgentHigh":250}}`, &got); code != 200 || got.CGMLimits == nil || *got.CGMLimits != changed {
		t.Fatalf("PATCH the high: %d %+v", code, got)
	}
	var cleared withLimits
	if code := call(t, srv, "PATCH", "/api/v1/patients/"+p.ID, `{"cgmLimits":{}}`, &cleared); code != 200 || cleared.CGMLimits != nil || cleared.Name != "Gil" {
		t.Fatalf("PATCH back to the defaults: %d %+v", code, cleared)
	}
	updates := audit.records(t, "patient.update")
	if len(updates) != 3 {
		t.Fatalf("update audit: %d records, want 3: %v", len(updates), updates)
	}
	if r := updates[1]; r["changed"] != "cgmLimits" || r["cgmLimitsFrom"] == nil || r["cgmLimitsTo"] == nil {
		t.Errorf("limits change audited as %v", r)
	}
}
