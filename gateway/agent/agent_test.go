package agent_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/iomt/iomt/gateway/agent"
	"github.com/iomt/iomt/gateway/agent/agenttest"
	"github.com/iomt/iomt/gateway/uplink/uplinktest"
	"github.com/iomt/iomt/wire/senml"
)

// TestGatewayChild is the gateway process the outage test starts and kills.
func TestGatewayChild(t *testing.T) { agenttest.RunChild(t) }

func logger() *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	return slog.New(slog.DiscardHandler)
}

func TestParseConfig(t *testing.T) {
	full := `
data_dir: /var/lib/iomt-gateway
spool_max_bytes: 1048576
identity_file: identities.yaml
mllp: {listen: ":2575", read_timeout: 2m, application: GW, facility: ICU3}
uplink:
  url: mqtts://iomt.example.org:8883
  ca_file: ca.pem
  username: gw-icu3
  password_file: /run/secrets/gw
  tenant: default
  backoff_min: 1s
  backoff_max: 1m
  skew_threshold: 2s
http: {listen: "127.0.0.1:9110"}
`
	c, err := agent.ParseConfig([]byte(full), "/etc/iomt")
	if err != nil {
		t.Fatal(err)
	}
	if c.IdentityFile != "/etc/iomt/identities.yaml" || c.Uplink.CAFile != "/etc/iomt/ca.pem" || c.Uplink.PasswordFile != "/run/secrets/gw" {
		t.Errorf("paths not resolved against the file's directory: %+v", c)
	}
	if c.MLLP.ReadTimeout != 2*time.Minute || c.Uplink.BackoffMax != time.Minute || c.SpoolMaxBytes != 1<<20 {
		t.Errorf("values: %+v", c)
	}
	for _, tc := range []struct{ yaml, want string }{
		{"uplink: {url: mqtt://h:1}", "data_dir is required"},
		{"data_dir: d", "uplink.url is required"},
		{"data_dir: d\nuplink: {url: mqtt://h:1}\nmllp: {listen: ':0'}", "identity_file is required"},
		{"data_dir: d\nuplink: {url: mqtt://h:1, password: x, password_file: f}", "not both"},
		{"data_dir: d\nuplink: {url: mqtt://h:1, cert_file: c}", "cert_file and key_file"},
		{"data_dir: d\nuplink: {url: mqtt://h:1, tenant: a/b}", "must not contain"},
		{"data_dir: d\nuplink: {url: mqtt://h:1}\nspool_size: 3", "field spool_size not found"},
		{"data_dir: d\nuplink: {url: mqtt://h:1, backoff_min: soon}", "soon"},
		{"data_dir: d\nuplink: {url: mqtt://h:1}\nedge: {spo2_below: 85}", "field spo2_below not found"},
		{"data_dir: d\nuplink: {url: mqtt://h:1}\nedge: {enabled: true, webhook_url: 'ftp://x'}", "http:// or https://"},
		{"data_dir: d\nuplink: {url: mqtt://h:1}\nlocal: {http: true}", "identity_file is required"},
		{"data_dir: d\nuplink: {url: mqtt://h:1}\nble: {enabled: true}", "ble.enabled needs http.listen"},
		{"data_dir: d\nuplink: {url: mqtt://h:1}\nedge: {enabled: true, webhook_url: 'http://pager.example.org/alert'}",
			"is plain http to another machine: alerts with patient readings would cross the network in clear"},
		{"data_dir: d\nuplink: {url: mqtt://h:1}\nedge: {enabled: true, webhook_url: 'http://'}", "not a URL with a host"},
	} {
		_, err := agent.ParseConfig([]byte(tc.yaml), "")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: err %v, want %q", tc.yaml, err, tc.want)
		}
	}
}

// setup writes an identity file and a configuration for a gateway uplinked to mq.
func setup(t testing.TB, pki *uplinktest.PKI, mq *uplinktest.Mosquitto, devices map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "identities.yaml"), []byte(agenttest.Identities(devices)), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf(`data_dir: data
identity_file: identities.yaml
mllp: {listen: "127.0.0.1:0"}
http: {listen: "127.0.0.1:0"}
uplink:
  url: mqtts://%s
  ca_file: %s
  cert_file: %s
  key_file: %s
  tenant: ward7
  backoff_min: 100ms
  backoff_max: 1s
`, mq.TLSAddr, pki.CAFile, pki.ClientCert, pki.ClientKey)
	path := filepath.Join(dir, "gateway.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func get(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %s", url, resp.StatusCode, b)
	}
	return string(b)
}

