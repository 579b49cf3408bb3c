package sim

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/iomt/iomt"
	"github.com/iomt/iomt/ingest"
	ingestmqtt "github.com/iomt/iomt/ingest/mqtt"
	"github.com/iomt/iomt/node"
)

// testNode starts an embedded node with one ECG patch bound to a patient, and returns it,
// the device's id, password and data topic.
func testNode(t *testing.T) (*node.Node, string, string, string) {
	t.Helper()
	n, err := node.Start(context.Background(), node.Config{
		DataDir: t.TempDir(), HTTPAddr: "127.0.0.1:0", MQTTAddr: "127.0.0.1:0", People: node.PeopleConfig{BootstrapToken: "test-bootstrap-token"},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	ctx := context.Background()
	st := n.Store()
	if err := st.CreatePatient(ctx, iomt.Patient{ID: "p1", Tenant: iomt.DefaultTenant, Name: "p1", CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	d := iomt.Device{ID: "d1", Tenant: iomt.DefaultTenant, Kind: "ecg-patch", Patient: "p1", CreatedAt: time.Now()}
	creds, err := ingest.NewCredentials(&d)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.CreateDevice(ctx, d); err != nil {
		t.Fatal(err)
	}
	return n, d.ID, creds.MQTTPassword, ingestmqtt.DataTopic(d.Tenant, d.ID)
}

// hrPack is a SenML JSON pack of one heart rate reading at t.
func hrPack(t time.Time, bpm int) []byte {
	return fmt.Appendf(nil, `[{"bn":"urn:dev:x:","bt":%d.%03d,"n":"8867-4","u":"/min","v":%d}]`, t.Unix(), t.Nanosecond()/1e6, bpm)
}

// acks collects a client's PUBACKs.
type acks struct {
	mu  sync.Mutex
	got []Ack
	n   atomic.Int64
}

func (a *acks) add(x Ack) {
	a.mu.Lock()
	a.got = append(a.got, x)
	a.mu.Unlock()
	a.n.Add(1)
}

func (a *acks) wait(t *testing.T, n int) []Ack {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for a.n.Load() < int64(n) {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d PUBACKs", a.n.Load(), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]Ack(nil), a.got...)
}

func TestClientPublishesToEmbeddedBroker(t *testing.T) {
	n, id, pw, topic := testNode(t)
	ctx := context.Background()
	var got acks
	c := NewClient(ClientOptions{Addr: n.MQTTAddr(), ClientID: id, Username: id, Password: pw, Window: 4, OnAck: got.add})
	defer c.Close()
	if err := c.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now().Add(-time.Hour).Truncate(time.Second)
	const packs = 200
	for i := range packs {
		if err := c.Publish(ctx, topic, hrPack(t0.Add(time.Duration(i)*time.Second), 60+i%40), i); err != nil {
			t.Fatal(err)
		}
	}
	for i, a := range got.wait(t, packs) {
		if a.Code != 0 || a.Reason != "" || a.Meta != i {
			t.Fatalf("ack %d: %+v", i, a)
		}
	}
	obs, err := n.Store().Observations(ctx, iomt.ObservationQuery{Patient: "p1", Code: "8867-4", From: t0, To: t0.Add(packs * time.Second)})
	if err != nil || len(obs) != packs {
		t.Fatalf("stored %d of %d: %v", len(obs), packs, err)
	}

	// A refused pack comes back with its MQTT 5 reason code and the server's reason.
	if err := c.Publish(ctx, topic, []byte(`[{"n":"8867-4","v":`), -1); err != nil {
		t.Fatal(err)
	}
	a := got.wait(t, packs+1)[packs]
	if a.Code != 0x99 || a.Reason == "" || a.Meta != -1 {
		t.Fatalf("malformed pack: %+v", a)
	}
	t.Logf("refusal: 0x%02x %s", a.Code, a.Reason)

	// Wrong credentials: a ConnectError with the CONNACK's reason code.
	bad := NewClient(ClientOptions{Addr: n.MQTTAddr(), ClientID: id + "x", Username: id, Password: "wrong"})
	defer bad.Close()
	var ce *ConnectError
	if err := bad.Connect(ctx); !errors.As(err, &ce) || ce.Code < 0x80 {
		t.Fatalf("bad password: %v", err)
	}
}

// An idle client keeps its connection with PINGREQs: mochi drops a client silent for 1.5 ×
// its keep-alive.
func TestClientKeepAlive(t *testing.T) {
	n, id, pw, topic := testNode(t)
	ctx := context.Background()
	var got acks
	c := NewClient(ClientOptions{Addr: n.MQTTAddr(), ClientID: id, Username: id, Password: pw, KeepAlive: time.Second, OnAck: got.add})
	defer c.Close()
	if err := c.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	lost := c.Lost()
	select {
	case err := <-lost:
		t.Fatalf("connection lost while idle: %v", err)
	case <-time.After(3500 * time.Millisecond):
	}
	if err := c.Publish(ctx, topic, hrPack(time.Now().Add(-time.Minute), 70), 0); err != nil {
		t.Fatal(err)
	}
	if a := got.wait(t, 1)[0]; a.Code != 0 {
		t.Fatalf("ack: %+v", a)
	}
}

// cutProxy forwards TCP to a broker; it can hold back what the broker sends (PUBACKs) and
// cut every connection, to make publishes go unacknowledged.
type cutProxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	conns  []net.Conn
	hold   bool
}

func newCutProxy(t *testing.T, target string) *cutProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{ln: ln, target: target}
	t.Cleanup(func() { ln.Close(); p.cut() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, s)
			p.mu.Unlock()
			go func() { _, _ = io.Copy(s, c); s.Close() }()
			go func() {
				buf := make([]byte, 4096)
				for {
					n, err := s.Read(buf)
					if err != nil {
						c.Close()
						return
					}
					p.mu.Lock()
					hold := p.hold
					p.mu.Unlock()
					if hold {
						continue // dropped: the client never sees these PUBACKs
					}
					if _, err := c.Write(buf[:n]); err != nil {
						return
					}
				}
			}()
		}
	}()
	return p
}

func (p *cutProxy) setHold(h bool) { p.mu.Lock(); p.hold = h; p.mu.Unlock() }

func (p *cutProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// Publishes not acknowledged when the connection drops are sent again after the reconnect;
// the server stores each reading once.
func TestClientResendsUnackedAfterReconnect(t *testing.T) {
	n, id, pw, topic := testNode(t)
	px := newCutProxy(t, n.MQTTAddr())
	ctx := context.Background()
	var got acks
	c := NewClient(ClientOptions{Addr: px.ln.Addr().String(), ClientID: id, Username: id, Password: pw, Window: 8, OnAck: got.add})
	defer c.Close()
	if err := c.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now().Add(-time.Hour).Truncate(time.Second)
	pub := func(from, to int) {
		for i := from; i < to; i++ {
			if err := c.Publish(ctx, topic, hrPack(t0.Add(time.Duration(i)*time.Second), 60+i%40), i); err != nil {
				t.Fatal(err)
			}
		}
	}
	pub(0, 10)
	got.wait(t, 10)
	// The broker stores the next 30 but its PUBACKs are lost: 8 in flight, 22 queued.
	px.setHold(true)
	lost := c.Lost()
	pub(10, 40)
	deadline := time.Now().Add(10 * time.Second)
	for {
		obs, _ := n.Store().Observations(ctx, iomt.ObservationQuery{Patient: "p1", Code: "8867-4", From: t0, To: t0.Add(time.Hour)})
		if len(obs) >= 18 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("broker stored %d readings", len(obs))
		}
		time.Sleep(10 * time.Millisecond)
	}
	if u := c.Unacked(); u != 30 {
		t.Fatalf("unacked %d, want 30", u)
	}
	px.cut()
	if err := <-lost; err == nil {
		t.Fatal("no error for the lost connection")
	}
	px.setHold(false)
	if err := c.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	pub(40, 50)
	all := got.wait(t, 50)
	seen := map[int]bool{}
	for i, a := range all {
		if a.Code != 0 || a.Meta != i {
			t.Fatalf("ack %d: %+v", i, a)
		}
		seen[a.Meta] = true
	}
	if len(seen) != 50 || c.Unacked() != 0 {
		t.Fatalf("acked %d distinct, %d unacked", len(seen), c.Unacked())
	}
	obs, err := n.Store().Observations(ctx, iomt.ObservationQuery{Patient: "p1", Code: "8867-4", From: t0, To: t0.Add(time.Hour)})
	if err != nil || len(obs) != 50 {
		t.Fatalf("stored %d readings, want each of 50 once: %v", len(obs), err)
	}
}

// Against Mosquitto (anonymous on localhost:1883, where it runs): every publish is
// acknowledged and delivered once, in order.
func TestClientMosquitto(t *testing.T) {
	const addr = "127.0.0.1:1883"
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		t.Skipf("no Mosquitto on %s: %v", addr, err)
	}
	ctx := context.Background()
	topic := fmt.Sprintf("iomt-sim-test/%d", time.Now().UnixNano())
	const packs = 300
	recv := make(chan []byte, packs+10)
	sub := paho.NewClient(paho.ClientConfig{Conn: conn, ClientID: "sim-test-sub-" + topic[len(topic)-6:],
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(p paho.PublishReceived) (bool, error) {
			recv <- p.Packet.Payload
			return true, nil
		}}})
	if _, err := sub.Connect(ctx, &paho.Connect{KeepAlive: 30, CleanStart: true, ClientID: "sim-test-sub-" + topic[len(topic)-6:]}); err != nil {
		t.Fatal(err)
	}
	defer sub.Disconnect(&paho.Disconnect{})
	if _, err := sub.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: topic, QoS: 1}}}); err != nil {
		t.Fatal(err)
	}
	var got acks
	c := NewClient(ClientOptions{Addr: addr, ClientID: "sim-test-pub-" + topic[len(topic)-6:], Window: 16, OnAck: got.add})
	defer c.Close()
	if err := c.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	for i := range packs {
		if err := c.Publish(ctx, topic, fmt.Appendf(nil, "%d", i), i); err != nil {
			t.Fatal(err)
		}
	}
	for i, a := range got.wait(t, packs) {
		if a.Code != 0 || a.Meta != i {
			t.Fatalf("ack %d: %+v", i, a)
		}
	}
	for i := range packs {
		select {
		case p := <-recv:
			if string(p) != fmt.Sprint(i) {
				t.Fatalf("message %d: %q", i, p)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("received %d of %d", i, packs)
		}
	}
}

