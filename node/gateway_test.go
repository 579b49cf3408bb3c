package node_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/iomt/iomt"
	"github.com/iomt/iomt/gateway"
	"github.com/iomt/iomt/gateway/agent/agenttest"
	"github.com/iomt/iomt/gateway/spool"
	"github.com/iomt/iomt/gateway/uplink"
	"github.com/iomt/iomt/node"
	"github.com/iomt/iomt/wire/senml"
)

// TestGatewayChild is the gateway process TestGatewayOutage starts and kills.
func TestGatewayChild(t *testing.T) { agenttest.RunChild(t) }

// gatewayDevice registers a device of kind gateway (no patient) and returns it.
func (e *env) gatewayDevice() device {
	e.t.Helper()
	var gw device
	if c := e.call("POST", "/api/v1/devices", adminToken, map[string]string{"kind": "gateway"}, &gw); c != 201 {
		e.t.Fatalf("create gateway device: %d", c)
	}
	return gw
}

// behind registers devices behind gateway gw: it may publish for them.
func (e *env) behind(gw device, devs ...device) {
	e.t.Helper()
	for _, d := range devs {
		if c := e.call("PATCH", "/api/v1/devices/"+d.ID, adminToken, map[string]string{"gateway": gw.ID}, nil); c != 200 {
			e.t.Fatalf("register device %s behind gateway %s: %d", d.ID, gw.ID, c)
		}
	}
}

// TestGatewayPublishesForItsTenant: a gateway device logs in with its own credentials, may
// publish to the data topic of the devices registered behind it (ingested as that device's),
// and is refused, with a logged reason, for a device not behind it, an unknown device, another
// gateway or another tenant. The CONNACK carries the server's clock.
func TestGatewayPublishesForItsTenant(t *testing.T) {
	e := start(t)
	patient, mon := e.ward()
	gw := e.gatewayDevice()
	other := e.gatewayDevice()
	e.behind(gw, mon)
	_, loose := e.ward()
	foreign := iomt.Device{ID: "foreign-dev", Tenant: "other-hospital", Kind: "pulse-oximeter", Patient: patient, CreatedAt: time.Now().UTC()}
	if err := e.n.Store().CreateDevice(context.Background(), foreign); err != nil {
		t.Fatal(err)
	}

	c, ca, err := connect5(t, e.n.MQTTAddr(), gw.MQTT.Username, gw.MQTT.Password)
	if err != nil {
		t.Fatalf("gateway connect: %v", err)
	}
	if ca.Properties == nil {
		t.Fatal("CONNACK without properties")
	}
	st := ca.Properties.User.Get(uplink.ServerTimeProperty)
	ms, err := strconv.ParseInt(st, 10, 64)
	if err != nil || time.Since(time.UnixMilli(ms)).Abs() > 5*time.Second {
		t.Fatalf("CONNACK server-time %q (%v): want the server's clock in Unix ms", st, err)
	}

	now := time.Now().Add(-time.Minute).Truncate(time.Millisecond)
	v := 71.0
	pack, _ := senml.EncodeJSON(senml.Pack{{BaseName: mon.ID + ":", Name: "8867-4", Unit: "/min", Value: &v, Time: float64(now.UnixMilli()) / 1000}})
	if r := publish5(t, c, mon.MQTT.Topic, pack); r.ReasonCode != 0 {
		t.Fatalf("gateway publish for its device: 0x%02x %q", r.ReasonCode, reason(r))
	}
	obs, err := e.n.Store().Observations(context.Background(), iomt.ObservationQuery{Patient: patient, Code: "8867-4", From: now.Add(-time.Second), To: now.Add(time.Second)})
	if err != nil || len(obs) != 1 || obs[0].Device != mon.ID || obs[0].Value != 71 {
		t.Fatalf("stored %+v, %v; want one reading of device %s", obs, err, mon.ID)
	}
	for name, topic := range map[string]string{
		"device not behind it":             loose.MQTT.Topic,
		"unknown device":                   "iomt/v1/default/devices/no-such-device/senml",
		"another gateway":                  other.MQTT.Topic,
		"another tenant":                   "iomt/v1/other-hospital/devices/foreign-dev/senml",
		"other tenant's device under ours": "iomt/v1/default/devices/foreign-dev/senml",
		"not a data topic":                 "iomt/v1/default/devices/" + mon.ID + "/cmd",
	} {
		if r := publish5(t, c, topic, pack); r.ReasonCode != 0x87 {
			t.Errorf("%s (%s): reason code 0x%02x, want 0x87 not authorized", name, topic, r.ReasonCode)
		}
	}
	// An ordinary device still may not publish for another.
	d, _, err := connect5(t, e.n.MQTTAddr(), mon.MQTT.Username, mon.MQTT.Password)
	if err != nil {
		t.Fatal(err)
	}
	if r := publish5(t, d, gw.MQTT.Topic, pack); r.ReasonCode != 0x87 {
		t.Errorf("device publishing to the gateway's topic: 0x%02x, want 0x87", r.ReasonCode)
	}
}

