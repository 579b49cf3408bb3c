package edge_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/iomt/iomt/codes"
	"github.com/iomt/iomt/gateway"
	"github.com/iomt/iomt/gateway/edge"
)

// world is the test's clock and uplink: both move only when the test says.
type world struct {
	mu    sync.Mutex
	now   time.Time
	since time.Time
	down  bool
}

func (w *world) Now() time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.now
}

func (w *world) UplinkDown() (time.Time, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.since, w.down
}

func (w *world) advance(d time.Duration) {
	w.mu.Lock()
	w.now = w.now.Add(d)
	w.mu.Unlock()
}

func (w *world) setDown(down bool) {
	w.mu.Lock()
	w.down, w.since = down, w.now
	w.mu.Unlock()
}

// memSink records packs and answers with err.
type memSink struct {
	mu    sync.Mutex
	packs int
	err   error
}

func (s *memSink) Accept(context.Context, string, []byte, gateway.Class) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.packs++
	return s.err
}

// receiver is a real HTTP webhook that records the alerts it is sent. It answers with the
// statuses in fail first, one per request, then 204.
type receiver struct {
	srv      *httptest.Server
	mu       sync.Mutex
	fail     []int
	attempts int
	alerts   chan edge.Alert
}

func newReceiver(t *testing.T, fail ...int) *receiver {
	r := &receiver{fail: fail, alerts: make(chan edge.Alert, 100)}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.attempts++
		var status int
		if len(r.fail) > 0 {
			status, r.fail = r.fail[0], r.fail[1:]
		}
		r.mu.Unlock()
		if status != 0 {
			w.WriteHeader(status)
			return
		}
		if req.Header.Get("Content-Type") != "application/json" {
			t.Errorf("webhook content type %q", req.Header.Get("Content-Type"))
		}
		var al edge.Alert
		if err := json.Unmarshal(body, &al); err != nil {
			t.Errorf("webhook body is not an Alert: %v: %s", err, body)
		}
		r.alerts <- al
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) next(t *testing.T) edge.Alert {
	t.Helper()
	select {
	case al := <-r.alerts:
		return al
	case <-time.After(10 * time.Second):
		t.Fatal("the webhook received no alert")
	}
	return edge.Alert{}
}

// none checks that no alert arrives within a short while; a stray one would show here or
// in the next call to next.
func (r *receiver) none(t *testing.T) {
	t.Helper()
	select {
	case al := <-r.alerts:
		t.Fatalf("unexpected alert %+v", al)
	case <-time.After(200 * time.Millisecond):
	}
}

type fixture struct {
	w    *world
	a    *edge.Alarms
	sink *memSink
	rcv  *receiver
	reg  *prometheus.Registry
	logs *bytes.Buffer
}

func newFixture(t *testing.T, cfg edge.Config, fail ...int) *fixture {
	t.Helper()
	f := &fixture{w: &world{now: time.Date(2026, 11, 20, 6, 0, 0, 0, time.UTC)}, sink: &memSink{}, reg: prometheus.NewRegistry(), logs: &bytes.Buffer{}}
	f.rcv = newReceiver(t, fail...)
	cfg.UplinkDown, cfg.Now, cfg.Registerer = f.w.UplinkDown, f.w.Now, f.reg
	cfg.WebhookURL = f.rcv.srv.URL
	cfg.Logger = slog.New(slog.NewTextHandler(&lockedWriter{w: f.logs}, nil))
	if cfg.Backoff == 0 {
		cfg.Backoff = 5 * time.Millisecond
	}
	a, err := edge.New(f.sink, cfg)
	if err != nil {
		t.Fatal(err)
	}
	f.a = a
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return f
}

type lockedWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// send hands the Alarms a pack of one reading taken now.
func (f *fixture) send(t *testing.T, device, code, unit string, v float64) {
	t.Helper()
	f.sendAt(t, device, code, unit, v, f.w.Now())
}