// TestMLLPThroughMosquitto: a monitor's ORU^R01 is acknowledged by the gateway and reaches a
// subscriber of a real broker as SenML with LOINC codes and UCUM units.
func TestMLLPThroughMosquitto(t *testing.T) {
	pki := uplinktest.NewPKI(t, "gw-icu3")
	mq := uplinktest.StartMosquitto(t, pki)
	sub := uplinktest.Subscribe(t, mq.PlainAddr, "iomt/v1/ward7/devices/+/senml")
	path := setup(t, pki, mq, map[string]string{"bed-1": "00000000000000B1"})
	// A BLE heart-rate strap too, through the bridge endpoint.
	appendFile(t, filepath.Join(filepath.Dir(path), "identities.yaml"), "  - device: strap-1\n    ble: [\"C4:7C:8D:6A:12:34\"]\n")
	appendFile(t, path, "ble: {enabled: true}\n")
	cfg, err := agent.LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	a, err := agent.New(cfg, logger())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()

	at := time.Now().Add(-time.Minute).Truncate(time.Millisecond)
	code, text, err := agenttest.Send(a.MLLPAddr(), agenttest.ORU("00000000000000B1", "C1", at, 72, 97))
	if err != nil || code != "AA" {
		t.Fatalf("ACK %s %q, %v; want AA", code, text, err)
	}
	code, text, err = agenttest.Send(a.MLLPAddr(), agenttest.ORU("FFFFFFFFFFFFFFFF", "C2", at, 72, 97))
	if err != nil || code != "AE" || !strings.Contains(text, "FFFFFFFFFFFFFFFF") {
		t.Fatalf("unknown monitor: ACK %s %q, %v; want AE naming the equipment", code, text, err)
	}
	msgs := sub.WaitFor(t, 10*time.Second, "the pack", func(ms []uplinktest.Message) bool { return len(ms) >= 1 })
	m := msgs[0]
	if m.Topic != "iomt/v1/ward7/devices/bed-1/senml" || m.Seq != 1 || m.Class != "spot" {
		t.Fatalf("topic %s seq %d class %s", m.Topic, m.Seq, m.Class)
	}
	p, err := senml.Decode(m.Payload)
	if err != nil {
		t.Fatal(err)
	}
	rs, err := p.Resolve(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, r := range rs {
		got[r.Name] = fmt.Sprintf("%g %s %s", *r.Value, r.Unit, r.At().Format(time.RFC3339Nano))
	}
	ts := at.UTC().Format(time.RFC3339Nano)
	want := map[string]string{"bed-1:8867-4": "72 /min " + ts, "bed-1:59408-5": "97 % " + ts}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("readings %v, want %v", got, want)
	}

	resp, err := http.Post("http://"+a.HTTPAddr()+"/ble/v1/notifications", "application/json",
		strings.NewReader(`{"address":"C4:7C:8D:6A:12:34","characteristic":"2A37","payload_hex":"0648"}`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("BLE notification: %d %s", resp.StatusCode, body)
	}
	msgs = sub.WaitFor(t, 10*time.Second, "the BLE pack", func(ms []uplinktest.Message) bool { return len(ms) >= 2 })
	if m := msgs[1]; m.Topic != "iomt/v1/ward7/devices/strap-1/senml" || !strings.Contains(string(m.Payload), `"8867-4"`) {
		t.Fatalf("BLE pack: %s %s", m.Topic, m.Payload)
	}

	// The broker forwards a pack to the subscriber before the gateway has
	// its PUBACK and empties the spool, so the metrics settle a moment later.
	wantLines := []string{"iomt_uplink_connected 1", `iomt_uplink_published_total{class="spot"} 2`, "iomt_spool_depth 0", "iomt_spool_oldest_age_seconds 0"}
	var lacking []string
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		metrics := get(t, "http://"+a.HTTPAddr()+"/metrics")
		lacking = lacking[:0]
		for _, line := range wantLines {
			if !strings.Contains(metrics, line+"\n") {
				lacking = append(lacking, line)
			}
		}
		if len(lacking) == 0 || time.Now().After(deadline) {
			break
		}
	}
	for _, line := range lacking {
		t.Errorf("/metrics lacks %q", line)
	}
	var h agent.Health
	if err := json.Unmarshal([]byte(get(t, "http://"+a.HTTPAddr()+"/healthz")), &h); err != nil || h.Status != "ok" || !h.UplinkUp {
		t.Errorf("/healthz: %+v %v", h, err)
	}
}

func outage(t *testing.T, def time.Duration) time.Duration {
	if v := os.Getenv("IOMT_OUTAGE"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("IOMT_OUTAGE: %v", err)
		}
		return d
	}
	return def
}

