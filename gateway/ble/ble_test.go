package ble_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/iomt/iomt/gateway"
	"github.com/iomt/iomt/gateway/ble"
	"github.com/iomt/iomt/gateway/identity"
	"github.com/iomt/iomt/wire/senml"
)

const mapping = `devices:
  - device: ward-oximeter-7
    ble: ["C4:7C:8D:6A:12:34"]
  - device: home-cuff-2
    ble: ["00:11:22:33:44:55"]
`

// memSink keeps what it accepts; it fails every Accept from the failFrom-th on (1-based; 0
// never), as a full or closed spool does.
type memSink struct {
	mu       sync.Mutex
	packs    []stored
	failFrom int
	calls    int
}

type stored struct {
	device string
	pack   []byte
	class  gateway.Class
}

var errFull = errors.New("spool: full")

func (s *memSink) Accept(_ context.Context, device string, pack []byte, class gateway.Class) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	if s.failFrom > 0 && s.calls >= s.failFrom {
		return errFull
	}
	s.packs = append(s.packs, stored{device, bytes.Clone(pack), class})
	return nil
}

func (s *memSink) stored() []stored {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]stored(nil), s.packs...)
}

type fixture struct {
	srv  *httptest.Server
	sink *memSink
	reg  *prometheus.Registry
}

func newFixture(t testing.TB, sink *memSink) *fixture {
	t.Helper()
	tab, err := identity.Parse([]byte(mapping))
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	h, err := ble.New(ble.Config{Resolver: tab, Sink: sink, Registerer: reg, Location: time.UTC})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &fixture{srv: srv, sink: sink, reg: reg}
}

func (f *fixture) post(t *testing.T, contentType, body string) (int, ble.Response, http.Header) {
	t.Helper()
	resp, err := http.Post(f.srv.URL, contentType, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var r ble.Response
	if err := json.Unmarshal(raw, &r); err != nil {
		t.Fatalf("answer %d is not a Response: %v: %s", resp.StatusCode, err, raw)
	}
	return resp.StatusCode, r, resp.Header
}

// reading is one resolved record of a stored pack.
type reading struct {
	name, unit string
	value      float64
	at         time.Time
}

func readings(t *testing.T, pack []byte) []reading {
	t.Helper()
	p, err := senml.DecodeJSON(pack)
	if err != nil {
		t.Fatalf("stored pack is not SenML JSON: %v: %s", err, pack)
	}
	rs, err := p.Resolve(time.Now())
	if err != nil {
		t.Fatalf("stored pack does not resolve: %v", err)
	}
	out := make([]reading, len(rs))
	for i, r := range rs {
		out[i] = reading{r.Name, r.Unit, *r.Value, r.At()}
	}
	return out
}

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9*math.Max(1, math.Abs(b)) }

