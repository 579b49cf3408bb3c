package export_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/iomt/iomt"
	"github.com/iomt/iomt/bus/memory"
	"github.com/iomt/iomt/codes"
	"github.com/iomt/iomt/fhir"
	"github.com/iomt/iomt/fhir/export"
)

const ehrToken = "ehr-secret-token-xyz"

// EHR modes.
const (
	up          = iota
	unavailable // 503 with Retry-After: 0
	dropConn    // close the connection without an answer
	applyDrop   // apply the transaction, then close the connection (the answer is lost)
	throttle    // 429 with Retry-After: 1
	badAuth     // 401
)

// fakeEHR applies transaction Bundles of PUT Observation/{id} to a map keyed by id.
type fakeEHR struct {
	srv  *httptest.Server
	mode atomic.Int32

	mu       sync.Mutex
	stored   map[string]json.RawMessage
	puts     map[string]int
	posts    int
	dropped  int // POSTs applied whose answer was then lost (applyDrop)
	postTime []time.Time
	refuse   func(o map[string]any) bool // entries the EHR refuses with 422
}

func newEHR(t *testing.T) *fakeEHR {
	e := &fakeEHR{stored: map[string]json.RawMessage{}, puts: map[string]int{}}
	e.srv = httptest.NewServer(http.HandlerFunc(e.serve))
	t.Cleanup(e.srv.Close)
	return e
}

func (e *fakeEHR) serve(w http.ResponseWriter, r *http.Request) {
	e.mu.Lock()
	e.posts++
	e.postTime = append(e.postTime, time.Now())
	e.mu.Unlock()
	hang := func() {
		hj, ok := w.(http.Hijacker)
		if !ok {
			panic("no hijacker")
		}
		c, _, _ := hj.Hijack()
		_ = c.Close()
	}
	switch e.mode.Load() {
	case unavailable:
		w.Header().Set("Retry-After", "0")
		http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
		return
	case dropConn:
		hang()
		return
	case throttle:
		w.Header().Set("Retry-After", "1")
		http.Error(w, "slow down", http.StatusTooManyRequests)
		return
	case badAuth:
		http.Error(w, "who are you", http.StatusUnauthorized)
		return
	}
	if r.Header.Get("Authorization") != "Bearer "+ehrToken || r.Method != http.MethodPost {
		http.Error(w, "unauthorised", http.StatusUnauthorized)
		return
	}
	var b struct {
		ResourceType, Type string
		Entry              []struct {
			Resource json.RawMessage
			Request  struct{ Method, URL string }
		}
	}
	body, _ := io.ReadAll(r.Body)
	if err := json.Unmarshal(body, &b); err != nil || b.ResourceType != "Bundle" || b.Type != "transaction" {
		http.Error(w, "not a transaction", http.StatusBadRequest)
		return
	}
	// A transaction is atomic: check everything first.
	for _, en := range b.Entry {
		var o map[string]any
		_ = json.Unmarshal(en.Resource, &o)
		if en.Request.Method != "PUT" || en.Request.URL != "Observation/"+fmt.Sprint(o["id"]) {
			http.Error(w, "entry is not PUT Observation/{its id}", http.StatusBadRequest)
			return
		}
		if e.refuse != nil && e.refuse(o) {
			w.Header().Set("Content-Type", "application/fhir+json")
			w.WriteHeader(http.StatusUnprocessableEntity)
			_ = json.NewEncoder(w).Encode(fhir.Outcome("error", "business-rule", "implausible value"))
			return
		}
	}
	resp := fhir.Bundle{ResourceType: "Bundle", Type: "transaction-response"}
	e.mu.Lock()
	for _, en := range b.Entry {
		id := strings.TrimPrefix(en.Request.URL, "Observation/")
		status := "201 Created"
		if _, ok := e.stored[id]; ok {
			status = "200 OK"
		}
		e.stored[id] = en.Resource
		e.puts[id]++
		resp.Entry = append(resp.Entry, fhir.BundleEntry{Response: &fhir.BundleEntryResponse{Status: status, Location: en.Request.URL}})
	}
	e.mu.Unlock()
	if e.mode.Load() == applyDrop {
		e.mu.Lock()
		e.dropped++
		e.mu.Unlock()
		hang()
		return
	}
	w.Header().Set("Content-Type", "application/fhir+json")
	_ = json.NewEncoder(w).Encode(resp)
}

func (e *fakeEHR) snapshot() (map[string]json.RawMessage, map[string]int, int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return maps.Clone(e.stored), maps.Clone(e.puts), e.posts
}

