package fhir_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/iomt/iomt"
	"github.com/iomt/iomt/codes"
	"github.com/iomt/iomt/fhir"
	"github.com/iomt/iomt/policy"
	"github.com/iomt/iomt/store/embedded"
)

const token = "s3cret-admin-token"

// Fixture ids: P1 and the devices have ids like the REST API makes (16 base32 characters,
// packed in Observation ids); P2 has a client-chosen id (stored as is).
const (
	p1     = "aaaaaaaaaaaaaaaa"
	p2     = "example-patient.2"
	dMon   = "bbbbbbbbbbbbbbbb" // bedside monitor: HR, RR, temp, BP
	dOx    = "cccccccccccccccc" // pulse oximeter: SpO2
	dECG   = "dddddddddddddddd" // ECG patch: leads II and I
	dFree  = "eeeeeeeeeeeeeeee" // unbound scale
	minute = time.Minute
)

// t0 is the start of the fixture's readings.
var t0 = time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)

type fixture struct {
	store  *embedded.Store
	h      http.Handler
	srv    *httptest.Server
	cat    *codes.Catalog
	policy *policy.Policy
	src    *policySource
	audit  *recorder
	// expected counts of the fixture's data for P1
	nHR, nBP, nECGWindows, nPlethWindows int
}

// recorder is the audit trail of the tests: it keeps what the server records, and fails
// when told to.
type recorder struct {
	mu     sync.Mutex
	events []iomt.AuditEvent
	err    error
}

func (a *recorder) Record(_ context.Context, e iomt.AuditEvent) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.err != nil {
		return a.err
	}
	a.events = append(a.events, e)
	return nil
}

func (a *recorder) fail(err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.err = err
}

// take returns the events recorded since the last call.
func (a *recorder) take() []iomt.AuditEvent {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := a.events
	a.events = nil
	return out
}

// policySource is what the policy loads: the store's patients and care teams, and the
// emergency accesses the test sets (at times of its choosing).
type policySource struct {
	*embedded.Store
	glass []iomt.BreakGlass
}

func (s *policySource) BreakGlasses(_ context.Context, f iomt.BreakGlassFilter) ([]iomt.BreakGlass, error) {
	var out []iomt.BreakGlass
	for _, b := range s.glass {
		if f.ActiveAt.IsZero() || f.ActiveAt.Before(b.Until) {
			out = append(out, b)
		}
	}
	return out, nil
}

// People of the fixture. Ward A cares for P1: clinician Alice, carer Carl (P1's son) and the
// vitals integration; ward B for P2: clinician Bob. Adam administers; Olga is a clinician of
// another tenant, whose team covers every location there.
const (
	uAlice, uBob, uCarl, uAdam, uOlga, uSvc = "u-alice", "u-bob", "u-carl", "u-adam", "u-olga", "u-svc"
	otherTenant                             = "other-hospital"
	pOther                                  = "other-patient"
)

// principals by bearer token; token is the operator's bootstrap token.
var principals = map[string]policy.Principal{
	token:   {Kind: policy.KindBootstrap, Tenant: iomt.DefaultTenant, Name: "bootstrap"},
	"alice": {Kind: policy.KindUser, ID: uAlice, Tenant: iomt.DefaultTenant, Name: "alice", Roles: []iomt.Role{iomt.RoleClinician}},
	"bob":   {Kind: policy.KindUser, ID: uBob, Tenant: iomt.DefaultTenant, Name: "bob", Roles: []iomt.Role{iomt.RoleClinician}},
	"carl":  {Kind: policy.KindUser, ID: uCarl, Tenant: iomt.DefaultTenant, Name: "carl", Roles: []iomt.Role{iomt.RoleCarer}},
	"adam":  {Kind: policy.KindUser, ID: uAdam, Tenant: iomt.DefaultTenant, Name: "adam", Roles: []iomt.Role{iomt.RoleAdmin}},
	"olga":  {Kind: policy.KindUser, ID: uOlga, Tenant: otherTenant, Name: "olga", Roles: []iomt.Role{iomt.RoleClinician}},
	// API tokens of the ward A integration, with SMART scopes.
	"svc-obs":    serviceToken("t-obs", "system/Observation.rs"),
	"svc-vitals": serviceToken("t-vitals", "patient/Observation.rs?category=vital-signs patient/Patient.r"),
	"svc-all":    serviceToken("t-all", "system/*.cruds"),
}

