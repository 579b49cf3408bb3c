package local_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/udp"
	"github.com/plgd-dev/go-coap/v3/udp/client"

	"github.com/iomt/iomt/gateway"
	"github.com/iomt/iomt/gateway/identity"
	"github.com/iomt/iomt/gateway/local"
	"github.com/iomt/iomt/gateway/spool"
	"github.com/iomt/iomt/wire/senml"
)

const mapping = `devices:
  - device: kitchen-thermometer
    local: ["urn:dev:mac:0024befffe804ff1", "thermo-1"]
  - device: bed3-ecg
    local: [ecg-3]
`

// memSink keeps what it accepts, or fails with err when err is set (a full or closed spool).
type memSink struct {
	mu    sync.Mutex
	packs []stored
	err   error
}

type stored struct {
	device string
	pack   []byte
	class  gateway.Class
}

func (s *memSink) Accept(_ context.Context, device string, pack []byte, class gateway.Class) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return s.err
	}
	s.packs = append(s.packs, stored{device, bytes.Clone(pack), class})
	return nil
}

func (s *memSink) stored() []stored {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]stored(nil), s.packs...)
}

// fixture runs one Adapter behind a real HTTP server and a real CoAP server on free ports.
type fixture struct {
	http   *httptest.Server
	coap   *client.Conn
	sink   gateway.Sink
	cancel context.CancelFunc
}

func newFixture(t testing.TB, sink gateway.Sink) *fixture {
	t.Helper()
	tab, err := identity.Parse([]byte(mapping))
	if err != nil {
		t.Fatal(err)
	}
	a, err := local.New(local.Config{Resolver: tab, Sink: sink})
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{sink: sink, http: httptest.NewServer(a.HTTPHandler())}
	t.Cleanup(f.http.Close)

	pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	f.cancel = cancel
	done := make(chan error, 1)
	go func() { done <- a.ServeCoAP(ctx, pc) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("ServeCoAP: %v", err)
		}
	})
	conn, err := udp.Dial(pc.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	f.coap = conn
	return f
}

