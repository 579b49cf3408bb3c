package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/iomt/iomt"
	"github.com/iomt/iomt/api"
	"github.com/iomt/iomt/bus/memory"
	"github.com/iomt/iomt/codes"
	"github.com/iomt/iomt/ingest"
	"github.com/iomt/iomt/policy"
	"github.com/iomt/iomt/store/embedded"
)

type lifecycle struct {
	srv     *httptest.Server
	st      *embedded.Store
	audit   *auditLog
	logs    *lockedBuffer
	mu      sync.Mutex
	changes []api.DeviceChange
}

func (l *lifecycle) changed() []api.DeviceChange {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]api.DeviceChange(nil), l.changes...)
}

// newLifecycle serves the API with HTTP ingest, a throttle of maxFailures a minute, and a
// recorder of device changes.
func newLifecycle(t *testing.T, maxFailures int) *lifecycle {
	t.Helper()
	st, err := embedded.Open(t.TempDir(), embedded.Options{NoSync: true, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	bus := memory.New(memory.Options{})
	t.Cleanup(func() { bus.Close(); _ = st.Close() })
	l := &lifecycle{st: st, audit: &auditLog{}, logs: &lockedBuffer{}}
	log := slog.New(slog.NewTextHandler(l.logs, nil))
	h, err := api.New(api.Config{
		Store: st, BootstrapToken: token, Policy: policy.New(), Auditor: l.audit, Logger: log, Catalog: codes.New(),
		Ingester: ingest.New(codes.New(), st, st, bus, log, nil, ingest.Options{}),
		Auth:     ingest.Authenticator{Registry: st},
		Throttle: ingest.NewThrottle(ingest.ThrottleOptions{MaxFailures: maxFailures, Logger: log}),
		DeviceChanged: func(_ context.Context, c api.DeviceChange) {
			l.mu.Lock()
			l.changes = append(l.changes, c)
			l.mu.Unlock()
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	l.srv = httptest.NewServer(h)
	t.Cleanup(l.srv.Close)
	return l
}

type issued struct {
	ID       string
	Patient  string
	Gateway  string
	Disabled bool
	Token    string
	MQTT     *struct{ Username, Password string }
}

// ingestWith POSTs a heart rate with a device token and returns the status and body.
func (l *lifecycle) ingestWith(t *testing.T, tok string) (int, string) {
	t.Helper()
	body := fmt.Sprintf(`[{"n":"8867-4","u":"/min","v":72,"t":%d}]`, time.Now().Add(-time.Second).Unix())
	req, _ := http.NewRequest("POST", l.srv.URL+"/api/v1/ingest", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// Rotate, revoke, disable, enable and delete a device through the API: each takes effect on
// HTTP ingest at once, tells the node to end the device's sessions, and is audited with the
// device and its patient; the device's readings outlive it.
func TestDeviceCredentialLifecycle(t *testing.T) {
	l := newLifecycle(t, 100)
	var p patient
	if st := call(t, l.srv, "POST", "/api/v1/patients", `{"name":"Ada"}`, &p); st != 201 {
		t.Fatalf("create patient: %d", st)
	}
	var d issued
	if st := call(t, l.srv, "POST", "/api/v1/devices", `{"kind":"pulse-oximeter","patient":"`+p.ID+`"}`, &d); st != 201 || d.Token == "" || d.MQTT == nil {
		t.Fatalf("create device: %d %+v", st, d)
	}
	if rec := l.audit.records(t, "device.create"); len(rec) != 1 || rec[0]["device"] != d.ID || rec[0]["patient"] != p.ID {
		t.Fatalf("device.create audit: %v", rec)
	}
	if st, body := l.ingestWith(t, d.Token); st != 200 {
		t.Fatalf("ingest with the issued token: %d %s", st, body)
	}

	var rot issued
	if st := call(t, l.srv, "POST", "/api/v1/devices/"+d.ID+"/credentials", "", &rot); st != 200 || rot.Token == "" || rot.Token == d.Token || rot.MQTT == nil || rot.MQTT.Password == d.MQTT.Password {
		t.Fatalf("rotate: %d %+v", st, rot)
	}
	if st, _ := l.ingestWith(t, d.Token); st != 401 {
		t.Fatalf("old token after rotation: %d, want 401", st)
	}
	if st, body := l.ingestWith(t, rot.Token); st != 200 {
		t.Fatalf("new token: %d %s", st, body)
	}
	if rec := l.audit.records(t, "device.credentials.rotate"); len(rec) != 1 || rec[0]["device"] != d.ID || rec[0]["patient"] != p.ID || rec[0]["status"] != 200.0 {
		t.Fatalf("rotate audit: %v", rec)
	}
	for _, rec := range l.audit.records(t, "device.credentials.rotate") {
		if line, _ := json.Marshal(rec); strings.Contains(string(line), rot.MQTT.Password) || strings.Contains(string(line), rot.Token) {
			t.Fatal("a secret reached the audit log")
		}
	}

	var dis issued
	if st := call(t, l.srv, "PATCH", "/api/v1/devices/"+d.ID, `{"disabled":true}`, &dis); st != 200 || !dis.Disabled {
		t.Fatalf("disable: %d %+v", st, dis)
	}
	if st, body := l.ingestWith(t, rot.Token); st != 401 {
		t.Fatalf("token of a disabled device: %d %s", st, body)
	}
	if st := call(t, l.srv, "PATCH", "/api/v1/devices/"+d.ID, `{"disabled":false}`, &dis); st != 200 || dis.Disabled {
		t.Fatalf("enable: %d %+v", st, dis)
	}
	if st, body := l.ingestWith(t, rot.Token); st != 200 {
		t.Fatalf("token of an enabled device: %d %s", st, body)
	}
	if rec := l.audit.records(t, "device.update"); len(rec) != 2 || rec[0]["disabled"] != "true" || rec[1]["disabled"] != "false" || rec[0]["changed"] != "disabled" {
		t.Fatalf("update audit: %v", rec)
	}

	var rev struct{ Revoked bool }
	if st := call(t, l.srv, "POST", "/api/v1/devices/"+d.ID+"/revoke", "", &rev); st != 200 || !rev.Revoked {
		t.Fatalf("revoke: %d %+v", st, rev)
	}
	if st := call(t, l.srv, "GET", "/api/v1/devices/"+d.ID, "", &rev); st != 200 || !rev.Revoked {
		t.Fatalf("GET of a revoked device: %d %+v, want revoked", st, rev)
	}
	if st, _ := l.ingestWith(t, rot.Token); st != 401 {
		t.Fatalf("token after revocation: %d, want 401", st)
	}
	if len(l.audit.records(t, "device.credentials.revoke")) != 1 {
		t.Fatal("revocation not audited")
	}
	var again issued
	if st := call(t, l.srv, "POST", "/api/v1/devices/"+d.ID+"/credentials", "", &again); st != 200 {
		t.Fatalf("rotate after revoke: %d", st)
	}
	if st, body := l.ingestWith(t, again.Token); st != 200 {
		t.Fatalf("token issued after revocation: %d %s", st, body)
	}
	rev.Revoked = false // the answer leaves it out when false
	if st := call(t, l.srv, "GET", "/api/v1/devices/"+d.ID, "", &rev); st != 200 || rev.Revoked {
		t.Fatalf("GET after rotation: %d %+v, want not revoked", st, rev)
	}

	req, _ := http.NewRequest("DELETE", l.srv.URL+"/api/v1/devices/"+d.ID, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 204 {
		t.Fatalf("delete: %v %v", err, resp)
	}
	resp.Body.Close()
	if st := call(t, l.srv, "GET", "/api/v1/devices/"+d.ID, "", nil); st != 404 {
		t.Fatalf("GET after delete: %d", st)
	}
	if st, _ := l.ingestWith(t, again.Token); st != 401 {
		t.Fatalf("token of a deleted device: %d", st)
	}
	if rec := l.audit.records(t, "device.delete"); len(rec) != 1 || rec[0]["device"] != d.ID || rec[0]["patient"] != p.ID {
		t.Fatalf("delete audit: %v", rec)
	}
	var obs struct{ Points []struct{ V float64 } }
	if st := call(t, l.srv, "GET", "/api/v1/patients/"+p.ID+"/observations?code=8867-4&from="+time.Now().Add(-time.Hour).UTC().Format(time.RFC3339), "", &obs); st != 200 || len(obs.Points) == 0 {
		t.Fatalf("readings of the deleted device by patient: %d %+v", st, obs.Points)
	}
	if stored, err := l.st.Observations(context.Background(), iomt.ObservationQuery{Patient: p.ID, Code: "8867-4"}); err != nil || len(stored) == 0 || stored[0].Device != d.ID {
		t.Fatalf("stored readings after delete: %+v, %v", stored, err)
	}
	for _, path := range []string{"/credentials", "/revoke"} {
		if st := call(t, l.srv, "POST", "/api/v1/devices/"+d.ID+path, "", nil); st != 404 {
			t.Errorf("POST %s of a deleted device: %d, want 404", path, st)
		}
	}

	want := []api.DeviceChange{
		{Device: d.ID, Reason: "credentials rotated", End: true},
		{Device: d.ID, Reason: "device disabled", End: true},
		{Device: d.ID, Reason: "credentials revoked", End: true},
		{Device: d.ID, Reason: "credentials rotated", End: true},
		{Device: d.ID, Reason: "device deleted", End: true},
	}
	if got := l.changed(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("device changes told to the node:\n got %+v\nwant %+v", got, want)
	}
}

// A device is registered behind a gateway at creation or by PATCH; the gateway must be an
// existing device of kind gateway, and a gateway cannot sit behind one.
func TestDeviceGatewayRegistration(t *testing.T) {
	l := newLifecycle(t, 100)
	var gw, other, dev issued
	for _, c := range []struct {
		body string
		out  *issued
	}{{`{"kind":"gateway"}`, &gw}, {`{"kind":"scale"}`, &other}} {
		if st := call(t, l.srv, "POST", "/api/v1/devices", c.body, c.out); st != 201 {
			t.Fatalf("create %s: %d", c.body, st)
		}
	}
	if st := call(t, l.srv, "POST", "/api/v1/devices", `{"kind":"pulse-oximeter","gateway":"`+gw.ID+`"}`, &dev); st != 201 || dev.Gateway != gw.ID {
		t.Fatalf("create behind a gateway: %d %+v", st, dev)
	}
	for _, c := range []struct{ method, path, body, want string }{
		{"POST", "/api/v1/devices", `{"kind":"scale","gateway":"nope"}`, `"gateway": device "nope" does not exist`},
		{"POST", "/api/v1/devices", `{"kind":"scale","gateway":"` + other.ID + `"}`, "is a scale, not a gateway"},
		{"POST", "/api/v1/devices", `{"kind":"gateway","gateway":"` + gw.ID + `"}`, "is itself a gateway"},
		{"PATCH", "/api/v1/devices/" + dev.ID, `{"gateway":"` + other.ID + `"}`, "is a scale, not a gateway"},
	} {
		var pr problem
		if st := call(t, l.srv, c.method, c.path, c.body, &pr); st != 422 || !strings.Contains(pr.Detail, c.want) {
			t.Errorf("%s %s %s: %d %q, want 422 with %q", c.method, c.path, c.body, st, pr.Detail, c.want)
		}
	}
	var pr problem
	if st := call(t, l.srv, "PATCH", "/api/v1/devices/"+dev.ID, `{"kind":"scale"}`, &pr); st != 400 || !strings.Contains(pr.Detail, `unknown field "kind"`) {
		t.Errorf("PATCH of an unknown field: %d %q", st, pr.Detail)
	}
	var got issued
	if st := call(t, l.srv, "PATCH", "/api/v1/devices/"+dev.ID, `{"gateway":""}`, &got); st != 200 || got.Gateway != "" {
		t.Fatalf("clear the gateway: %d %+v", st, got)
	}
	if c := l.changed(); len(c) != 1 || c[0] != (api.DeviceChange{Device: dev.ID, Reason: "gateway changed"}) {
		t.Fatalf("changes: %+v", c)
	}
	rec := l.audit.records(t, "device.update")
	if len(rec) != 3 || rec[0]["status"] != 422.0 || rec[0]["device"] != dev.ID || rec[2]["gatewayFrom"] != gw.ID || rec[2]["gatewayTo"] != "" || rec[2]["status"] != 200.0 {
		t.Fatalf("gateway change audit (refused, refused, changed): %v", rec)
	}
}

// Failed HTTP ingest authentications are logged with the device and source (never the token)
// and, after three in a minute from one address, that address is refused with 429 even with a
// good token, logged once.
func TestIngestThrottled(t *testing.T) {
	l := newLifecycle(t, 3)
	var d issued
	if st := call(t, l.srv, "POST", "/api/v1/devices", `{"kind":"scale"}`, &d); st != 201 {
		t.Fatal(st)
	}
	wrong := d.ID + ".not-the-secret"
	for range 3 {
		if st, _ := l.ingestWith(t, wrong); st != 401 {
			t.Fatalf("wrong token: %d", st)
		}
	}
	st, body := l.ingestWith(t, d.Token)
	if st != 429 || !strings.Contains(body, "too many failed device authentications") {
		t.Fatalf("good token from a throttled source: %d %s", st, body)
	}
	logs := l.logs.String()
	if !strings.Contains(logs, "http ingest refused") || !strings.Contains(logs, "device="+d.ID) || !strings.Contains(logs, "remote=127.0.0.1:") {
		t.Fatalf("refusal log lacks device or source:\n%s", logs)
	}
	if strings.Count(logs, "device authentication throttled") != 1 || !strings.Contains(logs, "source=127.0.0.1") {
		t.Fatalf("block not logged once:\n%s", logs)
	}
	if strings.Contains(logs, "not-the-secret") || strings.Contains(logs, strings.SplitN(d.Token, ".", 2)[1]) {
		t.Fatal("a token secret reached the log")
	}
}

// lockedBuffer is a log the handlers write while the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// The OpenAPI document describes the lifecycle endpoints.
func TestOpenAPIDeviceLifecycle(t *testing.T) {
	srv, _ := newServer(t)
	var doc struct {
		Paths map[string]map[string]any
	}
	if st := call(t, srv, "GET", "/api/v1/openapi.json", "", &doc); st != http.StatusOK {
		t.Fatalf("openapi: %d", st)
	}
	for path, method := range map[string]string{
		"/api/v1/devices/{id}":             "patch",
		"/api/v1/devices/{id}/credentials": "post",
		"/api/v1/devices/{id}/revoke":      "post",
	} {
		if _, ok := doc.Paths[path][method]; !ok {
			t.Errorf("openapi lacks %s %s", method, path)
		}
	}
	if _, ok := doc.Paths["/api/v1/devices/{id}"]["delete"]; !ok {
		t.Error("openapi lacks delete /api/v1/devices/{id}")
	}
}