// TestUplinkCorrectsGatewayClock: a gateway whose clock is an hour fast dates readings an hour
// ahead; the uplink learns the offset from iomt serve's CONNACK and the server stores them at
// the right time (without the correction ingest would refuse them as from the future).
func TestUplinkCorrectsGatewayClock(t *testing.T) {
	e := start(t)
	patient, mon := e.ward()
	gw := e.gatewayDevice()
	e.behind(gw, mon)
	fast := func() time.Time { return time.Now().Add(time.Hour) }
	sp, err := spool.Open(t.TempDir(), spool.Options{NoSync: true, Now: fast, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	taken := fast().Add(-10 * time.Second).Truncate(time.Millisecond) // the gateway's view
	v := 64.0
	pack, _ := senml.EncodeJSON(senml.Pack{{BaseName: mon.ID + ":", Name: "8867-4", Unit: "/min", Value: &v, Time: float64(taken.UnixMilli()) / 1000}})
	if _, err := sp.Put(context.Background(), spool.Entry{Device: mon.ID, Class: gateway.Spot, Payload: pack}); err != nil {
		t.Fatal(err)
	}
	u, err := uplink.New(uplink.Config{Spool: sp, URL: "mqtt://" + e.n.MQTTAddr(), Username: gw.MQTT.Username,
		Password: []byte(gw.MQTT.Password), Now: fast})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- u.Run(ctx) }()
	defer func() { cancel(); <-done }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if d, _, _ := sp.Stats(); d == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("entry not delivered")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if off := u.ClockOffset(); (off + time.Hour).Abs() > 5*time.Second {
		t.Fatalf("estimated offset %v, want about -1h", off)
	}
	obs, err := e.n.Store().Observations(context.Background(), iomt.ObservationQuery{Patient: patient, Code: "8867-4",
		From: time.Now().Add(-time.Minute), To: time.Now().Add(time.Minute)})
	if err != nil || len(obs) != 1 {
		t.Fatalf("stored %+v, %v; want the reading near server time", obs, err)
	}
	if skew := obs[0].Time.Sub(taken.Add(-time.Hour)).Abs(); skew > 2*time.Second {
		t.Fatalf("stored at %v, want about %v", obs[0].Time, taken.Add(-time.Hour))
	}
}

// TestGatewayOutage is the gateway's acceptance test against iomt serve: bedside monitors
// keep sending HL7 over MLLP to a gateway process while the server is down for a minute
// (IOMT_OUTAGE changes it); the gateway is killed with SIGKILL in the middle of the outage
// and started again; once the server is back, its store holds every reading acknowledged to a
// monitor, exactly once, under LOINC codes and UCUM units, in order per device.
func TestGatewayOutage(t *testing.T) {
	if testing.Short() {
		t.Skip("a minute-long outage; skipped with -short")
	}
	if scaleOut {
		t.Skip("run once, on the embedded backends")
	}
	down := time.Minute
	if v := os.Getenv("IOMT_OUTAGE"); v != "" {
		var err error
		if down, err = time.ParseDuration(v); err != nil {
			t.Fatalf("IOMT_OUTAGE: %v", err)
		}
	}
	dataDir := t.TempDir()
	cfg := node.Config{DataDir: dataDir, HTTPAddr: "127.0.0.1:0", MQTTAddr: "127.0.0.1:0", People: node.PeopleConfig{BootstrapToken: adminToken},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	n, err := node.Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if n != nil {
			n.Close()
		}
	}()
	e := &env{t: t, n: n, base: "http://" + n.HTTPAddr()}
	cfg.MQTTAddr = n.MQTTAddr() // the server comes back where the gateway looks for it

	devices := []string{"bed-1", "bed-2", "bed-3"}
	euis := map[string]string{}
	ids := map[string]string{} // our name → platform device id
	patients := map[string]string{}
	for i, name := range devices {
		p, d := e.ward()
		euis[d.ID] = fmt.Sprintf("00000000000000C%d", i)
		ids[name], patients[d.ID] = d.ID, p
	}
	gw := e.gatewayDevice()
	for _, id := range ids {
		e.behind(gw, device{ID: id})
	}

	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "identities.yaml"), []byte(agenttest.Identities(euis)), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "password"), []byte(gw.MQTT.Password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	config := filepath.Join(dir, "gateway.yaml")
	if err := os.WriteFile(config, []byte(fmt.Sprintf(`data_dir: data
identity_file: identities.yaml
mllp: {listen: "127.0.0.1:0"}
uplink:
  url: mqtt://%s
  username: %s
  password_file: password
  backoff_min: 100ms
  backoff_max: 2s
`, cfg.MQTTAddr, gw.MQTT.Username)), 0o600); err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(dir, "gateway.log")
	defer func() {
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("gateway log:\n%s", b)
		}
	}()
	child := agenttest.StartChild(t, "^TestGatewayChild$", config, logPath)
	var devIDs []string
	for _, name := range devices {
		devIDs = append(devIDs, ids[name])
	}
	f := &agenttest.Fleet{Devices: devIDs, EUIs: euis, Period: 50 * time.Millisecond,
		Base: time.Now().Add(-6 * time.Hour).Truncate(time.Second)}
	f.SetAddr(child.MLLPAddr)
	f.Start()

	time.Sleep(2 * time.Second)
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	n = nil
	t.Logf("server stopped for %v", down)
	time.Sleep(down / 2)
	child.Kill()
	t.Log("gateway killed with SIGKILL")
	child = agenttest.StartChild(t, "^TestGatewayChild$", config, logPath)
	f.SetAddr(child.MLLPAddr)
	time.Sleep(down / 2)
	if n, err = node.Start(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	t.Log("server started")
	time.Sleep(2 * time.Second)
	acked := f.Halt()

	total := 0
	for _, is := range acked {
		total += len(is)
	}
	t.Logf("%d messages (%d readings) acknowledged to monitors", total, 2*total)
	// Wait until the gateway has delivered everything, then compare the store with what the
	// monitors were told is safe.
	query := func(dev, code string) []iomt.Observation {
		obs, err := n.Store().Observations(context.Background(), iomt.ObservationQuery{Patient: patients[dev], Code: code,
			From: f.Base.Add(-time.Second), To: time.Now()})
		if err != nil {
			t.Fatal(err)
		}
		return obs
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		missing := 0
		for dev, is := range acked {
			have := map[int64]bool{}
			for _, o := range query(dev, "8867-4") {
				have[o.Time.UnixMilli()] = true
			}
			for _, i := range is {
				if !have[f.At(i).UnixMilli()] {
					missing++
				}
			}
		}
		if missing == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d acknowledged messages still missing from the server after 60s", missing)
		}
		time.Sleep(200 * time.Millisecond)
	}
	for dev, is := range acked {
		for _, code := range []struct{ code, unit string }{{"8867-4", "/min"}, {"59408-5", "%"}} {
			obs := query(dev, code.code)
			seen := map[int64]int{}
			for k, o := range obs {
				if o.Unit != code.unit || o.Device != dev {
					t.Fatalf("%s %s: %+v", dev, code.code, o)
				}
				if k > 0 && !o.Time.After(obs[k-1].Time) {
					t.Fatalf("%s %s: reading at %v after %v: not in order, or twice", dev, code.code, o.Time, obs[k-1].Time)
				}
				seen[o.Time.UnixMilli()]++
			}
			for _, i := range is {
				if seen[f.At(i).UnixMilli()] != 1 {
					t.Fatalf("%s %s: acknowledged message %d stored %d times", dev, code.code, i, seen[f.At(i).UnixMilli()])
				}
			}
			// Readings the monitors were not told about (sent just before the kill) may be
			// there too, once; nothing else.
			if len(obs) > len(is)+2 {
				t.Errorf("%s %s: %d readings stored, %d acknowledged", dev, code.code, len(obs), len(is))
			}
		}
	}
	if err := child.Stop(); err != nil {
		t.Error(err)
	}
}