// TestOutageMosquitto: monitors keep sending while the broker is down; the gateway process is
// killed with SIGKILL in the middle of the outage and started again; once the broker is back,
// the subscriber holds every acknowledged reading, in order per device, and nothing twice
// except the broker's own replays (same seq) and what a monitor itself sent twice.
// IOMT_OUTAGE sets the outage (default 10s; the iomt serve test in node/ runs a minute).
func TestOutageMosquitto(t *testing.T) {
	pki := uplinktest.NewPKI(t, "gw-icu3")
	mq := uplinktest.StartMosquitto(t, pki)
	sub := uplinktest.Subscribe(t, mq.PlainAddr, "iomt/v1/ward7/devices/+/senml")
	euis := map[string]string{"bed-1": "00000000000000B1", "bed-2": "00000000000000B2", "bed-3": "00000000000000B3"}
	config := setup(t, pki, mq, euis)
	logPath := filepath.Join(t.TempDir(), "gateway.log")
	defer func() {
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("gateway log:\n%s", b)
			t.Logf("mosquitto log:\n%s", mq.Log())
		}
	}()
	child := agenttest.StartChild(t, "^TestGatewayChild$", config, logPath)
	f := &agenttest.Fleet{Devices: []string{"bed-1", "bed-2", "bed-3"}, EUIs: euis, Period: 20 * time.Millisecond,
		Base: time.Now().Add(-24 * time.Hour).Truncate(time.Second)}
	f.SetAddr(child.MLLPAddr)
	f.Start()

	down := outage(t, 10*time.Second)
	time.Sleep(time.Second)
	mq.Stop(t)
	t.Logf("broker stopped for %v", down)
	time.Sleep(down / 2)
	child.Kill()
	t.Log("gateway killed with SIGKILL")
	child = agenttest.StartChild(t, "^TestGatewayChild$", config, logPath)
	f.SetAddr(child.MLLPAddr)
	time.Sleep(down / 2)
	mq.Start(t)
	t.Log("broker started")
	time.Sleep(time.Second)
	acked := f.Halt()

	want := 0
	for _, is := range acked {
		want += len(is)
	}
	t.Logf("%d messages acknowledged to monitors", want)
	// Each message carries two readings at one time; index the arrivals by (device, time).
	type arrival struct{ seq uint64 }
	seen := func(ms []uplinktest.Message) map[string]map[int64][]arrival {
		out := map[string]map[int64][]arrival{}
		for _, m := range ms {
			parts := strings.Split(m.Topic, "/")
			dev := parts[len(parts)-2]
			p, err := senml.Decode(m.Payload)
			if err != nil {
				t.Fatalf("%s seq %d: %v\n%q", dev, m.Seq, err, m.Payload)
			}
			rs, err := p.Resolve(time.Now())
			if err != nil || len(rs) != 2 {
				t.Fatalf("%s seq %d: %d readings, %v", dev, m.Seq, len(rs), err)
			}
			if out[dev] == nil {
				out[dev] = map[int64][]arrival{}
			}
			ms := rs[0].At().UnixMilli()
			out[dev][ms] = append(out[dev][ms], arrival{m.Seq})
		}
		return out
	}
	msgs := sub.WaitFor(t, 60*time.Second, "every acknowledged reading", func(ms []uplinktest.Message) bool {
		s := seen(ms)
		for dev, is := range acked {
			for _, i := range is {
				if len(s[dev][f.At(i).UnixMilli()]) == 0 {
					return false
				}
			}
		}
		return true
	})
	s := seen(msgs)
	for dev, byTime := range s {
		for ms, arr := range byTime {
			seqs := map[uint64]bool{}
			for _, a := range arr {
				seqs[a.seq] = true
			}
			i := int(time.UnixMilli(ms).Sub(f.Base) / time.Second)
			if len(seqs) > 1 && !f.Resent(dev, i) {
				t.Errorf("%s message %d arrived under %d seqs but the monitor sent it once", dev, i, len(seqs))
			}
		}
	}
	// Order: after dropping replays (a seq already seen), each device's readings arrive in
	// the order the monitor took them.
	last := map[string]uint64{}
	lastTime := map[string]int64{}
	for _, m := range msgs {
		parts := strings.Split(m.Topic, "/")
		dev := parts[len(parts)-2]
		if m.Seq <= last[dev] {
			continue
		}
		last[dev] = m.Seq
		p, _ := senml.Decode(m.Payload)
		rs, _ := p.Resolve(time.Now())
		at := rs[0].At().UnixMilli()
		if at < lastTime[dev] {
			t.Errorf("%s: reading at %v (seq %d) after one at %v", dev, time.UnixMilli(at), m.Seq, time.UnixMilli(lastTime[dev]))
		}
		lastTime[dev] = at
	}
	keys := make([]string, 0, len(s))
	for dev := range s {
		keys = append(keys, dev)
	}
	slices.Sort(keys)
	t.Logf("devices %v, %d MQTT messages received", keys, len(msgs))
	if err := child.Stop(); err != nil {
		t.Error(err)
	}
}