func TestVectorsThroughHTTP(t *testing.T) {
	received := time.Date(2026, 11, 20, 6, 30, 0, 123_000_000, time.UTC)
	rcv := received.Format(time.RFC3339Nano)
	oxi := "C4-7c-8d-6a-12-34" // any notation the identity package reads
	cases := []struct {
		name  string
		n     map[string]string
		class string
		src   string
		want  []reading
	}{
		{"heart rate, no timestamp: received time", map[string]string{"characteristic": "2A37", "payload_hex": "1E 55 32 00 21 00"},
			"spot", "received", []reading{{"ward-oximeter-7:8867-4", "/min", 85, received}}},
		{"blood pressure with irregular pulse, unknown year: received time, alarm", map[string]string{"characteristic": "0x2a35", "payload_hex": "1E8A00580078000000041114293B3C00012700"},
			"alarm", "received", []reading{
				{"ward-oximeter-7:8480-6", "mm[Hg]", 138, received}, {"ward-oximeter-7:8462-4", "mm[Hg]", 88, received},
				{"ward-oximeter-7:8478-0", "mm[Hg]", 120, received}, {"ward-oximeter-7:8867-4", "/min", 60, received}}},
		{"thermometer with timestamp, 128-bit UUID", map[string]string{"characteristic": "00002A1C-0000-1000-8000-00805F9B34FB", "payload_hex": "06B00E00FEDC070C050B321B04"},
			"spot", "device", []reading{{"ward-oximeter-7:8310-5", "Cel", 37.6, time.Date(2012, 12, 5, 11, 50, 27, 0, time.UTC)}}},
		{"PLX spot-check in base64, device time", map[string]string{"characteristic": "2A5E", "payload_base64": "D6zzvvXoBwsdFwg5IEAiAABm4w=="},
			"spot", "device", []reading{
				{"ward-oximeter-7:59408-5", "%", 94, time.Date(2024, 11, 29, 23, 8, 57, 0, time.UTC)},
				{"ward-oximeter-7:8889-8", "/min", 147, time.Date(2024, 11, 29, 23, 8, 57, 0, time.UTC)},
				// Its device and sensor status (equipment malfunction, low perfusion) goes too.
				{"ward-oximeter-7:MDC_PULS_OXIM_DEV_STATUS", "1", 0x22, time.Date(2024, 11, 29, 23, 8, 57, 0, time.UTC)}}},
		{"CGM without session start: newest record at received time", map[string]string{"characteristic": "2AA7", "payload_hex": "06000C100500 06000C100600"},
			"spot", "received", []reading{
				{"ward-oximeter-7:99504-3", "mg/dL", 120, received.Add(-time.Minute)}, {"ward-oximeter-7:99504-3", "mg/dL", 120, received}}},
		{"CGM with session start", map[string]string{"characteristic": "2AA7", "payload_hex": "06000C100500 06000C100600", "cgm_session_start": "2026-11-20T05:00:00Z"},
			"spot", "cgm_session_start", []reading{
				{"ward-oximeter-7:99504-3", "mg/dL", 120, time.Date(2026, 11, 20, 5, 5, 0, 0, time.UTC)},
				{"ward-oximeter-7:99504-3", "mg/dL", 120, time.Date(2026, 11, 20, 5, 6, 0, 0, time.UTC)}}},
		{"glucose with status bits, base time + offset", map[string]string{"characteristic": "2A18", "payload_hex": "1B0100E307021B0B0A1EFBFF1E00120501"},
			"spot", "device", []reading{{"ward-oximeter-7:2345-7", "mg/dL", 3_000_000, time.Date(2019, 2, 27, 11, 5, 30, 0, time.UTC)}}},
		{"weight with a timestamp before 2000: received time", map[string]string{"characteristic": "2A9D", "payload_hex": "0201020403050607 0809"},
			"spot", "received", []reading{{"ward-oximeter-7:29463-7", "kg", 2.565, received}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t, &memSink{})
			c.n["address"], c.n["received"] = oxi, rcv
			body, _ := json.Marshal(c.n)
			status, resp, _ := f.post(t, "application/json", string(body))
			if status != http.StatusOK || resp.Accepted != 1 || len(resp.Results) != 1 {
				t.Fatalf("status %d, %+v", status, resp)
			}
			r := resp.Results[0]
			if r.Status != ble.Accepted || r.Device != "ward-oximeter-7" || r.Class != c.class || r.TimeSource != c.src || r.Readings != len(c.want) {
				t.Errorf("result %+v; want class %s, time source %s, %d readings", r, c.class, c.src, len(c.want))
			}
			got := f.sink.stored()
			if len(got) != 1 || got[0].device != "ward-oximeter-7" || got[0].class.String() != c.class {
				t.Fatalf("sink holds %+v", got)
			}
			rs := readings(t, got[0].pack)
			if len(rs) != len(c.want) {
				t.Fatalf("readings %+v, want %+v", rs, c.want)
			}
			for i, w := range c.want {
				g := rs[i]
				if g.name != w.name || g.unit != w.unit || !near(g.value, w.value) || !g.at.Equal(w.at) {
					t.Errorf("reading %d = %+v, want %+v", i, g, w)
				}
			}
		})
	}
}

