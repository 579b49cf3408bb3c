package mqtt_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	mqtt3 "github.com/eclipse/paho.mqtt.golang"

	"github.com/iomt/iomt"
	"github.com/iomt/iomt/bus/memory"
	"github.com/iomt/iomt/codes"
	"github.com/iomt/iomt/gateway/uplink"
	"github.com/iomt/iomt/gateway/uplink/uplinktest"
	"github.com/iomt/iomt/ingest"
	"github.com/iomt/iomt/ingest/mqtt"
	"github.com/iomt/iomt/store/embedded"
	"github.com/iomt/iomt/wire/senml"
)

// syncBuffer is a log sink the broker's goroutines write to while the test reads it.
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

// waitLog waits until the log holds every one of want, in one line.
func (b *syncBuffer) waitLog(t *testing.T, want ...string) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		for _, line := range strings.Split(b.String(), "\n") {
			all := true
			for _, w := range want {
				all = all && strings.Contains(line, w)
			}
			if all {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no log line with %q in:\n%s", want, b.String())
		}
	}
}

type fixture struct {
	st     *embedded.Store
	broker *mqtt.Broker
	addr   string
	logs   *syncBuffer
}

type options struct {
	tls      *tls.Config
	throttle *ingest.ThrottleOptions
}

// newBroker serves a real broker over loopback on an embedded store, with one patient.
func newBroker(t *testing.T, o options) *fixture {
	t.Helper()
	st, err := embedded.Open(t.TempDir(), embedded.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	b := memory.New(memory.Options{})
	if err := st.CreatePatient(context.Background(), iomt.Patient{ID: "p1", Tenant: iomt.DefaultTenant, Name: "Ada", CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	var ln net.Listener
	if ln, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	if o.tls != nil {
		ln = tls.NewListener(ln, o.tls)
	}
	var th *ingest.Throttle
	if o.throttle != nil {
		o.throttle.Logger = log
		th = ingest.NewThrottle(*o.throttle)
	}
	in := ingest.New(codes.New(), st, st, b, log, nil, ingest.Options{})
	br, err := mqtt.New(ln, in, ingest.Authenticator{Registry: st}, mqtt.Options{Logger: log, Throttle: th, RecheckInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	if err := br.Serve(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { br.Close(); b.Close(); st.Close() })
	return &fixture{st: st, broker: br, addr: addr, logs: logs}
}

// device registers a device bound to p1 (a gateway: unbound) and returns its password.
func (f *fixture) device(t *testing.T, id, kind, gateway string) string {
	t.Helper()
	d := iomt.Device{ID: id, Tenant: iomt.DefaultTenant, Kind: kind, Patient: "p1", Gateway: gateway, CreatedAt: time.Now()}
	if kind == mqtt.GatewayKind {
		d.Patient = ""
	}
	creds, err := ingest.NewCredentials(&d)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.st.CreateDevice(context.Background(), d); err != nil {
		t.Fatal(err)
	}
	return creds.MQTTPassword
}

type conn struct {
	c      *paho.Client
	ack    *paho.Connack
	err    error
	closed chan *paho.Disconnect // the server's DISCONNECT
}

// dial connects an MQTT 5 client from local address from ("" for any) with tc (nil: plain).
func (f *fixture) dial(t *testing.T, from string, tc *tls.Config, clientID, user, pass string) *conn {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second}
	if from != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(from)}
	}
	var nc net.Conn
	var err error
	if tc != nil {
		nc, err = tls.DialWithDialer(&d, "tcp", f.addr, tc)
	} else {
		nc, err = d.Dial("tcp", f.addr)
	}
	if err != nil {
		return &conn{err: err}
	}
	out := &conn{closed: make(chan *paho.Disconnect, 1)}
	out.c = paho.NewClient(paho.ClientConfig{Conn: nc, ClientID: clientID, OnServerDisconnect: func(d *paho.Disconnect) { out.closed <- d }})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cp := &paho.Connect{KeepAlive: 30, CleanStart: true, ClientID: clientID, Username: user, UsernameFlag: user != ""}
	if pass != "" {
		cp.Password, cp.PasswordFlag = []byte(pass), true
	}
	out.ack, out.err = out.c.Connect(ctx, cp)
	if out.err == nil {
		t.Cleanup(func() { _ = out.c.Disconnect(&paho.Disconnect{}) })
	}
	return out
}

// publish sends one heart rate on topic (QoS 1) and returns the PUBACK's reason code.
func (c *conn) publish(t *testing.T, topic string) byte {
	t.Helper()
	v := 70.0
	pack, _ := senml.EncodeJSON(senml.Pack{{Name: "8867-4", Unit: "/min", Value: &v, Time: float64(time.Now().Add(-time.Second).UnixMilli()) / 1000}})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r, err := c.c.Publish(ctx, &paho.Publish{Topic: topic, QoS: 1, Payload: pack})
	if r == nil {
		t.Fatalf("publish to %s: %v", topic, err)
	}
	return r.ReasonCode
}

func topic(dev string) string { return mqtt.DataTopic(iomt.DefaultTenant, dev) }

// A device that logs in with its own password under another device's client id is refused
// (CONNACK 0x85, 3.1.1: 0x02) with a log line, and the other device's session goes on; a
// device without a client id gets its own.
func TestClientIDTakeoverRefused(t *testing.T) {
	f := newBroker(t, options{})
	pwA, pwB := f.device(t, "dev-a", "pulse-oximeter", ""), f.device(t, "dev-b", "pulse-oximeter", "")
	a := f.dial(t, "", nil, "dev-a", "dev-a", pwA)
	if a.err != nil {
		t.Fatalf("dev-a connect: %v", a.err)
	}
	b := f.dial(t, "", nil, "dev-a", "dev-b", pwB)
	if b.err == nil || b.ack == nil || b.ack.ReasonCode != 0x85 {
		t.Fatalf("dev-b under dev-a's client id: %v %+v, want CONNACK 0x85", b.err, b.ack)
	}
	if b.ack.Properties == nil || !strings.Contains(b.ack.Properties.ReasonString, "device's id") {
		t.Errorf("CONNACK reason %+v does not say to use the device's id", b.ack.Properties)
	}
	f.logs.waitLog(t, "mqtt connect refused", "device=dev-b", `client=dev-a`, `client id \"dev-a\" is not the device's id \"dev-b\"`)
	select {
	case d := <-a.closed:
		t.Fatalf("dev-a's session was ended: %+v", d)
	case <-time.After(200 * time.Millisecond):
	}
	if rc := a.publish(t, topic("dev-a")); rc != 0 {
		t.Fatalf("dev-a publishes after the attempt: 0x%02x", rc)
	}

	// MQTT 3.1.1: return code 2, identifier rejected.
	o := mqtt3.NewClientOptions().AddBroker("tcp://" + f.addr).SetClientID("dev-a").SetUsername("dev-b").SetPassword(pwB).
		SetProtocolVersion(4).SetAutoReconnect(false).SetConnectRetry(false)
	c3 := mqtt3.NewClient(o)
	if tok := c3.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() == nil || !strings.Contains(tok.Error().Error(), "identifier rejected") {
		t.Fatalf("3.1.1 takeover: %v", tok.Error())
	}
	if rc := a.publish(t, topic("dev-a")); rc != 0 {
		t.Fatalf("dev-a publishes after the 3.1.1 attempt: 0x%02x", rc)
	}

	// No client id: the server assigns the device's own.
	e := f.dial(t, "", nil, "", "dev-b", pwB)
	if e.err != nil || e.ack.Properties == nil || e.ack.Properties.AssignedClientID != "dev-b" {
		t.Fatalf("empty client id: %v %+v, want assigned dev-b", e.err, e.ack)
	}
}

// Revoke ends a device's live session at once (DISCONNECT 0x87), its next CONNECT is refused,
// and a gateway's session looks its devices up again; Recheck ends the session of a device
// whose password was rotated without notice.
func TestRevokeEndsSession(t *testing.T) {
	f := newBroker(t, options{})
	ctx := context.Background()
	pw := f.device(t, "dev-a", "pulse-oximeter", "")
	a := f.dial(t, "", nil, "dev-a", "dev-a", pw)
	if a.err != nil {
		t.Fatal(a.err)
	}
	if err := f.st.SetDeviceDisabled(ctx, "dev-a", true); err != nil {
		t.Fatal(err)
	}
	if n := f.broker.Revoke("dev-a", "device disabled"); n != 1 {
		t.Fatalf("Revoke ended %d sessions, want 1", n)
	}
	select {
	case d := <-a.closed:
		if d.ReasonCode != 0x87 || d.Properties == nil || !strings.Contains(d.Properties.ReasonString, "device disabled") {
			t.Fatalf("DISCONNECT %+v, want 0x87 saying why", d)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the revoked session was not ended")
	}
	f.logs.waitLog(t, "mqtt session ended", "device=dev-a", "device disabled")
	if again := f.dial(t, "", nil, "dev-a", "dev-a", pw); again.err == nil || again.ack == nil || again.ack.ReasonCode != 0x86 {
		t.Fatalf("reconnect of a disabled device: %v %+v", again.err, again.ack)
	}
	f.logs.waitLog(t, "mqtt connect refused", "device=dev-a", "is disabled")

	// Rotated behind the broker's back: the periodic recheck ends the session.
	pwB := f.device(t, "dev-b", "pulse-oximeter", "")
	b := f.dial(t, "", nil, "dev-b", "dev-b", pwB)
	if b.err != nil {
		t.Fatal(b.err)
	}
	d, _ := f.st.Device(ctx, "dev-b")
	if _, err := ingest.NewCredentials(&d); err != nil {
		t.Fatal(err)
	}
	if err := f.st.SetDeviceCredentials(ctx, "dev-b", d.MQTTPasswordHash, d.TokenHash); err != nil {
		t.Fatal(err)
	}
	f.broker.Recheck()
	select {
	case <-b.closed:
	case <-time.After(5 * time.Second):
		t.Fatal("recheck left the session of a rotated device open")
	}
	f.logs.waitLog(t, "mqtt session ended", "device=dev-b", "credentials rotated")
}

// A gateway publishes for the devices registered behind it and is refused (PUBACK 0x87, reason
// logged) for a device behind no gateway, behind another gateway, or disabled; a device moved
// away from it is refused from the next publish on.
func TestGatewayOnlyForItsDevices(t *testing.T) {
	f := newBroker(t, options{})
	ctx := context.Background()
	gwPw := f.device(t, "gw-1", mqtt.GatewayKind, "")
	f.device(t, "gw-2", mqtt.GatewayKind, "")
	f.device(t, "mine", "pulse-oximeter", "gw-1")
	f.device(t, "loose", "pulse-oximeter", "")
	f.device(t, "theirs", "pulse-oximeter", "gw-2")
	f.device(t, "off", "pulse-oximeter", "gw-1")
	if err := f.st.SetDeviceDisabled(ctx, "off", true); err != nil {
		t.Fatal(err)
	}
	gw := f.dial(t, "", nil, "gw-1", "gw-1", gwPw)
	if gw.err != nil {
		t.Fatal(gw.err)
	}
	if rc := gw.publish(t, topic("mine")); rc != 0 {
		t.Fatalf("gateway for its own device: 0x%02x", rc)
	}
	for dev, why := range map[string]string{
		"loose":  "device loose is registered to no gateway",
		"theirs": "device theirs is registered to another gateway",
		"off":    "device off is disabled",
	} {
		if rc := gw.publish(t, topic(dev)); rc != 0x87 {
			t.Errorf("gateway for %s: 0x%02x, want 0x87", dev, rc)
		}
		f.logs.waitLog(t, "mqtt topic refused", "device=gw-1", why)
	}
	if err := f.st.SetDeviceGateway(ctx, "mine", "gw-2"); err != nil {
		t.Fatal(err)
	}
	f.broker.Forget("mine")
	if rc := gw.publish(t, topic("mine")); rc != 0x87 {
		t.Fatalf("gateway for a device moved to another gateway: 0x%02x, want 0x87", rc)
	}
}

// With a client CA, a certificate whose CN is a device's id logs that device in without a
// password, and publishes only as that device; a certificate naming one device cannot log in
// as another; a certificate of another CA fails the handshake; a password still works.
func TestMutualTLS(t *testing.T) {
	pki := uplinktest.NewPKI(t, "dev-a")
	cert, err := tls.LoadX509KeyPair(pki.ServerCert, pki.ServerKey)
	if err != nil {
		t.Fatal(err)
	}
	tc := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	err = mqtt.WithClientCA(tc, pki.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	f := newBroker(t, options{tls: tc})
	f.device(t, "dev-a", "pulse-oximeter", "")
	pwB := f.device(t, "dev-b", "pulse-oximeter", "")
	client := func(certFile, keyFile string) *tls.Config {
		c, err := uplink.TLSConfig(pki.CAFile, certFile, keyFile)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	certA := client(pki.ClientCert, pki.ClientKey)

	a := f.dial(t, "", certA, "dev-a", "", "")
	if a.err != nil {
		t.Fatalf("certificate login without a password: %v %+v", a.err, a.ack)
	}
	if rc := a.publish(t, topic("dev-a")); rc != 0 {
		t.Fatalf("publish as its CN: 0x%02x", rc)
	}
	if rc := a.publish(t, topic("dev-b")); rc != 0x87 {
		t.Fatalf("publish as another device: 0x%02x, want 0x87", rc)
	}
	// Naming another device, even with that device's password, is refused.
	if c := f.dial(t, "", certA, "dev-b", "dev-b", pwB); c.err == nil || c.ack == nil || c.ack.ReasonCode != 0x86 {
		t.Fatalf("certificate of dev-a as dev-b: %v %+v, want 0x86", c.err, c.ack)
	}
	f.logs.waitLog(t, "mqtt connect refused", `the client certificate is device \"dev-a\"'s, the user name says \"dev-b\"`)
	// The certificate's device, under another client id: refused as any device would be.
	if c := f.dial(t, "", certA, "dev-b", "", ""); c.err == nil || c.ack == nil || c.ack.ReasonCode != 0x85 {
		t.Fatalf("certificate of dev-a under client id dev-b: %v %+v, want 0x85", c.err, c.ack)
	}
	// A certificate for an unregistered CN is refused.
	ghostCert, ghostKey := pki.Issue(t, "ghost", x509.ExtKeyUsageClientAuth, nil, nil)
	if c := f.dial(t, "", client(ghostCert, ghostKey), "ghost", "", ""); c.err == nil || c.ack == nil || c.ack.ReasonCode != 0x86 {
		t.Fatalf("certificate of an unknown device: %v %+v", c.err, c.ack)
	}
	// Another CA's certificate does not get through the handshake.
	other := uplinktest.NewPKI(t, "dev-a")
	if c := f.dial(t, "", client(other.ClientCert, other.ClientKey), "dev-a", "", ""); c.err == nil {
		t.Fatal("a certificate of another CA was accepted")
	}
	// Without a certificate, the password.
	if c := f.dial(t, "", client("", ""), "dev-b", "dev-b", pwB); c.err != nil {
		t.Fatalf("password over TLS: %v", c.err)
	}
}

// Failed logins are logged with device and source, never the password; after MaxFailures from
// one address it is refused (0x9F) even with a good password, logged once, while another
// address logs in.
func TestThrottledSource(t *testing.T) {
	f := newBroker(t, options{throttle: &ingest.ThrottleOptions{MaxFailures: 3, Window: time.Minute, Block: time.Minute}})
	pw := f.device(t, "dev-a", "pulse-oximeter", "")
	for range 3 {
		c := f.dial(t, "127.0.0.3", nil, "dev-a", "dev-a", "guess-"+pw[:4])
		if c.err == nil || c.ack == nil || c.ack.ReasonCode != 0x86 {
			t.Fatalf("wrong password: %v %+v", c.err, c.ack)
		}
	}
	f.logs.waitLog(t, "mqtt connect refused", "remote=127.0.0.3:", "device=dev-a", "wrong password")
	f.logs.waitLog(t, "device authentication throttled", "source=127.0.0.3")
	c := f.dial(t, "127.0.0.3", nil, "dev-a", "dev-a", pw)
	if c.err == nil || c.ack == nil || c.ack.ReasonCode != 0x9F {
		t.Fatalf("good password from a blocked source: %v %+v, want 0x9F", c.err, c.ack)
	}
	if ok := f.dial(t, "127.0.0.4", nil, "dev-a", "dev-a", pw); ok.err != nil {
		t.Fatalf("another source: %v", ok.err)
	}
	if n := strings.Count(f.logs.String(), "device authentication throttled"); n != 1 {
		t.Errorf("block logged %d times", n)
	}
	if strings.Contains(f.logs.String(), pw) || strings.Contains(f.logs.String(), "guess-") {
		t.Error("a password reached the log")
	}
}