// batches makes n device messages for one patient: heart rate, SpO2, a blood pressure pair
// and a battery level (not exported).
func batches(n int, start time.Time) []iomt.Batch {
	var out []iomt.Batch
	for i := range n {
		t := start.Add(time.Duration(i) * time.Minute)
		p := fmt.Sprintf("patient%02d", i%3)
		out = append(out, iomt.Batch{Tenant: iomt.DefaultTenant, Device: "dev-" + p, Patient: p, Received: t, Observations: []iomt.Observation{
			{Patient: p, Device: "dev-" + p, Code: "8867-4", Time: t, Value: 60 + float64(i%30), Unit: "/min"},
			{Patient: p, Device: "dev-" + p, Code: "59408-5", Time: t, Value: 90 + float64(i%10), Unit: "%"},
			{Patient: p, Device: "dev-" + p, Code: "8480-6", Time: t, Value: 120, Unit: "mm[Hg]"},
			{Patient: p, Device: "dev-" + p, Code: "8462-4", Time: t, Value: 80, Unit: "mm[Hg]"},
			{Patient: p, Device: "dev-" + p, Code: "MDC_ATTR_VAL_BATT_CHARGE", Time: t, Value: 50, Unit: "%"},
		}})
	}
	return out
}

// expectedIDs are the Observation ids the batches must become.
func expectedIDs(t *testing.T, cat *codes.Catalog, bs []iomt.Batch) []string {
	m := fhir.Mapper{Catalog: cat}
	var ids []string
	for _, b := range bs {
		var sel []iomt.Observation
		for _, o := range b.Observations {
			if c, _ := cat.ByID(o.Code); c.FHIRVitalSigns {
				sel = append(sel, o)
			}
		}
		obs, err := m.Observations(sel)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range obs {
			ids = append(ids, o.ID)
		}
	}
	slices.Sort(ids)
	return ids
}

type runner struct {
	ex     *export.Exporter
	cancel context.CancelFunc
	done   chan error
}

func start(t *testing.T, cfg export.Config) *runner {
	t.Helper()
	ex, err := export.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &runner{ex: ex, cancel: cancel, done: make(chan error, 1)}
	// Subscribe before returning: the memory bus drops what is published while no group is
	// subscribed, so callers may publish as soon as start returns.
	if err := ex.Subscribe(ctx); err != nil {
		cancel()
		_ = ex.Close()
		t.Fatal(err)
	}
	go func() { r.done <- ex.Run(ctx) }()
	t.Cleanup(func() { r.stop(t) })
	return r
}

func (r *runner) stop(t *testing.T) {
	if r.cancel == nil {
		return
	}
	r.cancel()
	if err := <-r.done; err != nil {
		t.Errorf("Run: %v", err)
	}
	if err := r.ex.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	r.cancel = nil
}