// syncBuffer is a log destination tests can read while the uplink writes to it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestUplinkRefusals: packs the server refuses for good — the device has no patient (0x99), the
// device is unknown (0x87) — leave the spool for the rejected file, with the server's reason,
// and do not hold up another device's packs.
func TestUplinkRefusals(t *testing.T) {
	e := start(t)
	patient, mon := e.ward()
	gw := e.gatewayDevice()
	var unbound device
	if c := e.call("POST", "/api/v1/devices", adminToken, map[string]string{"kind": "pulse-oximeter"}, &unbound); c != 201 {
		t.Fatalf("create unbound device: %d", c)
	}
	e.behind(gw, mon, unbound)
	sp, err := spool.Open(t.TempDir(), spool.Options{NoSync: true, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	at := time.Now().Add(-time.Minute).Truncate(time.Millisecond)
	put := func(dev string, v float64) {
		p, _ := senml.EncodeJSON(senml.Pack{{BaseName: dev + ":", Name: "8867-4", Unit: "/min", Value: &v, Time: float64(at.UnixMilli()) / 1000}})
		if _, err := sp.Put(context.Background(), spool.Entry{Device: dev, Class: gateway.Spot, Payload: p}); err != nil {
			t.Fatal(err)
		}
	}
	put(unbound.ID, 70)
	put("no-such-device", 71)
	put(mon.ID, 72)
	var logs syncBuffer
	rejectedFile := filepath.Join(t.TempDir(), "rejected.jsonl")
	u, err := uplink.New(uplink.Config{Spool: sp, URL: "mqtt://" + e.n.MQTTAddr(), Username: gw.MQTT.Username, RejectedFile: rejectedFile,
		Password: []byte(gw.MQTT.Password), BackoffMin: 20 * time.Millisecond, BackoffMax: 50 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- u.Run(ctx) }()
	defer func() { cancel(); <-done }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if d, _, _ := sp.Stats(); d == 0 {
			break
		}
		if time.Now().After(deadline) {
			d, _, _ := sp.Stats()
			t.Fatalf("spool depth %d, want 0\n%s", d, logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	rej, err := os.ReadFile(rejectedFile)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(rej)), "\n")
	if len(lines) != 2 {
		t.Fatalf("rejected file holds %d lines, want 2:\n%s", len(lines), rej)
	}
	for _, want := range []string{`"device":"` + unbound.ID + `"`, `"code":"0x99"`, "not bound to a patient", `"device":"no-such-device"`, `"code":"0x87"`} {
		if !strings.Contains(string(rej), want) {
			t.Errorf("rejected file lacks %q:\n%s", want, rej)
		}
	}
	obs, err := e.n.Store().Observations(context.Background(), iomt.ObservationQuery{Patient: patient, Code: "8867-4", From: at, To: at.Add(time.Second)})
	if err != nil || len(obs) != 1 || obs[0].Value != 72 {
		t.Fatalf("bound device's reading: %+v, %v", obs, err)
	}
	for _, want := range []string{"pack refused by the server; moved out of the spool", "0x99", "not bound to a patient", "0x87"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("uplink log lacks %q:\n%s", want, logs.String())
		}
	}
}