func (f *fixture) postHTTP(t testing.TB, path, contentType string, body []byte) (int, string) {
	t.Helper()
	resp, err := http.Post(f.http.URL+path, contentType, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

func (f *fixture) postCoAP(t testing.TB, path string, cf message.MediaType, body []byte) (codes.Code, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := f.coap.Post(ctx, path, cf, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	var b []byte
	if resp.Body() != nil {
		if b, err = resp.ReadBody(); err != nil {
			t.Fatal(err)
		}
	}
	return resp.Code(), string(b)
}

// extraClient is another CoAP client (its own UDP socket) to the same server.
func (f *fixture) extraClient(t testing.TB) *fixture {
	t.Helper()
	conn, err := udp.Dial(f.coap.RemoteAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	g := *f
	g.coap = conn
	return &g
}

// lockedCount counts packs from concurrent requests.
type lockedCount struct {
	mu      sync.Mutex
	n, seqN int
}

func (s *lockedCount) Accept(context.Context, string, []byte, gateway.Class) error {
	s.mu.Lock()
	s.n++
	s.mu.Unlock()
	return nil
}

func (s *lockedCount) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n
}

// next hands out client indexes to parallel benchmark goroutines.
func (s *lockedCount) next() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seqN++
	return s.seqN
}

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

func cborOf(t *testing.T, p senml.Pack) []byte {
	t.Helper()
	b, err := senml.EncodeCBOR(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func f64(v float64) *float64 { return &v }

// Every transport and format, named by base name and by path, arrives as the same normalised
// pack: the platform device, catalog codes, canonical units, absolute times.
func TestTransports(t *testing.T) {
	at := time.Date(2026, 11, 20, 6, 0, 0, 0, time.UTC)
	bt := float64(at.Unix())
	jsonBN := []byte(fmt.Sprintf(`[{"bn":"urn:dev:mac:0024befffe804ff1:","bt":%v,"n":"temp","u":"Cel","v":37.2},
		{"n":"spo2","u":"/","v":0.97,"t":1},{"n":"8867-4","v":72,"t":1}]`, bt))
	cborPath := cborOf(t, senml.Pack{
		{BaseTime: bt, Name: "temp", Unit: "Cel", Value: f64(37.2)},
		{Name: "spo2", Unit: "/", Value: f64(0.97), Time: 1},
		{Name: "hr", Value: f64(72), Time: 1},
	})
	want := []reading{
		{"kitchen-thermometer:8310-5", "Cel", 37.2, at},
		{"kitchen-thermometer:59408-5", "%", 97, at.Add(time.Second)},
		{"kitchen-thermometer:8867-4", "/min", 72, at.Add(time.Second)},
	}
	type send func(f *fixture) (ok bool, answer string)
	cases := map[string]send{
		"HTTP JSON, base name": func(f *fixture) (bool, string) {
			s, b := f.postHTTP(t, "/senml", "application/senml+json", jsonBN)
			return s == http.StatusNoContent, fmt.Sprint(s, b)
		},
		"HTTP CBOR, path": func(f *fixture) (bool, string) {
			s, b := f.postHTTP(t, "/senml/thermo-1", "application/senml+cbor", cborPath)
			return s == http.StatusNoContent, fmt.Sprint(s, b)
		},
		"CoAP JSON, base name": func(f *fixture) (bool, string) {
			c, b := f.postCoAP(t, "/senml", message.AppSenmlJSON, jsonBN)
			return c == codes.Changed, fmt.Sprint(c, b)
		},
		"CoAP CBOR, URN in path": func(f *fixture) (bool, string) {
			c, b := f.postCoAP(t, "/senml/urn:dev:mac:0024befffe804ff1", message.AppSenmlCbor, cborPath)
			return c == codes.Changed, fmt.Sprint(c, b)
		},
		"HTTP CBOR, URN in path": func(f *fixture) (bool, string) {
			s, b := f.postHTTP(t, "/senml/urn:dev:mac:0024befffe804ff1", "application/senml+cbor", cborPath)
			return s == http.StatusNoContent, fmt.Sprint(s, b)
		},
		"CoAP CBOR, path": func(f *fixture) (bool, string) {
			c, b := f.postCoAP(t, "/senml/THERMO-1", message.AppSenmlCbor, cborPath)
			return c == codes.Changed, fmt.Sprint(c, b)
		},
	}
	for name, send := range cases {
		t.Run(name, func(t *testing.T) {
			sink := &memSink{}
			f := newFixture(t, sink)
			if ok, answer := send(f); !ok {
				t.Fatalf("answer %s", answer)
			}
			got := sink.stored()
			if len(got) != 1 || got[0].device != "kitchen-thermometer" || got[0].class != gateway.Spot {
				t.Fatalf("sink holds %+v", got)
			}
			rs := readings(t, got[0].pack)
			if len(rs) != len(want) {
				t.Fatalf("readings %+v", rs)
			}
			for i, w := range want {
				g := rs[i]
				if g.name != w.name || g.unit != w.unit || math.Abs(g.value-w.value) > 1e-9 || !g.at.Equal(w.at) {
					t.Errorf("reading %d = %+v, want %+v", i, g, w)
				}
			}
		})
	}
}

// Relative times are the gateway's receive time, fixed when the pack arrives: the uplink may
// forward it much later.
func TestRelativeTime(t *testing.T) {
	sink := &memSink{}
	f := newFixture(t, sink)
	before := time.Now()
	if s, b := f.postHTTP(t, "/senml/thermo-1", "application/senml+json", []byte(`[{"n":"temp","v":36.6,"t":-10}]`)); s != http.StatusNoContent {
		t.Fatalf("%d %s", s, b)
	}
	rs := readings(t, sink.stored()[0].pack)
	if d := before.Add(-10 * time.Second).Sub(rs[0].at); d > time.Second || d < -2*time.Second {
		t.Errorf("time %s, want about %s", rs[0].at, before.Add(-10*time.Second))
	}
}

func TestClass(t *testing.T) {
	sink := &memSink{}
	f := newFixture(t, sink)
	bt := float64(time.Date(2026, 11, 20, 6, 0, 0, 0, time.UTC).Unix())
	var wave strings.Builder
	fmt.Fprintf(&wave, `[{"bn":"ecg-3:","bt":%v,"n":"ecg","u":"mV","v":0.1}`, bt)
	for i := 1; i < 250; i++ {
		fmt.Fprintf(&wave, `,{"n":"ecg","u":"mV","v":%g,"t":%g}`, math.Sin(float64(i)/10), float64(i)*0.004)
	}
	if s, b := f.postHTTP(t, "/senml", "application/senml+json", []byte(wave.String()+"]")); s != http.StatusNoContent {
		t.Fatalf("%d %s", s, b)
	}
	if s, b := f.postHTTP(t, "/senml", "application/senml+json", []byte(wave.String()+`,{"n":"hr","v":80}]`)); s != http.StatusNoContent {
		t.Fatalf("%d %s", s, b)
	}
	got := sink.stored()
	if len(got) != 2 || got[0].class != gateway.Waveform || got[1].class != gateway.Spot {
		t.Fatalf("classes %v, %v; want waveform, then spot for a pack with a heart rate too", got[0].class, got[1].class)
	}
	rs := readings(t, got[0].pack)
	if len(rs) != 250 || rs[0].name != "bed3-ecg:MDC_ECG_ELEC_POTL_II" || !rs[249].at.Equal(rs[0].at.Add(996*time.Millisecond)) {
		t.Errorf("%d samples, first %+v, last %+v", len(rs), rs[0], rs[len(rs)-1])
	}
}

// Each refusal answers both transports with its status and its reason.
func TestRefusals(t *testing.T) {
	now := time.Now()
	cases := []struct {
		name, path, body string
		status           int
		code             codes.Code
		says             string
	}{
		{"not JSON", "/senml/thermo-1", `{"n":1`, 400, codes.BadRequest, "senml"},
		{"must-understand field", "/senml/thermo-1", `[{"n":"temp","v":37,"foo_":1}]`, 400, codes.BadRequest, "foo_"},
		{"empty pack", "/senml/thermo-1", `[]`, 400, codes.BadRequest, "no records"},
		{"only base fields", "/senml/thermo-1", `[{"bn":"x:"}]`, 400, codes.BadRequest, "only base fields"},
		{"no device name", "/senml", `[{"n":"temp","v":37}]`, 400, codes.BadRequest, "says no device"},
		{"two devices", "/senml", `[{"n":"thermo-1:temp","v":37},{"n":"ecg-3:hr","v":60}]`, 400, codes.BadRequest, `names device "ecg-3" but the pack began with "thermo-1"`},
		{"two devices, path", "/senml/thermo-1", `[{"n":"thermo-1:temp","v":37},{"n":"ecg-3:hr","v":60}]`, 400, codes.BadRequest, `names device "ecg-3" but the pack began with "thermo-1"`},
		{"unknown device", "/senml/thermo-9", `[{"n":"temp","v":37}]`, 404, codes.NotFound, `local device name "thermo-9"`},
		{"unknown device by base name", "/senml", `[{"bn":"urn:dev:mac:ffff:","n":"temp","v":37}]`, 404, codes.NotFound, `"urn:dev:mac:ffff"`},
		{"unknown code", "/senml/thermo-1", `[{"n":"tempx","v":37}]`, 400, codes.BadRequest, `record 0 ("tempx"): unknown code "tempx"`},
		{"panel", "/senml/thermo-1", `[{"n":"bp","v":120}]`, 400, codes.BadRequest, "panel"},
		{"string value", "/senml/thermo-1", `[{"n":"temp","vs":"hot"}]`, 400, codes.BadRequest, "no numeric value"},
		{"wrong unit", "/senml/thermo-1", `[{"n":"temp","u":"C","v":37}]`, 400, codes.BadRequest, `"C"`},
		{"out of range", "/senml/thermo-1", `[{"n":"temp","v":99}]`, 400, codes.BadRequest, "outside the possible range 20..46"},
		{"clock not set", "/senml/thermo-1", `[{"n":"temp","v":37,"t":3e8}]`, 400, codes.BadRequest, "before 2000"},
		{"clock ahead", "/senml/thermo-1", fmt.Sprintf(`[{"n":"temp","v":37,"t":%d}]`, now.Add(time.Hour).Unix()), 400, codes.BadRequest, "ahead of the gateway's clock"},
		{"duplicate", "/senml/thermo-1", fmt.Sprintf(`[{"bt":%d,"n":"temp","v":37},{"n":"temp","v":37.1}]`, now.Unix()), 400, codes.BadRequest, "another record of this pack has 8310-5"},
		{"bad name in path", "/senml/a%20b", `[{"n":"temp","v":37}]`, 400, codes.BadRequest, "not a local device name"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			sink := &memSink{}
			f := newFixture(t, sink)
			if s, b := f.postHTTP(t, c.path, "application/senml+json", []byte(c.body)); s != c.status || !strings.Contains(b, c.says) {
				t.Errorf("HTTP: %d %q; want %d saying %q", s, b, c.status, c.says)
			}
			if c.path != "/senml/a%20b" { // CoAP paths carry no percent-encoding
				if code, b := f.postCoAP(t, c.path, message.AppSenmlJSON, []byte(c.body)); code != c.code || !strings.Contains(b, c.says) {
					t.Errorf("CoAP: %v %q; want %v saying %q", code, b, c.code, c.says)
				}
			}
			if n := len(sink.stored()); n != 0 {
				t.Errorf("sink got %d packs", n)
			}
		})
	}
}

func TestTransportRefusals(t *testing.T) {
	f := newFixture(t, &memSink{})
	if s, b := f.postHTTP(t, "/senml/thermo-1", "application/json", []byte(`[]`)); s != http.StatusUnsupportedMediaType || !strings.Contains(b, "application/senml+json") {
		t.Errorf("HTTP content type: %d %q", s, b)
	}
	if s, _ := f.postHTTP(t, "/other", "application/senml+json", []byte(`[]`)); s != http.StatusNotFound {
		t.Errorf("HTTP other path: %d", s)
	}
	resp, err := http.Get(f.http.URL + "/senml")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("HTTP GET: %d", resp.StatusCode)
	}
	big := []byte(`[{"n":"thermo-1:temp","v":37,"vs":"` + strings.Repeat("x", 1<<20) + `"}]`)
	if s, b := f.postHTTP(t, "/senml", "application/senml+json", big); s != http.StatusRequestEntityTooLarge {
		t.Errorf("HTTP big: %d %q", s, b)
	}
	if code, b := f.postCoAP(t, "/senml/thermo-1", message.AppJSON, []byte(`[]`)); code != codes.UnsupportedMediaType || !strings.Contains(b, "110") {
		t.Errorf("CoAP content format: %v %q", code, b)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := f.coap.Get(ctx, "/senml/thermo-1")
	if err != nil {
		t.Fatal(err)
	}
	if r.Code() != codes.MethodNotAllowed {
		t.Errorf("CoAP GET: %v", r.Code())
	}
}

func TestSinkFailure(t *testing.T) {
	f := newFixture(t, &memSink{err: errors.New("spool: full")})
	body := []byte(`[{"n":"temp","v":37}]`)
	resp, err := http.Post(f.http.URL+"/senml/thermo-1", "application/senml+json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" || !strings.Contains(string(b), "spool: full") {
		t.Errorf("HTTP: %d %q Retry-After %q", resp.StatusCode, b, resp.Header.Get("Retry-After"))
	}
	if code, b := f.postCoAP(t, "/senml/thermo-1", message.AppSenmlJSON, body); code != codes.ServiceUnavailable || !strings.Contains(b, "spool: full") {
		t.Errorf("CoAP: %v %q", code, b)
	}
}

// spoolSink puts packs in the real spool: Accept returns once Put has fsynced.
type spoolSink struct{ s *spool.Spool }

func (k spoolSink) Accept(ctx context.Context, device string, pack []byte, class gateway.Class) error {
	_, err := k.s.Put(ctx, spool.Entry{Device: device, Class: class, Payload: pack})
	return err
}

// Through the real spool: what CoAP acknowledged is in the spool after it is closed and
// reopened, in order.
func TestIntoSpool(t *testing.T) {
	dir := t.TempDir()
	sp, err := spool.Open(dir, spool.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, spoolSink{sp})
	for i := range 3 {
		body := []byte(fmt.Sprintf(`[{"bn":"thermo-1:","n":"temp","v":%d}]`, 36+i))
		if code, b := f.postCoAP(t, "/senml", message.AppSenmlJSON, body); code != codes.Changed {
			t.Fatalf("%v %s", code, b)
		}
	}
	if err := sp.Close(); err != nil {
		t.Fatal(err)
	}
	sp, err = spool.Open(dir, spool.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	es, err := sp.Next(10)
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != 3 {
		t.Fatalf("spool holds %d entries", len(es))
	}
	for i, e := range es {
		if rs := readings(t, e.Payload); e.Device != "kitchen-thermometer" || e.Seq != uint64(i+1) || rs[0].value != float64(36+i) {
			t.Errorf("entry %d: %s seq %d %+v", i, e.Device, e.Seq, rs)
		}
	}
}

func TestNewNeedsResolverAndSink(t *testing.T) {
	if _, err := local.New(local.Config{Sink: &memSink{}}); err == nil {
		t.Error("New without a Resolver succeeded")
	}
}