func eventually(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func baseConfig(ehr *fakeEHR, dir string, bus iomt.Bus, log *slog.Logger) export.Config {
	return export.Config{
		Bus: bus, Catalog: codes.New(), URL: ehr.srv.URL, Token: ehrToken, Dir: dir,
		BatchSize: 16, BatchDelay: 20 * time.Millisecond, MinBackoff: 5 * time.Millisecond, MaxBackoff: 50 * time.Millisecond,
		HTTPClient: &http.Client{Timeout: 2 * time.Second}, Logger: log,
	}
}

// The EHR is down, the exporter restarts mid-outage, the connection drops after the EHR
// applied a transaction: everything arrives, once.
func TestOutageRestartNoLossNoDuplicate(t *testing.T) {
	ehr := newEHR(t)
	ehr.mode.Store(unavailable)
	cat := codes.New()
	var logs bytes.Buffer
	sw := &syncWriter{w: &logs}
	log := slog.New(slog.NewTextHandler(sw, &slog.HandlerOptions{Level: slog.LevelDebug}))
	dir := t.TempDir()
	bus := memory.New(memory.Options{})
	defer bus.Close()

	first := batches(60, time.Date(2026, 11, 20, 8, 0, 0, 0, time.UTC))
	want := expectedIDs(t, cat, first)
	r1 := start(t, baseConfig(ehr, dir, bus, log))
	for _, b := range first {
		if err := bus.Publish(t.Context(), b); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "the outbox to hold every observation", 10*time.Second, func() bool {
		n, _ := r1.ex.Pending()
		return n == len(want)
	})
	// The outbox may fill before the second attempt: wait for it rather than assert at once.
	eventually(t, "a second attempt during the outage", 10*time.Second, func() bool {
		_, _, posts := ehr.snapshot()
		return posts >= 2
	})
	// Restart mid-outage: a new exporter on the same outbox.
	r1.stop(t)
	// The bus drops r1's group in a goroutine once its context ends; r2 joins the same group.
	eventually(t, "r1 to leave the bus", 5*time.Second, func() bool { return len(bus.Owned("fhir-export")) == 0 })
	ehr.mode.Store(dropConn)
	reg := prometheus.NewRegistry()
	cfg := baseConfig(ehr, dir, bus, log)
	cfg.Registerer = reg
	r2 := start(t, cfg)
	time.Sleep(100 * time.Millisecond)
	// The EHR comes back but loses its answers for a while: the exporter must resend.
	ehr.mode.Store(applyDrop)
	// Stay in applyDrop until an answer is actually lost: a stall could skip a fixed window.
	eventually(t, "an applied POST whose answer is lost", 10*time.Second, func() bool {
		ehr.mu.Lock()
		defer ehr.mu.Unlock()
		return ehr.dropped >= 1
	})
	ehr.mode.Store(up)
	eventually(t, "the outbox to drain", 20*time.Second, func() bool {
		n, _ := r2.ex.Pending()
		return n == 0
	})
	// New data after recovery flows too.
	second := batches(10, time.Date(2026, 11, 21, 8, 0, 0, 0, time.UTC))
	for _, b := range second {
		if err := bus.Publish(t.Context(), b); err != nil {
			t.Fatal(err)
		}
	}
	want = append(want, expectedIDs(t, cat, second)...)
	slices.Sort(want)
	eventually(t, "the second wave", 10*time.Second, func() bool {
		st, _, _ := ehr.snapshot()
		return len(st) == len(want)
	})
	// The EHR holds a batch before its answer reaches the exporter, which
	// only then clears the batch from its outbox.
	eventually(t, "the outbox to drain again", 10*time.Second, func() bool {
		return gather(t, reg)["iomt_fhir_export_outbox_entries"] == 0
	})
	stored, puts, posts := ehr.snapshot()
	got := slices.Sorted(maps.Keys(stored))
	if !slices.Equal(got, want) {
		t.Fatalf("stored %d ids, want %d", len(got), len(want))
	}
	resent := 0
	for id, n := range puts {
		if n > 1 {
			resent++
		}
		if n > posts {
			t.Errorf("%s PUT %d times in %d POSTs", id, n, posts)
		}
	}
	if resent == 0 {
		t.Error("no observation was resent: the lost-answer case was not exercised")
	}
	// BP arrives as panels, without the battery level.
	for id, raw := range stored {
		var o map[string]any
		_ = json.Unmarshal(raw, &o)
		code := o["code"].(map[string]any)["coding"].([]any)[0].(map[string]any)["code"]
		if code == "8480-6" || code == "8462-4" || code == nil {
			t.Errorf("%s: code %v", id, code)
		}
	}
	if strings.Contains(sw.String(), ehrToken) {
		t.Error("the EHR token appears in the log")
	}
	m := gather(t, reg)
	if m["iomt_fhir_export_sent_total"] < float64(len(want)-len(expectedIDs(t, cat, first))) || m["iomt_fhir_export_retries_total"] == 0 || m["iomt_fhir_export_outbox_entries"] != 0 {
		t.Errorf("metrics: %v", m)
	}
	t.Logf("%d observations, %d POSTs, %d resent after lost answers", len(want), posts, resent)
}

type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

// String reads what was written so far; only for a bytes.Buffer.
func (s *syncWriter) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.(*bytes.Buffer).String()
}

func gather(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			switch {
			case m.GetCounter() != nil:
				out[mf.GetName()] = m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				out[mf.GetName()] = m.GetGauge().GetValue()
			}
		}
	}
	return out
}