func TestNoReading(t *testing.T) {
	f := newFixture(t, &memSink{})
	// 0xFFFF: "measurement unsuccessful".
	status, resp, _ := f.post(t, "application/json", `{"address":"C4:7C:8D:6A:12:34","characteristic":"2A9D","payload_hex":"00FFFF"}`)
	if status != http.StatusOK || resp.Accepted != 1 || resp.Results[0].Status != ble.NoReading || !strings.Contains(resp.Results[0].Error, "no value") {
		t.Fatalf("status %d, %+v", status, resp)
	}
	if got := f.sink.stored(); len(got) != 0 {
		t.Errorf("sink got %d packs for a notification without a reading", len(got))
	}
}

func TestBatchInOrder(t *testing.T) {
	f := newFixture(t, &memSink{})
	var ns []string
	for i := range 5 {
		ns = append(ns, fmt.Sprintf(`{"address":"00:11:22:33:44:55","characteristic":"2A37","payload_hex":"00%02X","received":"2026-11-20T06:00:%02dZ"}`, 60+i, i))
	}
	status, resp, _ := f.post(t, "application/json", "["+strings.Join(ns, ",")+"]")
	if status != http.StatusOK || resp.Accepted != 5 {
		t.Fatalf("status %d, %+v", status, resp)
	}
	got := f.sink.stored()
	if len(got) != 5 {
		t.Fatalf("sink holds %d packs", len(got))
	}
	for i, p := range got {
		rs := readings(t, p.pack)
		if p.device != "home-cuff-2" || rs[0].value != float64(60+i) || rs[0].at.Second() != i {
			t.Errorf("pack %d: %s %+v", i, p.device, rs)
		}
	}
	if n := counter(t, f.reg, "accepted"); n != 5 {
		t.Errorf("accepted counter %v, want 5", n)
	}
}

func counter(t *testing.T, reg *prometheus.Registry, status string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "iomt_gateway_ble_notifications_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "status" && l.GetValue() == status {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	t.Fatalf("no counter for status %s", status)
	return 0
}

// A batch with one bad item stores nothing and says which item was at fault and why.
func TestBatchRefusedWhole(t *testing.T) {
	f := newFixture(t, &memSink{})
	body := `[{"address":"C4:7C:8D:6A:12:34","characteristic":"2A37","payload_hex":"0055"},
	          {"address":"C4:7C:8D:6A:12:34","characteristic":"2A37","payload_hex":"00 5G"},
	          {"address":"C4:7C:8D:6A:12:34","characteristic":"2A37","payload_hex":"0056"}]`
	status, resp, _ := f.post(t, "application/json", body)
	if status != http.StatusBadRequest || resp.Accepted != 0 || len(resp.Results) != 3 {
		t.Fatalf("status %d, %+v", status, resp)
	}
	if r := resp.Results[1]; r.Status != ble.Refused || !strings.Contains(r.Error, "payload_hex is not hexadecimal") {
		t.Errorf("item 1: %+v", r)
	}
	for _, i := range []int{0, 2} {
		if r := resp.Results[i]; r.Status != ble.NotAttempted {
			t.Errorf("item %d: %+v, want not_attempted", i, r)
		}
	}
	if !strings.Contains(resp.Detail, "notification 1") {
		t.Errorf("detail %q does not name the item", resp.Detail)
	}
	if got := f.sink.stored(); len(got) != 0 {
		t.Errorf("sink got %d packs from a refused batch", len(got))
	}
}

func TestUnknownDevice(t *testing.T) {
	f := newFixture(t, &memSink{})
	status, resp, _ := f.post(t, "application/json", `{"address":"AA:BB:CC:DD:EE:FF","characteristic":"2A37","payload_hex":"0055"}`)
	if status != http.StatusUnprocessableEntity || resp.Results[0].Status != ble.UnknownDevice ||
		!strings.Contains(resp.Results[0].Error, "BLE address AA:BB:CC:DD:EE:FF") {
		t.Fatalf("status %d, %+v", status, resp)
	}
}