// A client subscribed to its command topic hears commands, acknowledges them (QoS 1), and
// subscribes again after a reconnect: the session is clean, so the broker forgot it. A topic
// the broker refuses (another device's) is logged and the connection kept.
func TestClientHearsCommandsAcrossReconnects(t *testing.T) {
	n, id, pw, topic := testNode(t)
	px := newCutProxy(t, n.MQTTAddr())
	ctx := context.Background()
	type msg struct{ topic, payload string }
	got := make(chan msg, 8)
	var logs syncLog
	cmdTopic := ingestmqtt.CommandTopic(iomt.DefaultTenant, id)
	other := ingestmqtt.CommandTopic(iomt.DefaultTenant, "someone-else")
	var acked acks
	c := NewClient(ClientOptions{Addr: px.ln.Addr().String(), ClientID: id, Username: id, Password: pw,
		Subscribe: []string{cmdTopic, other}, OnAck: acked.add,
		OnMessage: func(topic string, payload []byte) { got <- msg{topic, string(payload)} },
		Logger:    slog.New(slog.NewTextHandler(&logs, nil))})
	defer c.Close()
	receive := func(payload string) {
		t.Helper()
		if err := n.SendCommand(iomt.DefaultTenant, id, []byte(payload)); err != nil {
			t.Fatal(err)
		}
		select {
		case m := <-got:
			if m.topic != cmdTopic || m.payload != payload {
				t.Fatalf("got %q on %s, want %q on %s", m.payload, m.topic, payload, cmdTopic)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("command %s not received", payload)
		}
	}
	for i, payload := range []string{`{"id":"c1"}`, `{"id":"c2"}`} {
		if err := c.Connect(ctx); err != nil {
			t.Fatal(err)
		}
		receive(payload)
		if i == 0 {
			lost := c.Lost()
			px.cut()
			if err := <-lost; err == nil {
				t.Fatal("no error for the lost connection")
			}
		}
	}
	if !strings.Contains(logs.String(), "mqtt subscription refused") || !strings.Contains(logs.String(), other) {
		t.Fatalf("refused subscription not logged: %s", logs.String())
	}
	// The connection still carries readings.
	if err := c.Publish(ctx, topic, hrPack(time.Now().Add(-time.Minute), 70), 7); err != nil {
		t.Fatal(err)
	}
	if a := acked.wait(t, 1)[0]; a.Code != 0 || a.Meta != 7 {
		t.Fatalf("ack: %+v", a)
	}
}

// syncLog is a log sink written from the client's goroutines.
type syncLog struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncLog) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncLog) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
