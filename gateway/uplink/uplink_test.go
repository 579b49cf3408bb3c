package uplink_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/iomt/iomt/gateway"
	"github.com/iomt/iomt/gateway/spool"
	"github.com/iomt/iomt/gateway/uplink"
	"github.com/iomt/iomt/gateway/uplink/uplinktest"
	"github.com/iomt/iomt/wire/senml"
)

func logger(t *testing.T) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// pack is one heart-rate reading of device at t, as the MLLP adapter writes it.
func pack(t *testing.T, device string, at time.Time, v float64) []byte {
	t.Helper()
	return packBytes(device, at, v)
}

func packBytes(device string, at time.Time, v float64) []byte {
	data, err := senml.EncodeJSON(senml.Pack{{BaseName: device + ":", Name: "8867-4", Unit: "/min", Value: &v,
		Time: float64(at.UnixMilli()) / 1000}})
	if err != nil {
		panic(err) // a constant-shaped pack always encodes
	}
	return data
}

func openSpool(t *testing.T) *spool.Spool {
	t.Helper()
	s, err := spool.Open(t.TempDir(), spool.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// run starts u and stops it when the test ends.
func run(t *testing.T, u *uplink.Uplink) { runB(t, u) }

func runB(t testing.TB, u *uplink.Uplink) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := u.Run(ctx); err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	t.Cleanup(func() { cancel(); wg.Wait() })
}

func put(t *testing.T, s *spool.Spool, device string, c gateway.Class, payload []byte) uint64 {
	t.Helper()
	seq, err := s.Put(context.Background(), spool.Entry{Device: device, Class: c, Payload: payload})
	if err != nil {
		t.Fatal(err)
	}
	return seq
}

func waitEmpty(t *testing.T, s *spool.Spool, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if d, _, _ := s.Stats(); d == 0 {
			return
		}
		if time.Now().After(deadline) {
			d, _, _ := s.Stats()
			t.Fatalf("spool still holds %d entries after %v", d, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// checkOrder fails unless, for every device, the first arrival of each seq is in ascending
// order and seqs 1..want[device] all arrived.
func checkOrder(t *testing.T, msgs []uplinktest.Message, want map[string]uint64) {
	t.Helper()
	last := map[string]uint64{}
	for _, m := range msgs {
		parts := strings.Split(m.Topic, "/")
		dev := parts[len(parts)-2]
		if m.Seq <= last[dev] {
			continue // a replay: the receiver drops it by seq
		}
		if m.Seq != last[dev]+1 {
			t.Errorf("device %s: seq %d arrived after %d (missing or out of order)", dev, m.Seq, last[dev])
			return
		}
		last[dev] = m.Seq
	}
	for dev, n := range want {
		if last[dev] != n {
			t.Errorf("device %s: got seqs up to %d, want %d", dev, last[dev], n)
		}
	}
}

func TestMosquittoTLSClientCertificate(t *testing.T) {
	pki := uplinktest.NewPKI(t, "gw-1")
	mq := uplinktest.StartMosquitto(t, pki)
	sub := uplinktest.Subscribe(t, mq.PlainAddr, "site/+/devices/+/senml")
	sp := openSpool(t)
	base := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
	want := map[string]uint64{}
	sent := map[string][]byte{}
	for i := range 30 {
		dev := fmt.Sprintf("mon-%d", i%3)
		c := gateway.Spot
		if i == 25 {
			c = gateway.Alarm
		}
		p := pack(t, dev, base.Add(time.Duration(i)*time.Second), float64(60+i))
		want[dev] = put(t, sp, dev, c, p)
		sent[fmt.Sprintf("%s/%d", dev, want[dev])] = p
	}
	tlsc, err := uplink.TLSConfig(pki.CAFile, pki.ClientCert, pki.ClientKey)
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	u, err := uplink.New(uplink.Config{Spool: sp, URL: "mqtts://" + mq.TLSAddr, TLS: tlsc, TopicPrefix: "site/", Tenant: "ward7",
		Window: 8, Logger: logger(t), Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	if _, down := u.DownSince(); !down {
		t.Fatal("uplink reports up before Run")
	}
	run(t, u)
	waitEmpty(t, sp, 20*time.Second)
	msgs := sub.WaitFor(t, 10*time.Second, "30 messages", func(ms []uplinktest.Message) bool { return len(ms) >= 30 })
	checkOrder(t, msgs, want)
	for _, m := range msgs {
		parts := strings.Split(m.Topic, "/")
		if parts[0] != "site" || parts[1] != "ward7" {
			t.Fatalf("topic %q: want prefix site/ward7/", m.Topic)
		}
		key := fmt.Sprintf("%s/%d", parts[3], m.Seq)
		if string(sent[key]) != string(m.Payload) {
			t.Errorf("%s: payload %s, sent %s", key, m.Payload, sent[key])
		}
		if m.Class != "spot" && m.Class != "alarm" {
			t.Errorf("%s: class property %q", key, m.Class)
		}
	}
	if !u.Connected() {
		t.Error("Connected() is false while publishing works")
	}
	if got := metric(t, reg, "iomt_uplink_published_total"); got < 30 {
		t.Errorf("iomt_uplink_published_total = %v, want 30", got)
	}
	if off := u.ClockOffset(); off != 0 {
		t.Errorf("clock offset %v from a broker that sends no time", off)
	}
}

func TestServerCertificateIsVerified(t *testing.T) {
	pki := uplinktest.NewPKI(t, "gw-1")
	mq := uplinktest.StartMosquitto(t, pki)
	other := uplinktest.NewPKI(t, "gw-1") // a CA that did not sign the broker's certificate
	sp := openSpool(t)
	put(t, sp, "mon-1", gateway.Spot, pack(t, "mon-1", time.Now(), 70))
	tlsc, err := uplink.TLSConfig(other.CAFile, pki.ClientCert, pki.ClientKey)
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	u, err := uplink.New(uplink.Config{Spool: sp, URL: "mqtts://" + mq.TLSAddr, TLS: tlsc,
		BackoffMin: 50 * time.Millisecond, BackoffMax: 100 * time.Millisecond, Logger: logger(t), Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	run(t, u)
	deadline := time.Now().Add(10 * time.Second)
	for metric(t, reg, "iomt_uplink_failures_total") < 2 {
		if time.Now().After(deadline) {
			t.Fatal("no failed connection attempts counted")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if u.Connected() {
		t.Fatal("connected to a broker whose certificate the CA did not sign")
	}
	if d, _, _ := sp.Stats(); d != 1 {
		t.Fatalf("spool depth %d, want the entry kept", d)
	}
	if since, down := u.DownSince(); !down || since.IsZero() {
		t.Fatalf("DownSince = %v, %v; want down", since, down)
	}
}

func TestConfigRefusals(t *testing.T) {
	sp := openSpool(t)
	for _, tc := range []struct{ url, want string }{
		{"http://example.org:80", "scheme must be mqtts"},
		{"mqtts://example.org", "want scheme://host:port"},
		{"::", "url"},
		{"mqtt://broker.example.org:1883", "plaintext MQTT to another machine"},
		{"tcp://10.0.0.7:1883", "use mqtts://10.0.0.7:1883 (TLS), or allow it explicitly (uplink.allow_plaintext: true, --allow-plaintext-uplink)"},
	} {
		_, err := uplink.New(uplink.Config{Spool: sp, URL: tc.url})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: err %v, want %q", tc.url, err, tc.want)
		}
	}
	// Plaintext is fine on loopback, and elsewhere when allowed; TLS anywhere.
	for _, c := range []uplink.Config{{URL: "mqtt://127.0.0.1:1883"}, {URL: "mqtt://localhost:1883"}, {URL: "mqtt://[::1]:1883"},
		{URL: "mqtt://broker.example.org:1883", AllowPlaintext: true}, {URL: "mqtts://broker.example.org:8883"}} {
		c.Spool = sp
		if _, err := uplink.New(c); err != nil {
			t.Errorf("%+v: %v", c, err)
		}
	}
	if _, err := uplink.New(uplink.Config{URL: "mqtt://127.0.0.1:1"}); err == nil {
		t.Error("no spool accepted")
	}
	if _, err := uplink.TLSConfig("/nonexistent/ca.pem", "", ""); err == nil || !strings.Contains(err.Error(), "CA file") {
		t.Errorf("missing CA file: %v", err)
	}
	pki := uplinktest.NewPKI(t, "x")
	if _, err := uplink.TLSConfig(pki.CAFile, pki.ClientCert, ""); err == nil || !strings.Contains(err.Error(), "both") {
		t.Errorf("certificate without key: %v", err)
	}
	if _, err := uplink.TLSConfig(pki.ClientKey, "", ""); err == nil || !strings.Contains(err.Error(), "no PEM certificate") {
		t.Errorf("key as CA: %v", err)
	}
}

// TestBrokerRestart stops the broker while the spool fills, then starts it again: the uplink
// reconnects on its own and delivers everything in order.
func TestBrokerRestart(t *testing.T) {
	pki := uplinktest.NewPKI(t, "gw-1")
	mq := uplinktest.StartMosquitto(t, pki)
	sub := uplinktest.Subscribe(t, mq.PlainAddr, "iomt/v1/+/devices/+/senml")
	sp := openSpool(t)
	tlsc, err := uplink.TLSConfig(pki.CAFile, pki.ClientCert, pki.ClientKey)
	if err != nil {
		t.Fatal(err)
	}
	u, err := uplink.New(uplink.Config{Spool: sp, URL: "mqtts://" + mq.TLSAddr, TLS: tlsc,
		BackoffMin: 50 * time.Millisecond, BackoffMax: 200 * time.Millisecond, Logger: logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	run(t, u)
	base := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
	want := map[string]uint64{}
	for i := range 10 {
		want["a"] = put(t, sp, "a", gateway.Spot, pack(t, "a", base.Add(time.Duration(i)*time.Second), 70))
		u.Notify()
	}
	waitEmpty(t, sp, 10*time.Second)
	mq.Stop(t)
	for deadline := time.Now().Add(10 * time.Second); u.Connected(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("uplink still reports connected after the broker stopped")
		}
	}
	for i := 10; i < 40; i++ {
		want["a"] = put(t, sp, "a", gateway.Spot, pack(t, "a", base.Add(time.Duration(i)*time.Second), 70))
		want["b"] = put(t, sp, "b", gateway.Waveform, pack(t, "b", base.Add(time.Duration(i)*time.Second), 70))
	}
	if d, _, _ := sp.Stats(); d != 60 {
		t.Fatalf("spool depth %d during the outage, want 60", d)
	}
	mq.Start(t)
	waitEmpty(t, sp, 20*time.Second)
	msgs := sub.WaitFor(t, 10*time.Second, "70 messages", func(ms []uplinktest.Message) bool { return len(ms) >= 70 })
	checkOrder(t, msgs, want)
	if t.Failed() {
		t.Log(mq.Log())
	}
}

// metric sums the samples of the named counter or gauge in reg.
func metric(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			sum += m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	return sum
}