// A Sink failure mid-batch answers 503 and says exactly which notifications were accepted.
func TestSinkFailureMidBatch(t *testing.T) {
	f := newFixture(t, &memSink{failFrom: 2})
	body := `[{"address":"C4:7C:8D:6A:12:34","characteristic":"2A37","payload_hex":"0055"},
	          {"address":"C4:7C:8D:6A:12:34","characteristic":"2A37","payload_hex":"0056"},
	          {"address":"C4:7C:8D:6A:12:34","characteristic":"2A37","payload_hex":"0057"}]`
	status, resp, hdr := f.post(t, "application/json", body)
	if status != http.StatusServiceUnavailable || hdr.Get("Retry-After") == "" || resp.Accepted != 1 {
		t.Fatalf("status %d, Retry-After %q, %+v", status, hdr.Get("Retry-After"), resp)
	}
	want := []ble.Status{ble.Accepted, ble.Failed, ble.NotAttempted}
	for i, w := range want {
		if resp.Results[i].Status != w {
			t.Errorf("item %d: %+v, want %s", i, resp.Results[i], w)
		}
	}
	if !strings.Contains(resp.Results[1].Error, "spool: full") {
		t.Errorf("failure %q does not carry the sink's reason", resp.Results[1].Error)
	}
	if got := f.sink.stored(); len(got) != 1 || readings(t, got[0].pack)[0].value != 85 {
		t.Errorf("sink holds %+v", got)
	}
}

func TestRefusals(t *testing.T) {
	const ok = `"address":"C4:7C:8D:6A:12:34","characteristic":"2A37"`
	cases := []struct {
		name, ctype, body string
		status            int
		says              string
	}{
		{"not JSON", "application/json", `hello`, 400, "not JSON"},
		{"empty body", "application/json", ``, 400, "empty body"},
		{"empty batch", "application/json", `[]`, 400, "empty batch"},
		{"two values", "application/json", `{` + ok + `,"payload_hex":"0055"} {}`, 400, "more than one JSON value"},
		{"unknown field", "application/json", `{` + ok + `,"payload":"0055"}`, 400, `unknown field "payload"`},
		{"wrong type", "application/json", `{"address":1}`, 400, "not a notification"},
		{"text/plain", "text/plain", `{}`, 415, "application/json"},
		{"no address", "application/json", `{"characteristic":"2A37","payload_hex":"0055"}`, 400, "address is missing"},
		{"bad address", "application/json", `{"address":"C4:7C:8D","characteristic":"2A37","payload_hex":"0055"}`, 400, "not a 48-bit BLE address"},
		{"no characteristic", "application/json", `{"address":"C4:7C:8D:6A:12:34","payload_hex":"0055"}`, 400, "characteristic is missing"},
		{"bad UUID", "application/json", `{"address":"C4:7C:8D:6A:12:34","characteristic":"xyz","payload_hex":"0055"}`, 400, "characteristic"},
		{"vendor 128-bit UUID", "application/json", `{"address":"C4:7C:8D:6A:12:34","characteristic":"6e400003-b5a3-f393-e0a9-e50e24dcca9e","payload_hex":"0055"}`, 400, "characteristic"},
		{"unknown characteristic", "application/json", `{"address":"C4:7C:8D:6A:12:34","characteristic":"2A00","payload_hex":"0055"}`, 400, "0x2A00: unknown characteristic"},
		{"no payload", "application/json", `{` + ok + `}`, 400, "payload is missing"},
		{"both payloads", "application/json", `{` + ok + `,"payload_hex":"0055","payload_base64":"AFU="}`, 400, "not both"},
		{"odd hex", "application/json", `{` + ok + `,"payload_hex":"055"}`, 400, "payload_hex is not hexadecimal"},
		{"bad base64", "application/json", `{` + ok + `,"payload_base64":"AF*="}`, 400, "payload_base64 is not standard base64"},
		{"bad received", "application/json", `{` + ok + `,"payload_hex":"0055","received":"yesterday"}`, 400, `received "yesterday" is not an RFC 3339 time`},
		{"received in the future", "application/json", `{` + ok + `,"payload_hex":"0055","received":"2999-01-01T00:00:00Z"}`, 400, "ahead of the gateway's clock"},
		{"bad session start", "application/json", `{` + ok + `,"payload_hex":"0055","cgm_session_start":"5"}`, 400, "cgm_session_start"},
		{"decoder refusal", "application/json", `{` + ok + `,"payload_hex":"170101"}`, 400, "gatt: 0x2A37: offset 3: RR interval (uint16) needs 2 bytes, 0 left"},
		{"CGM CRC mismatch", "application/json", `{"address":"C4:7C:8D:6A:12:34","characteristic":"2AA7","payload_hex":"08000C100600586F"}`, 400, "CRC"},
		{"not a measurement", "application/json", `{"address":"C4:7C:8D:6A:12:34","characteristic":"2A60","payload_hex":"A300401080 0100"}`, 400, "not a measurement"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t, &memSink{})
			status, resp, _ := f.post(t, c.ctype, c.body)
			if status != c.status {
				t.Errorf("status %d, want %d: %+v", status, c.status, resp)
			}
			all := resp.Detail
			for _, r := range resp.Results {
				all += " | " + r.Error
			}
			if !strings.Contains(all, c.says) {
				t.Errorf("answer %q does not say %q", all, c.says)
			}
			if len(f.sink.stored()) != 0 {
				t.Error("sink got a pack from a refused request")
			}
		})
	}
}