func (f *fixture) sendAt(t *testing.T, device, code, unit string, v float64, at time.Time) {
	t.Helper()
	pack := fmt.Sprintf(`[{"bn":"%s:","bt":%d,"n":"%s","u":"%s","v":%g}]`, device, at.UnixMilli()/1000, code, unit, v)
	if err := f.a.Accept(context.Background(), device, []byte(pack), gateway.Spot); err != nil {
		t.Fatal(err)
	}
}

func (f *fixture) counter(t *testing.T, name, label string) float64 {
	t.Helper()
	mfs, err := f.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetValue() == label {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

func TestUplinkUpNoAlert(t *testing.T) {
	f := newFixture(t, edge.Config{})
	f.send(t, "oxi-1", "59408-5", "%", 70)
	f.rcv.none(t)
	if f.sink.packs != 1 {
		t.Errorf("next sink got %d packs, want 1", f.sink.packs)
	}
}

// One outage, one patient: alert, no duplicate, realert after the interval, all clear, and a
// second condition handed over when the uplink returns.
func TestLifecycle(t *testing.T) {
	f := newFixture(t, edge.Config{Gateway: "ward-3"})
	f.w.setDown(true)
	f.w.advance(2 * time.Minute)
	f.send(t, "oxi-1", "spo2", "/", 0.80) // a ratio: 80 %
	al := f.rcv.next(t)
	if al.Event != edge.Raised || al.Rule != "spo2-low" || al.Device != "oxi-1" || al.Code != "59408-5" || al.Value != 80 ||
		al.Unit != "%" || al.Condition != "59408-5 < 85" || al.Gateway != "ward-3" || al.UplinkDownSince == nil ||
		!al.UplinkDownSince.Equal(time.Date(2026, 11, 20, 6, 0, 0, 0, time.UTC)) || !al.Reading.Equal(f.w.Now()) {
		t.Errorf("alert %+v", al)
	}
	if !strings.Contains(f.logs.String(), "level=WARN") || !strings.Contains(f.logs.String(), "rule=spo2-low") {
		t.Errorf("no Warn log line for the alert: %s", f.logs)
	}

	f.w.advance(time.Minute)
	f.send(t, "oxi-1", "59408-5", "%", 82) // still low, within the re-alert interval
	f.send(t, "oxi-2", "59408-5", "%", 97) // another device, fine
	f.rcv.none(t)

	f.w.advance(5 * time.Minute)
	f.send(t, "oxi-1", "59408-5", "%", 81)
	if al := f.rcv.next(t); al.Event != edge.Repeated || al.Value != 81 {
		t.Errorf("realert %+v", al)
	}
	// A replayed older reading neither clears nor re-alerts.
	f.sendAt(t, "oxi-1", "59408-5", "%", 99, f.w.Now().Add(-time.Hour))
	f.rcv.none(t)

	f.w.advance(time.Minute)
	f.send(t, "oxi-1", "59408-5", "%", 95)
	if al := f.rcv.next(t); al.Event != edge.Cleared || al.Value != 95 || al.Rule != "spo2-low" {
		t.Errorf("clear %+v", al)
	}

	f.send(t, "ecg-1", "hr", "/min", 170)
	if al := f.rcv.next(t); al.Event != edge.Raised || al.Rule != "hr-high" || al.Code != "8867-4" {
		t.Errorf("hr alert %+v", al)
	}
	f.w.setDown(false)
	f.send(t, "ecg-1", "hr", "/min", 175)
	if al := f.rcv.next(t); al.Event != edge.Handover || al.Rule != "hr-high" || al.UplinkDownSince != nil {
		t.Errorf("handover %+v", al)
	}
	f.rcv.none(t)
	if n := f.counter(t, "iomt_gateway_edge_alerts_total", "alert"); n != 2 {
		t.Errorf("alerts counter %v, want 2", n)
	}
	if n := f.counter(t, "iomt_gateway_edge_webhook_total", "delivered"); n != 5 {
		t.Errorf("delivered counter %v, want 5", n)
	}
}

// A reading judged before the threshold alerts when the threshold passes, with no new
// reading, if it still breaks the rule; one that has since cleared does not.
func TestPendingFiresAtThreshold(t *testing.T) {
	f := newFixture(t, edge.Config{Threshold: time.Minute})
	f.w.setDown(true)
	f.w.advance(10 * time.Second)
	f.send(t, "cuff-1", "sys", "mm[Hg]", 80)
	f.send(t, "oxi-1", "spo2", "%", 80)
	f.w.advance(time.Second)
	f.send(t, "oxi-1", "spo2", "%", 90)
	f.rcv.none(t)
	f.w.advance(time.Minute)
	al := f.rcv.next(t) // Run's tick, within about a second
	if al.Event != edge.Raised || al.Rule != "systolic-low" || al.Device != "cuff-1" || al.Value != 80 {
		t.Errorf("alert %+v", al)
	}
	f.rcv.none(t)
}

// The next Sink's answer is returned as is, and its failure does not stop the alert.
func TestNextSinkError(t *testing.T) {
	f := newFixture(t, edge.Config{})
	full := errors.New("spool: full")
	f.sink.err = full
	f.w.setDown(true)
	f.w.advance(time.Hour)
	pack := fmt.Sprintf(`[{"bn":"ecg-1:","bt":%d,"n":"8867-4","v":30}]`, f.w.Now().Unix())
	if err := f.a.Accept(context.Background(), "ecg-1", []byte(pack), gateway.Alarm); !errors.Is(err, full) {
		t.Errorf("Accept = %v, want the next Sink's error", err)
	}
	if al := f.rcv.next(t); al.Rule != "hr-low" {
		t.Errorf("alert %+v", al)
	}
	// Garbage never fails Accept beyond what the next Sink says.
	f.sink.err = nil
	if err := f.a.Accept(context.Background(), "ecg-1", []byte("not senml"), gateway.Spot); err != nil {
		t.Errorf("Accept(garbage) = %v", err)
	}
}

func TestWebhookRetry(t *testing.T) {
	f := newFixture(t, edge.Config{}, http.StatusServiceUnavailable, http.StatusTooManyRequests)
	f.w.setDown(true)
	f.w.advance(time.Hour)
	f.send(t, "oxi-1", "spo2", "%", 70)
	if al := f.rcv.next(t); al.Event != edge.Raised {
		t.Errorf("alert %+v", al)
	}
	f.rcv.mu.Lock()
	attempts := f.rcv.attempts
	f.rcv.mu.Unlock()
	if attempts != 3 {
		t.Errorf("%d attempts, want 3 (two refusals, then delivery)", attempts)
	}
}

func TestWebhookRefusalNotRetried(t *testing.T) {
	f := newFixture(t, edge.Config{}, http.StatusBadRequest)
	f.w.setDown(true)
	f.w.advance(time.Hour)
	f.send(t, "oxi-1", "spo2", "%", 70)
	f.send(t, "oxi-2", "spo2", "%", 70)
	if al := f.rcv.next(t); al.Device != "oxi-2" {
		t.Errorf("alert %+v; the first was refused and must not be retried", al)
	}
	if n := f.counter(t, "iomt_gateway_edge_webhook_total", "failed"); n != 1 {
		t.Errorf("failed counter %v, want 1", n)
	}
	if !strings.Contains(f.logs.String(), "webhook refused the alert: 400 Bad Request") {
		t.Errorf("the refusal is not logged with its reason: %s", f.logs)
	}
}

// A webhook that never answers costs a bounded queue, never the data path.
func TestDeadWebhookNeverBlocks(t *testing.T) {
	release := make(chan struct{})
	hung := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer hung.Close()
	defer close(release)
	w := &world{now: time.Date(2026, 11, 20, 6, 0, 0, 0, time.UTC)}
	w.setDown(true)
	w.advance(time.Hour)
	reg := prometheus.NewRegistry()
	sink := &memSink{}
	a, err := edge.New(sink, edge.Config{UplinkDown: w.UplinkDown, Now: w.Now, WebhookURL: hung.URL, QueueSize: 4, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	for i := range 50 {
		pack := fmt.Sprintf(`[{"bn":"oxi-%d:","bt":%d,"n":"spo2","v":70}]`, i, w.Now().Unix())
		if err := a.Accept(context.Background(), fmt.Sprintf("oxi-%d", i), []byte(pack), gateway.Spot); err != nil {
			t.Fatal(err)
		}
	}
	if sink.packs != 50 {
		t.Errorf("next sink got %d packs", sink.packs)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var dropped, queued float64
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			switch {
			case mf.GetName() == "iomt_gateway_edge_webhook_total" && m.GetLabel()[0].GetValue() == "dropped":
				dropped = m.GetCounter().GetValue()
			case mf.GetName() == "iomt_gateway_edge_webhook_queue":
				queued = m.GetGauge().GetValue()
			}
		}
	}
	// 50 alerts: at most one in flight (the sender may take it from the queue at any moment),
	// at most four queued, the rest dropped.
	if queued > 4 || queued+dropped < 49 {
		t.Errorf("queue %v, dropped %v; want at most 4 queued and all but one in flight queued or dropped", queued, dropped)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
}

func TestParseRules(t *testing.T) {
	cat := codes.New()
	rules, err := edge.ParseRules([]byte(`rules:
  - {name: spo2-low, code: spo2, op: "<", threshold: 88}
  - {name: temp-high, code: MDC_TEMP_BODY, op: ">=", threshold: 39.5}
`), cat)
	if err != nil {
		t.Fatal(err)
	}
	if len(rules) != 2 || rules[0].Code != "59408-5" || rules[1].Code != "8310-5" || rules[1].Op != ">=" {
		t.Errorf("rules %+v", rules)
	}
	cases := []struct{ name, yaml, says string }{
		{"not YAML", "rules: [", "rule file"},
		{"unknown key", "rules:\n  - {name: a, code: hr, op: '<', threshold: 40, level: 1}\n", "level"},
		{"no rules", "rules: []\n", "no rules"},
		{"unknown code", "rules:\n  - {name: a, code: hrx, op: '<', threshold: 40}\n", `rules[0] (a): unknown code "hrx"`},
		{"panel", "rules:\n  - {name: a, code: bp, op: '<', threshold: 90}\n", "panel"},
		{"bad op", "rules:\n  - {name: a, code: hr, op: '=<', threshold: 40}\n", `op "=<"`},
		{"threshold beyond max", "rules:\n  - {name: a, code: spo2, op: '<', threshold: 850}\n", "outside the possible range 0..100 %"},
		{"bad name", "rules:\n  - {name: 'a b', code: hr, op: '<', threshold: 40}\n", `name "a b"`},
		{"no name", "rules:\n  - {code: hr, op: '<', threshold: 40}\n", `name ""`},
		{"duplicate", "rules:\n  - {name: a, code: hr, op: '<', threshold: 40}\n  - {name: a, code: hr, op: '>', threshold: 150}\n", "already used by rules[0]"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := edge.ParseRules([]byte(c.yaml), cat)
			if err == nil || !strings.Contains(err.Error(), c.says) {
				t.Errorf("err = %v, want it to say %q", err, c.says)
			}
		})
	}
	w := &world{}
	if _, err := edge.New(&memSink{}, edge.Config{UplinkDown: w.UplinkDown, Rules: []edge.Rule{{Name: "x", Code: "hr", Op: "!", Threshold: 1}}}); !errors.Is(err, edge.ErrRule) {
		t.Errorf("New with a bad rule: %v", err)
	}
	if _, err := edge.New(&memSink{}, edge.Config{}); err == nil {
		t.Error("New without UplinkDown succeeded")
	}
}

// Rules given as data replace the defaults.
func TestCustomRules(t *testing.T) {
	f := newFixture(t, edge.Config{Rules: []edge.Rule{{Name: "fever", Code: "temp", Op: ">=", Threshold: 39}}})
	f.w.setDown(true)
	f.w.advance(time.Hour)
	f.send(t, "oxi-1", "spo2", "%", 70) // no default rules any more
	f.send(t, "thermo-1", "8310-5", "Cel", 39)
	if al := f.rcv.next(t); al.Rule != "fever" || al.Device != "thermo-1" || al.Condition != "8310-5 >= 39" {
		t.Errorf("alert %+v", al)
	}
	f.rcv.none(t)
}