func TestDeadLettersAndRetry(t *testing.T) {
	ehr := newEHR(t)
	poison := 222.0
	var refusing atomic.Bool
	refusing.Store(true)
	ehr.refuse = func(o map[string]any) bool {
		q, _ := o["valueQuantity"].(map[string]any)
		return refusing.Load() && q != nil && q["value"] == poison
	}
	reg := prometheus.NewRegistry()
	cfg := baseConfig(ehr, t.TempDir(), nil, nil)
	cfg.Registerer = reg
	r := start(t, cfg)
	bs := batches(12, time.Date(2026, 11, 20, 8, 0, 0, 0, time.UTC))
	bs[7].Observations[0].Value = poison
	for _, b := range bs {
		if err := r.ex.Enqueue(t.Context(), b); err != nil {
			t.Fatal(err)
		}
	}
	want := expectedIDs(t, codes.New(), bs)
	eventually(t, "delivery", 10*time.Second, func() bool {
		n, _ := r.ex.Pending()
		return n == 0
	})
	stored, _, _ := ehr.snapshot()
	if len(stored) != len(want)-1 {
		t.Fatalf("stored %d, want %d", len(stored), len(want)-1)
	}
	h := httptest.NewServer(http.StripPrefix("/api/v1/export/dead-letters", r.ex.Handler()))
	defer h.Close()
	resp, err := http.Get(h.URL + "/api/v1/export/dead-letters")
	if err != nil {
		t.Fatal(err)
	}
	var list struct{ DeadLetters []export.DeadLetter }
	_ = json.NewDecoder(resp.Body).Decode(&list)
	resp.Body.Close()
	if len(list.DeadLetters) != 1 || list.DeadLetters[0].Status != 422 || !strings.Contains(list.DeadLetters[0].Reason, "implausible") {
		t.Fatalf("dead letters: %+v", list)
	}
	id := list.DeadLetters[0].ID
	if _, ok := stored[id]; ok {
		t.Error("the refused observation was stored")
	}
	if m := gather(t, reg); m["iomt_fhir_export_dead_letters_total"] != 1 || m["iomt_fhir_export_dead_letters"] != 1 {
		t.Errorf("metrics: %v", m)
	}
	// Someone fixes the EHR's rule and retries.
	refusing.Store(false)
	resp, err = http.Post(h.URL+"/api/v1/export/dead-letters/"+id+"/retry", "", nil)
	if err != nil || resp.StatusCode != http.StatusAccepted {
		t.Fatalf("retry: %v %v", err, resp.Status)
	}
	resp.Body.Close()
	if resp, _ := http.Post(h.URL+"/api/v1/export/dead-letters/nope/retry", "", nil); resp.StatusCode != 404 {
		t.Errorf("retry of nothing: %d", resp.StatusCode)
	}
	eventually(t, "the retried observation", 10*time.Second, func() bool {
		st, _, _ := ehr.snapshot()
		_, ok := st[id]
		return ok
	})
	if dls, _ := r.ex.DeadLetters(); len(dls) != 0 {
		t.Errorf("dead letters left: %v", dls)
	}
}

func TestRetryAfterAndAuth(t *testing.T) {
	ehr := newEHR(t)
	ehr.mode.Store(throttle)
	var logs bytes.Buffer
	sw := &syncWriter{w: &logs}
	log := slog.New(slog.NewTextHandler(sw, nil))
	r := start(t, baseConfig(ehr, t.TempDir(), nil, log))
	if err := r.ex.Enqueue(t.Context(), batches(1, time.Date(2026, 11, 20, 8, 0, 0, 0, time.UTC))[0]); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a throttled attempt", 5*time.Second, func() bool { _, _, p := ehr.snapshot(); return p >= 1 })
	ehr.mode.Store(badAuth)
	eventually(t, "a second attempt", 5*time.Second, func() bool { _, _, p := ehr.snapshot(); return p >= 2 })
	ehr.mu.Lock()
	gap := ehr.postTime[1].Sub(ehr.postTime[0])
	ehr.mu.Unlock()
	if gap < 900*time.Millisecond {
		t.Errorf("retried %v after a 429 with Retry-After: 1", gap)
	}
	// The EHR counts a POST before it reads the mode: wait until the 401 was answered and logged.
	eventually(t, "the credentials error in the log", 5*time.Second, func() bool { return strings.Contains(sw.String(), "credentials") })
	ehr.mode.Store(up)
	eventually(t, "delivery", 5*time.Second, func() bool { n, _ := r.ex.Pending(); return n == 0 })
	if out := sw.String(); !strings.Contains(out, "credentials") || strings.Contains(out, ehrToken) {
		t.Errorf("log: %s", out)
	}
	if _, err := export.New(export.Config{Catalog: codes.New(), URL: "http://user:pw@ehr.example/fhir", Dir: t.TempDir()}); err == nil {
		t.Error("credentials in the URL accepted")
	}
}

// An EHR at a plain http:// URL on another machine is refused when the exporter is set up,
// with the reason and the flag; allowed explicitly, or on loopback, or over https, it is not.
// (New does not connect: nothing is sent anywhere here.)
func TestPlainHTTPRefused(t *testing.T) {
	_, err := export.New(export.Config{Catalog: codes.New(), URL: "http://ehr.example.org/fhir", Dir: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "plain http to another machine") || !strings.Contains(err.Error(), "--fhir-export-allow-http") {
		t.Errorf("plain http EHR: %v", err)
	}
	for _, c := range []export.Config{
		{URL: "http://ehr.example.org/fhir", AllowHTTP: true}, {URL: "https://ehr.example.org/fhir"}, {URL: "http://127.0.0.1:8081/fhir"},
	} {
		c.Catalog, c.Dir = codes.New(), t.TempDir()
		ex, err := export.New(c)
		if err != nil {
			t.Errorf("%s (allow %v): %v", c.URL, c.AllowHTTP, err)
			continue
		}
		ex.Close()
	}
}