func TestMethodAndSize(t *testing.T) {
	f := newFixture(t, &memSink{})
	resp, err := http.Get(f.srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "POST" {
		t.Errorf("GET: %d, Allow %q", resp.StatusCode, resp.Header.Get("Allow"))
	}
	big := `{"address":"C4:7C:8D:6A:12:34","characteristic":"2A37","payload_hex":"` + strings.Repeat("00", 1<<20) + `"}`
	status, r, _ := f.post(t, "application/json", big)
	if status != http.StatusRequestEntityTooLarge || !strings.Contains(r.Detail, "larger than") {
		t.Errorf("big body: %d %+v", status, r)
	}
	batch := "[" + strings.TrimSuffix(strings.Repeat(`{"address":"C4:7C:8D:6A:12:34","characteristic":"2A37","payload_hex":"0055"},`, 1001), ",") + "]"
	status, r, _ = f.post(t, "application/json", batch)
	if status != http.StatusBadRequest || !strings.Contains(r.Detail, "at most 1000") {
		t.Errorf("big batch: %d %+v", status, r)
	}
}

func TestNewNeedsResolverAndSink(t *testing.T) {
	if _, err := ble.New(ble.Config{Sink: &memSink{}}); err == nil {
		t.Error("New without a Resolver succeeded")
	}
}

// Device timestamps are wall-clock time in Config.Location; Deliver is the in-process entry.
func TestLocation(t *testing.T) {
	tab, err := identity.Parse([]byte(mapping))
	if err != nil {
		t.Fatal(err)
	}
	sink := &memSink{}
	h, err := ble.New(ble.Config{Resolver: tab, Sink: sink, Location: time.FixedZone("CET", 3600)})
	if err != nil {
		t.Fatal(err)
	}
	res, err := h.Deliver(context.Background(), []ble.Notification{{Address: "C4:7C:8D:6A:12:34", Characteristic: "2A1C", PayloadHex: "06B00E00FEDC070C050B321B04"}})
	if err != nil || res[0].Status != ble.Accepted || res[0].TimeSource != "device" {
		t.Fatalf("%+v, %v", res, err)
	}
	if at := readings(t, sink.stored()[0].pack)[0].at; !at.Equal(time.Date(2012, 12, 5, 10, 50, 27, 0, time.UTC)) {
		t.Errorf("time %s, want 11:50:27 CET = 10:50:27 UTC", at)
	}
}