func serviceToken(id, scopes string) policy.Principal {
	sc, err := policy.ParseScopes(scopes)
	if err != nil {
		panic(err)
	}
	return policy.Principal{Kind: policy.KindToken, ID: uSvc, Tenant: iomt.DefaultTenant, Name: "ward-a-integration",
		Roles: []iomt.Role{iomt.RoleService}, Scopes: sc, TokenID: id}
}

func bearerPrincipal(r *http.Request) (policy.Principal, bool) {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		return policy.Principal{}, false
	}
	p, ok := principals[tok]
	return p, ok
}

func openStore(tb testing.TB, dir string) *embedded.Store {
	tb.Helper()
	st, err := embedded.Open(dir, embedded.Options{NoSync: true, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = st.Close() })
	return st
}

// newFixture builds the store, the policy and the server; opts change the server's Config.
func newFixture(t testing.TB, opts ...func(*fhir.Config)) *fixture {
	t.Helper()
	ctx := context.Background()
	f := &fixture{store: openStore(t, t.TempDir()), cat: codes.New(), audit: &recorder{}, policy: policy.New()}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(f.store.CreatePatient(ctx, iomt.Patient{ID: p1, Tenant: iomt.DefaultTenant, Name: "Ada Lovelace", BirthDate: "1990-05-01", MRN: "MRN-001", CreatedAt: t0}))
	must(f.store.CreatePatient(ctx, iomt.Patient{ID: p2, Tenant: iomt.DefaultTenant, Name: "Grace Hopper", BirthDate: "1956-12-09", MRN: "MRN-002", CreatedAt: t0}))
	must(f.store.CreatePatient(ctx, iomt.Patient{ID: pOther, Tenant: otherTenant, Name: "Alan Turing", BirthDate: "1912-06-23", MRN: "MRN-001", Location: "east/ward-1", CreatedAt: t0}))
	batt := 87.0
	must(f.store.CreateDevice(ctx, iomt.Device{ID: dMon, Tenant: iomt.DefaultTenant, Kind: "bedside-monitor", Patient: p1, CreatedAt: t0}))
	must(f.store.CreateDevice(ctx, iomt.Device{ID: dOx, Tenant: iomt.DefaultTenant, Kind: "pulse-oximeter", Patient: p1, CreatedAt: t0,
		Identifiers: []iomt.Identifier{{System: "urn:example:acme:serial", Value: "OX-123"}, {System: "http://hl7.org/fhir/NamingSystem/gs1-di", Value: "00844588003288"}}}))
	must(f.store.CreateDevice(ctx, iomt.Device{ID: dECG, Tenant: iomt.DefaultTenant, Kind: "ecg-patch", Patient: p1, CreatedAt: t0}))
	must(f.store.CreateDevice(ctx, iomt.Device{ID: dFree, Tenant: iomt.DefaultTenant, Kind: "scale", CreatedAt: t0}))
	must(f.store.UpdateDeviceStatus(ctx, []iomt.DeviceStatus{{Device: dOx, LastSeen: t0, Battery: &batt}}))

	var obs []iomt.Observation
	add := func(dev, code string, t time.Time, v float64) {
		c, _ := f.cat.ByID(code)
		obs = append(obs, iomt.Observation{Patient: p1, Device: dev, Code: code, Time: t, Value: v, Unit: c.Unit})
	}
	for i := range 120 {
		t := t0.Add(time.Duration(i) * minute)
		add(dMon, "8867-4", t, 70+float64(i%10))
		add(dMon, "9279-1", t, 14+float64(i%4))
		add(dOx, "59408-5", t.Add(500*time.Millisecond), 95+float64(i%4))
		f.nHR++
		if i%15 == 0 {
			add(dMon, "8310-5", t, 36.5+float64(i%3)/10)
			add(dMon, "8480-6", t, 120+float64(i%7))
			add(dMon, "8462-4", t, 80+float64(i%5))
			f.nBP++
		}
	}
	add(dMon, "8480-6", t0.Add(7*minute+3*time.Second), 131) // a systolic reading alone
	add(dFree, "29463-7", t0.Add(30*minute), 72.5)
	add(dOx, "2339-0", t0.Add(45*minute), 104)
	add(dMon, "55423-8", t0.Add(50*minute), 1234)
	add(dMon, "MDC_AI_TYPE_SENSOR_FALL", t0.Add(61*minute), 1)
	add(dOx, "MDC_ATTR_VAL_BATT_CHARGE", t0.Add(62*minute), 86)

	// 27 s of ECG lead II at 250 Hz from t0+5s, in 1 s segments: windows 10:00:00, :10, :20, :30.
	var waves []iomt.Waveform
	for s := range 27 {
		w := iomt.Waveform{Patient: p1, Device: dECG, Code: "MDC_ECG_ELEC_POTL_II", Start: t0.Add(5*time.Second + time.Duration(s)*time.Second), Period: 4 * time.Millisecond, Scale: 0.001, Unit: "mV"}
		for i := range 250 {
			w.Samples = append(w.Samples, int32(1000*math.Sin(float64(s*250+i)/20)))
		}
		waves = append(waves, w)
	}
	// Lead I from t0+12s for 12 s: windows :10 and :20 hold two leads.
	for s := range 12 {
		w := iomt.Waveform{Patient: p1, Device: dECG, Code: "MDC_ECG_ELEC_POTL_I", Start: t0.Add(12*time.Second + time.Duration(s)*time.Second), Period: 4 * time.Millisecond, Scale: 0.001, Unit: "mV"}
		for i := range 250 {
			w.Samples = append(w.Samples, int32(800*math.Cos(float64(s*250+i)/20)))
		}
		waves = append(waves, w)
	}
	f.nECGWindows = 4
	// 3 s of pleth at 100 Hz from t0+41s: window 10:00:40.
	pleth := iomt.Waveform{Patient: p1, Device: dOx, Code: "MDC_PULS_OXIM_PLETH", Start: t0.Add(41 * time.Second), Period: 10 * time.Millisecond, Scale: 0.001, Unit: "1"}
	for i := range 300 {
		pleth.Samples = append(pleth.Samples, int32(500+400*math.Sin(float64(i)/13)))
	}
	waves = append(waves, pleth)
	f.nPlethWindows = 1
	if _, err := f.store.Append(ctx, []iomt.Batch{{Tenant: iomt.DefaultTenant, Device: dMon, Patient: p1, Received: t0, Observations: obs, Waveforms: waves},
		// P2 has a single heart rate.
		{Tenant: iomt.DefaultTenant, Device: dMon, Patient: p2, Received: t0, Observations: []iomt.Observation{{Patient: p2, Device: dMon, Code: "8867-4", Time: t0.Add(30 * time.Second), Value: 66, Unit: "/min"}}},
		// P1's nurse charted consciousness and room air, and iomt scored NEWS2 (survey Observations).
		{Tenant: iomt.DefaultTenant, Device: "iomt-chart", Patient: p1, Received: t0, Observations: []iomt.Observation{
			{Patient: p1, Device: "iomt-chart", Code: "1104441000000107", Time: t0.Add(90 * minute), Value: 1, Unit: "{score}"},
			{Patient: p1, Device: "iomt-chart", Code: "3151-8", Time: t0.Add(90 * minute), Value: 0, Unit: "L/min"}}},
		{Tenant: iomt.DefaultTenant, Device: "iomt-news2", Patient: p1, Received: t0, Observations: []iomt.Observation{
			{Patient: p1, Device: "iomt-news2", Code: "1104051000000101", Time: t0.Add(90 * minute), Value: 1, Unit: "{score}"}}},
	}); err != nil {
		t.Fatal(err)
	}
	for _, tm := range []iomt.CareTeam{
		{ID: "ward-a", Tenant: iomt.DefaultTenant, Name: "Ward A", Members: []string{uAlice, uCarl, uSvc}, Patients: []string{p1}},
		{ID: "ward-b", Tenant: iomt.DefaultTenant, Name: "Ward B", Members: []string{uBob}, Patients: []string{p2}},
		{ID: "east", Tenant: otherTenant, Name: "East", Members: []string{uOlga}, Locations: []string{"*"}},
	} {
		if err := f.store.SaveCareTeam(context.Background(), tm); err != nil {
			t.Fatal(err)
		}
	}
	f.src = &policySource{Store: f.store}
	f.reload(t)
	cfg := fhir.Config{
		Store: f.store, Catalog: f.cat, Principal: bearerPrincipal, Policy: f.policy, Auditor: f.audit,
		Now: func() time.Time { return t0.Add(3 * time.Hour) },
	}
	for _, o := range opts {
		o(&cfg)
	}
	h, err := fhir.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	f.h = h
	mux := http.NewServeMux()
	mux.Handle("/fhir/r4/", h)
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.srv.Close)
	return f
}

