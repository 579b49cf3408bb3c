package mllp_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/iomt/iomt/codes"
	"github.com/iomt/iomt/gateway"
	"github.com/iomt/iomt/gateway/identity"
	"github.com/iomt/iomt/gateway/mllp"
	"github.com/iomt/iomt/wire/senml"
)

var dataDir = filepath.Join("..", "..", "..", "shared", "data", "hl7v2")

// readData returns a reference message with CR segment ends, as on the wire, skipping the test
// in a plain clone.
func readData(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dataDir, name))
	if errors.Is(err, os.ErrNotExist) {
		t.Skipf("reference data %s is absent (see ../shared/data/README); skipping", filepath.Join(dataDir, name))
	}
	if err != nil {
		t.Fatal(err)
	}
	return bytes.ReplaceAll(b, []byte("\r\n"), []byte("\r"))
}

const mapping = `devices:
  - device: acme-monitor-1
    kind: bedside-monitor
    equipment: ["0123456789ABCDEF"]
  - device: icu3-gateway
    senders: [{application: "080019FFFF4F6AC0", facility: MMS}]
`

type accepted struct {
	device string
	pack   senml.Pack
	class  gateway.Class
}

// recordingSink keeps what it accepts, or fails with err.
type recordingSink struct {
	mu      sync.Mutex
	got     []accepted
	err     error
	wait    chan struct{} // when set, Accept blocks until it is closed
	entered chan struct{} // when set, closed when Accept is first called, before it waits
	once    sync.Once
}

func (s *recordingSink) Accept(ctx context.Context, device string, data []byte, class gateway.Class) error {
	if s.entered != nil {
		s.once.Do(func() { close(s.entered) })
	}
	if s.wait != nil {
		<-s.wait
	}
	if s.err != nil {
		return s.err
	}
	p, err := senml.DecodeJSON(data)
	if err != nil {
		return fmt.Errorf("test sink: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.got = append(s.got, accepted{device, p, class})
	return nil
}

func (s *recordingSink) all() []accepted {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]accepted(nil), s.got...)
}

type harness struct {
	addr string
	reg  *prometheus.Registry
	done chan error
	stop context.CancelFunc
}

func start(t *testing.T, sink gateway.Sink, tweak func(*mllp.Config)) *harness {
	t.Helper()
	tab, err := identity.Parse([]byte(mapping))
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	cfg := mllp.Config{Resolver: tab, Sink: sink, Registerer: reg, ReadTimeout: 5 * time.Second}
	if tweak != nil {
		tweak(&cfg)
	}
	srv, err := mllp.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h := &harness{addr: ln.Addr().String(), reg: reg, done: make(chan error, 1), stop: cancel}
	go func() { h.done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-h.done:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Serve did not return after cancel")
		}
	})
	return h
}

// client is a monitor that frames messages by hand: VT message FS CR.
type client struct {
	t  *testing.T
	c  net.Conn
	br *bufio.Reader
}

func dial(t *testing.T, addr string) *client {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &client{t, c, bufio.NewReader(c)}
}

func (c *client) sendRaw(b []byte) {
	c.t.Helper()
	if _, err := c.c.Write(b); err != nil {
		c.t.Fatal(err)
	}
}

func (c *client) send(msg []byte) {
	c.t.Helper()
	c.sendRaw(append(append([]byte{0x0b}, msg...), 0x1c, 0x0d))
}

// ack reads one framed answer and returns its segments by name.
func (c *client) ack() map[string][]string {
	c.t.Helper()
	_ = c.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	b, err := c.br.ReadBytes(0x1c)
	if err != nil {
		c.t.Fatalf("reading ACK: %v (got %q)", err, b)
	}
	if cr, err := c.br.ReadByte(); err != nil || cr != 0x0d {
		c.t.Fatalf("frame not ended by CR: %v", err)
	}
	if len(b) < 2 || b[0] != 0x0b {
		c.t.Fatalf("ACK not framed: %q", b)
	}
	segs := map[string][]string{}
	for _, s := range strings.Split(strings.TrimRight(string(b[1:len(b)-1]), "\r"), "\r") {
		f := strings.Split(s, "|")
		segs[f[0]] = f
	}
	return segs
}

func (c *client) roundTrip(msg []byte) (code, errText string, segs map[string][]string) {
	c.send(msg)
	segs = c.ack()
	msa := segs["MSA"]
	if len(msa) < 2 {
		c.t.Fatalf("ACK without MSA: %v", segs)
	}
	if e := segs["ERR"]; len(e) > 8 {
		errText = e[3] + " " + e[8]
	}
	return msa[1], errText, segs
}