func appendFile(t *testing.T, path, text string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(text); err != nil {
		t.Fatal(err)
	}
}

// TestEdgeAndLocalWhileUplinkDown: with no broker reachable, a local SenML device posts a low
// SpO2 over HTTP; the gateway keeps it in the spool, reports itself degraded, and the edge rules
// alert the local webhook because the uplink has been down longer than the threshold.
func TestEdgeAndLocalWhileUplinkDown(t *testing.T) {
	alerts := make(chan map[string]any, 10)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var m map[string]any
		_ = json.NewDecoder(r.Body).Decode(&m)
		alerts <- m
	}))
	defer hook.Close()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "ids.yaml"), []byte("devices:\n  - device: oxi-7\n    local: [\"sensor-7\"]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := agent.ParseConfig([]byte(fmt.Sprintf(`data_dir: data
identity_file: ids.yaml
http: {listen: "127.0.0.1:0"}
local: {http: true, coap_listen: "127.0.0.1:0"}
edge: {enabled: true, threshold: 200ms, webhook_url: %q, name: ward-3}
uplink: {url: "mqtt://127.0.0.1:%d", backoff_min: 50ms, backoff_max: 100ms}
`, hook.URL, uplinktest.FreePort(t))), dir)
	if err != nil {
		t.Fatal(err)
	}
	a, err := agent.New(cfg, logger())
	if err != nil {
		t.Fatal(err)
	}
	if a.CoAPAddr() == "" {
		t.Error("no CoAP listener")
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	time.Sleep(300 * time.Millisecond) // longer than the threshold
	resp, err := http.Post("http://"+a.HTTPAddr()+"/senml/sensor-7", "application/senml+json",
		strings.NewReader(`[{"n":"spo2","u":"%","v":80}]`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		t.Fatalf("POST /senml: %d %s", resp.StatusCode, body)
	}
	select {
	case al := <-alerts:
		if al["event"] != "alert" || al["device"] != "oxi-7" || al["code"] != "59408-5" || al["gateway"] != "ward-3" {
			t.Fatalf("alert %v", al)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no local alert while the uplink is down")
	}
	var h agent.Health
	if err := json.Unmarshal([]byte(get(t, "http://"+a.HTTPAddr()+"/healthz")), &h); err != nil {
		t.Fatal(err)
	}
	if h.Status != "degraded" || h.UplinkUp || h.DownSince.IsZero() || h.SpoolDepth != 1 {
		t.Fatalf("/healthz %+v: want degraded with the pack spooled", h)
	}
}

// A plaintext uplink to another machine is refused at start with the reason and the way
// out. Allowed explicitly, or on loopback, New gets past the uplink (and here stops at an
// HTTP address in use, which cleans up without connecting anywhere); an http:// edge webhook
// on loopback, or allowed, passes too.
func TestPlaintextRefusals(t *testing.T) {
	cfg, err := agent.ParseConfig([]byte("data_dir: "+t.TempDir()+"\nuplink: {url: 'mqtt://cloud.example.org:1883'}\n"), "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := agent.New(cfg, logger()); err == nil {
		t.Fatal("a plaintext uplink to another machine was accepted")
	} else if !strings.Contains(err.Error(), "plaintext MQTT to another machine") || !strings.Contains(err.Error(), "--allow-plaintext-uplink") {
		t.Errorf("refusal: %v", err)
	}
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	for _, doc := range []string{
		"uplink: {url: 'mqtt://cloud.example.org:1883', allow_plaintext: true}",
		"uplink: {url: 'mqtt://127.0.0.1:1883'}\nedge: {enabled: true, webhook_url: 'http://127.0.0.1:9/alert'}",
		"uplink: {url: 'mqtts://cloud.example.org:8883'}\nedge: {enabled: true, webhook_url: 'http://pager.example.org/a', allow_http_webhook: true}",
	} {
		cfg, err := agent.ParseConfig([]byte("data_dir: "+t.TempDir()+"\nhttp: {listen: '"+taken.Addr().String()+"'}\n"+doc), "")
		if err != nil {
			t.Errorf("%s: %v", doc, err)
			continue
		}
		if _, err := agent.New(cfg, logger()); err == nil || !strings.Contains(err.Error(), "http.listen") {
			t.Errorf("%s: %v, want it past the uplink and stopped at http.listen", doc, err)
		}
	}
}