// reload loads the policy from the store and the source's teams and emergency accesses.
func (f *fixture) reload(t testing.TB) {
	t.Helper()
	if err := f.policy.Reload(context.Background(), f.src, t0.Add(3*time.Hour)); err != nil {
		t.Fatal(err)
	}
}

func (f *fixture) url(path string) string {
	return f.srv.URL + "/fhir/r4/" + strings.TrimPrefix(path, "/")
}

// do sends a request with the admin token and returns status and decoded JSON body.
func (f *fixture) do(t *testing.T, method, path string, body any, hdr ...string) (int, map[string]any, http.Header) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		switch b := body.(type) {
		case string:
			rd = strings.NewReader(b)
		case []byte:
			rd = bytes.NewReader(b)
		default:
			j, _ := json.Marshal(b)
			rd = bytes.NewReader(j)
		}
	}
	target := path
	if !strings.HasPrefix(path, "http") {
		target = f.url(path)
	}
	req, err := http.NewRequest(method, target, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if body != nil {
		req.Header.Set("Content-Type", "application/fhir+json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i+1] == "" {
			req.Header.Del(hdr[i])
		} else {
			req.Header.Set(hdr[i], hdr[i+1])
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &m); err != nil {
			t.Fatalf("%s %s: body is not JSON: %v\n%s", method, path, err, raw)
		}
		if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/fhir+json") {
			t.Errorf("%s %s: Content-Type %q", method, path, ct)
		}
		recordEmitted(m)
	}
	return resp.StatusCode, m, resp.Header
}