func values(p senml.Pack) map[string]float64 {
	rs, err := p.Resolve(time.Now())
	if err != nil {
		panic(err)
	}
	out := map[string]float64{}
	for _, r := range rs {
		out[r.Name] = *r.Value
	}
	return out
}

// TestValidMessages sends every valid reference message over one connection.
func TestValidMessages(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join(dataDir, "ipf_valid-*"))
	if len(files) == 0 {
		t.Skipf("reference data in %s is absent; skipping", dataDir)
	}
	want := map[string]struct {
		ack    string
		device string
		values map[string]float64
	}{
		"ipf_valid-bp-continua-wan.hl7v2":                   {"AA", "acme-monitor-1", map[string]float64{"acme-monitor-1:8480-6": 120, "acme-monitor-1:8462-4": 80, "acme-monitor-1:8478-0": 100}},
		"ipf_valid-fitness-and-activity-continua-wan.hl7v2": {"AA", "acme-monitor-1", map[string]float64{"acme-monitor-1:MDC_HF_SPEED": 30}},
		"ipf_valid-fitness-continua-wan.hl7v2": {"AA", "acme-monitor-1", map[string]float64{"acme-monitor-1:MDC_HF_REPETITION_COUNT": 25,
			"acme-monitor-1:MDC_HF_RESISTANCE": 12 * 0.45359237, "acme-monitor-1:MDC_HF_REPETITION": 304.8}},
		"ipf_valid-glucose-continua-wan.hl7v2":  {"AA", "acme-monitor-1", map[string]float64{"acme-monitor-1:2339-0": 37.5}},
		"ipf_valid-oximeter-continua-wan.hl7v2": {"AA", "acme-monitor-1", map[string]float64{"acme-monitor-1:59408-5": 80.5}},
		"ipf_valid-pcd01-MaximumRequest2.hl7":   {"AA", "acme-monitor-1", map[string]float64{"acme-monitor-1:8480-6": 140, "acme-monitor-1:8478-0": 100}},
		"ipf_valid-pcd01-request.hl7v2":         {"AA", "acme-monitor-1", map[string]float64{"acme-monitor-1:8480-6": 120, "acme-monitor-1:8462-4": 80, "acme-monitor-1:8478-0": 100}},
		"ipf_valid-pcd01-request2.hl7v2": {"AA", "icu3-gateway", map[string]float64{"icu3-gateway:8867-4": 60, "icu3-gateway:MDC_ECG_V_P_C_CNT": 0,
			"icu3-gateway:76215-3": 120, "icu3-gateway:76213-8": 80, "icu3-gateway:76214-6": 92,
			"icu3-gateway:8440-0": 25, "icu3-gateway:8385-7": 10, "icu3-gateway:8414-5": 14}},
		"ipf_valid-scale-continua-wan.hl7v2":       {"AA", "acme-monitor-1", map[string]float64{"acme-monitor-1:29463-7": 80, "acme-monitor-1:8302-2": 180, "acme-monitor-1:39156-5": 24.7}},
		"ipf_valid-thermometer-continua-wan.hl7v2": {"AA", "acme-monitor-1", map[string]float64{"acme-monitor-1:8310-5": 37}},
	}
	sink := &recordingSink{}
	h := start(t, sink, nil)
	c := dial(t, h.addr)
	aa, ae := 0, 0
	for _, f := range files {
		name := filepath.Base(f)
		w, ok := want[name]
		if !ok {
			t.Errorf("%s: new reference file, add its expectation", name)
			continue
		}
		before := len(sink.all())
		code, errText, segs := c.roundTrip(readData(t, name))
		if code != w.ack {
			t.Errorf("%s: ACK %s (%s), want %s", name, code, errText, w.ack)
			continue
		}
		if segs["MSA"][2] == "" {
			t.Errorf("%s: MSA-2 does not echo the control id", name)
		}
		got := sink.all()[before:]
		if w.ack != "AA" {
			ae++
			if len(got) != 0 || !strings.Contains(errText, "no reading the gateway can forward") {
				t.Errorf("%s: AE with %d packs and reason %q", name, len(got), errText)
			}
			continue
		}
		aa++
		if len(got) != 1 {
			t.Fatalf("%s: %d packs, want 1", name, len(got))
		}
		// MaximumRequest2 flags its systolic pressure QUES in OBX-8.
		class := gateway.Spot
		if strings.Contains(name, "MaximumRequest2") {
			class = gateway.Alarm
		}
		if got[0].device != w.device || got[0].class != class {
			t.Errorf("%s: pack for %s class %s", name, got[0].device, got[0].class)
		}
		v := values(got[0].pack)
		if len(v) != len(w.values) || len(got[0].pack) != len(w.values) {
			t.Errorf("%s: pack %v (%d records), want %v", name, v, len(got[0].pack), w.values)
		}
		for k, x := range w.values {
			if d := v[k] - x; d > 1e-9 || d < -1e-9 {
				t.Errorf("%s: %s = %v, want %v", name, k, v[k], x)
			}
		}
	}
	if n := mllpMessages(t, h, "AA"); int(n) != aa {
		t.Errorf("AA counter %v, want %d", n, aa)
	}
	if n := mllpMessages(t, h, "AE"); int(n) != ae {
		t.Errorf("AE counter %v, want %d", n, ae)
	}
}