// as sends a request with the bearer token of one of principals.
func (f *fixture) as(t *testing.T, who, method, path string, body any, hdr ...string) (int, map[string]any) {
	t.Helper()
	st, m, _ := f.do(t, method, path, body, append([]string{"Authorization", "Bearer " + who}, hdr...)...)
	return st, m
}

func (f *fixture) get(t *testing.T, path string) map[string]any {
	t.Helper()
	st, m, _ := f.do(t, "GET", path, nil)
	if st != http.StatusOK {
		t.Fatalf("GET %s: status %d: %v", path, st, m)
	}
	return m
}

// emitted collects every response body of every test, for the schema test to validate.
var emitted struct {
	mu  sync.Mutex
	all []map[string]any
}

func recordEmitted(m map[string]any) {
	emitted.mu.Lock()
	defer emitted.mu.Unlock()
	emitted.all = append(emitted.all, m)
}

func entries(b map[string]any) []map[string]any {
	var out []map[string]any
	es, _ := b["entry"].([]any)
	for _, e := range es {
		out = append(out, e.(map[string]any)["resource"].(map[string]any))
	}
	return out
}

func total(b map[string]any) int {
	n, _ := b["total"].(float64)
	return int(n)
}

func link(b map[string]any, rel string) string {
	ls, _ := b["link"].([]any)
	for _, l := range ls {
		m := l.(map[string]any)
		if m["relation"] == rel {
			return m["url"].(string)
		}
	}
	return ""
}

// issue returns the first issue's code and diagnostics of an OperationOutcome.
func issue(t *testing.T, m map[string]any) (string, string) {
	t.Helper()
	if m["resourceType"] != "OperationOutcome" {
		t.Fatalf("not an OperationOutcome: %v", m)
	}
	is := m["issue"].([]any)[0].(map[string]any)
	d, _ := is["diagnostics"].(string)
	return is["code"].(string), d
}

// sharedData finds ../shared/data from the module root (IOMT_SHARED_DATA overrides).
func sharedData(tb testing.TB, sub string) string {
	tb.Helper()
	dir := os.Getenv("IOMT_SHARED_DATA")
	if dir == "" {
		dir = "../../shared/data"
	}
	p := filepath.Join(dir, sub)
	if _, err := os.Stat(p); err != nil {
		tb.Skipf("reference data %s absent (%v): skipping; see ../shared/data/README.md or set IOMT_SHARED_DATA", p, err)
	}
	return p
}