// mllpMessages finds the messages counter for one ACK code in the test registry.
func mllpMessages(t *testing.T, h *harness, code string) float64 {
	t.Helper()
	mfs, err := h.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "iomt_gateway_mllp_messages_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			if m.GetLabel()[0].GetValue() == code {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

func TestConcurrentConnections(t *testing.T) {
	msg := readData(t, "ipf_valid-pcd01-request.hl7v2")
	sink := &recordingSink{}
	h := start(t, sink, nil)
	const conns, each = 4, 5
	var wg sync.WaitGroup
	for range conns {
		c := dial(t, h.addr)
		wg.Go(func() {
			for range each {
				c.send(msg)
				if code := c.ack()["MSA"][1]; code != "AA" {
					t.Errorf("ACK %s", code)
				}
			}
		})
	}
	wg.Wait()
	if n := len(sink.all()); n != conns*each {
		t.Errorf("%d packs, want %d", n, conns*each)
	}
}

func TestRefusals(t *testing.T) {
	sink := &recordingSink{}
	h := start(t, sink, func(c *mllp.Config) { c.MaxMessageSize = 4096 })
	c := dial(t, h.addr)

	// The negative reference message: AE with the HL7 error and its location.
	code, errText, segs := c.roundTrip(readData(t, "ipf_invalid-glucose-continua-wan.hl7v2"))
	if code != "AE" || !strings.HasPrefix(errText, "101^") || segs["ERR"][2] != "OBX^8^2^1" {
		t.Errorf("invalid message: %s %q %v", code, errText, segs["ERR"])
	}
	// Not HL7 at all: AR.
	if code, errText, _ := c.roundTrip([]byte("GET / HTTP/1.1")); code != "AR" {
		t.Errorf("not HL7: %s %q", code, errText)
	}
	// Another message type: AR.
	adt := bytes.Replace(readData(t, "ipf_valid-pcd01-request.hl7v2"), []byte("ORU^R01^ORU_R01"), []byte("ADT^A01^ADT_A01"), 1)
	if code, errText, _ := c.roundTrip(adt); code != "AR" || !strings.HasPrefix(errText, "200^") {
		t.Errorf("ADT: %s %q", code, errText)
	}
	// An unknown monitor: AE naming what was looked up.
	unknown := bytes.ReplaceAll(readData(t, "ipf_valid-pcd01-request.hl7v2"), []byte("0123456789ABCDEF"), []byte("FEDCBA9876543210"))
	code, errText, _ = c.roundTrip(unknown)
	if code != "AE" || !strings.HasPrefix(errText, "204^") || !strings.Contains(errText, `equipment "FEDCBA9876543210"`) || !strings.Contains(errText, `patient "789567"`) {
		t.Errorf("unknown monitor: %s %q", code, errText)
	}
	// Nothing forwardable: the fitness message without its speed leaves only session
	// attributes (durations), so AE says so and nothing is stored.
	var kept [][]byte
	for _, seg := range bytes.Split(readData(t, "ipf_valid-fitness-and-activity-continua-wan.hl7v2"), []byte("\r")) {
		if !bytes.Contains(seg, []byte("MDC_HF_SPEED")) {
			kept = append(kept, seg)
		}
	}
	code, errText, _ = c.roundTrip(bytes.Join(kept, []byte("\r")))
	if code != "AE" || !strings.Contains(errText, "no reading the gateway can forward") {
		t.Errorf("attributes only: %s %q", code, errText)
	}
	// Too large: AR, and the connection goes on.
	big := append(readData(t, "ipf_valid-pcd01-request.hl7v2"), bytes.Repeat([]byte("NTE|1||padding\r"), 400)...)
	if code, errText, _ := c.roundTrip(big); code != "AR" || !strings.Contains(errText, "longer than 4096 bytes") {
		t.Errorf("too large: %s %q", code, errText)
	}
	// Garbage between frames is skipped, the next frame is answered.
	c.sendRaw([]byte("junk"))
	if code, errText, _ := c.roundTrip(readData(t, "ipf_valid-pcd01-request.hl7v2")); code != "AA" {
		t.Errorf("after garbage: %s %q", code, errText)
	}
	if n := len(sink.all()); n != 1 {
		t.Errorf("%d packs accepted, want 1", n)
	}
}

func TestSinkFailureIsNotAcknowledged(t *testing.T) {
	sink := &recordingSink{err: errors.New("spool: disk full")}
	h := start(t, sink, nil)
	c := dial(t, h.addr)
	code, errText, _ := c.roundTrip(readData(t, "ipf_valid-pcd01-request.hl7v2"))
	if code != "AE" || !strings.HasPrefix(errText, "207^") || !strings.Contains(errText, "disk full") {
		t.Errorf("sink failure: %s %q", code, errText)
	}
}

func TestAbnormalFlagIsAlarm(t *testing.T) {
	sink := &recordingSink{}
	h := start(t, sink, nil)
	c := dial(t, h.addr)
	msg := bytes.Replace(readData(t, "ipf_valid-pcd01-request.hl7v2"), []byte("|120|266016^MDC_DIM_MMHG^MDC|||"), []byte("|120|266016^MDC_DIM_MMHG^MDC||H|"), 1)
	if code, errText, _ := c.roundTrip(msg); code != "AA" {
		t.Fatalf("%s %q", code, errText)
	}
	if got := sink.all(); len(got) != 1 || got[0].class != gateway.Alarm {
		t.Errorf("got %+v, want one alarm pack", got)
	}
}

// A bedside or personal oximeter that reports its sensor status (MDC_PULS_OXIM_DEV_STATUS, as
// the Continua WAN interface writes BITS) has it forwarded with the SpO2, so the alarm engine
// can tell a probe off from a desaturation.
func TestOximeterStatusForwarded(t *testing.T) {
	sink := &recordingSink{}
	h := start(t, sink, nil)
	c := dial(t, h.addr)
	spo2 := []byte("OBX|2|NM|150456^MDC_PULS_OXIM_SAT_O2^MDC|1.0.0.1|80.5|")
	msg := readData(t, "ipf_valid-oximeter-continua-wan.hl7v2")
	if !bytes.Contains(msg, spo2) {
		t.Fatal("reference oximeter message changed")
	}
	status := "OBX|4|CWE|150604^MDC_PULS_OXIM_DEV_STATUS^MDC|1.0.0.3|1^sensor-off(4)||||||R|||20090715070707+0000\r"
	msg = bytes.Replace(msg, spo2, append([]byte(status), spo2...), 1)
	if code, errText, _ := c.roundTrip(msg); code != "AA" {
		t.Fatalf("%s %q", code, errText)
	}
	got := sink.all()
	if len(got) != 1 {
		t.Fatalf("%d packs, want 1", len(got))
	}
	v := values(got[0].pack)
	if v["acme-monitor-1:59408-5"] != 80.5 || v["acme-monitor-1:"+codes.OximeterStatus] != codes.OxSensorOff {
		t.Errorf("pack values %v, want SpO2 80.5 and %s %d", v, codes.OximeterStatus, codes.OxSensorOff)
	}
}

// TestShutdown: a message being stored when shutdown begins is still stored and acknowledged;
// idle connections are closed and Serve returns.
func TestShutdown(t *testing.T) {
	sink := &recordingSink{wait: make(chan struct{}), entered: make(chan struct{})}
	h := start(t, sink, nil)
	busy, idle := dial(t, h.addr), dial(t, h.addr)
	busy.send(readData(t, "ipf_valid-pcd01-request.hl7v2"))
	// Stop only once the message is in the sink: a fixed sleep could stop before it got there.
	select {
	case <-sink.entered:
	case <-time.After(10 * time.Second):
		close(sink.wait)
		t.Fatal("the message did not reach the sink")
	}
	h.stop()
	close(sink.wait)
	if code := busy.ack()["MSA"][1]; code != "AA" {
		t.Errorf("in-flight message: ACK %s", code)
	}
	select {
	case err := <-h.done:
		if err != nil {
			t.Errorf("Serve: %v", err)
		}
		h.done <- nil // for the cleanup
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return")
	}
	_ = idle.c.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := idle.br.ReadByte(); err == nil {
		t.Error("idle connection still open")
	}
	if _, err := net.DialTimeout("tcp", h.addr, time.Second); err == nil {
		t.Error("still accepting after shutdown")
	}
}
