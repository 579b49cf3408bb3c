package node_test

import (
	"context"
	"crypto/x509"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/iomt/iomt"
	"github.com/iomt/iomt/gateway"
	"github.com/iomt/iomt/gateway/spool"
	"github.com/iomt/iomt/gateway/uplink"
	"github.com/iomt/iomt/gateway/uplink/uplinktest"
	"github.com/iomt/iomt/node"
)

// session is a device's live MQTT 5 connection and the DISCONNECT the server sends it.
type session struct {
	c      *paho.Client
	ack    *paho.Connack
	err    error
	closed chan *paho.Disconnect
}

func dialDevice(t *testing.T, addr, id, pass string) *session {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	s := &session{closed: make(chan *paho.Disconnect, 1)}
	s.c = paho.NewClient(paho.ClientConfig{Conn: conn, ClientID: id, OnServerDisconnect: func(d *paho.Disconnect) { s.closed <- d }})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s.ack, s.err = s.c.Connect(ctx, &paho.Connect{KeepAlive: 30, CleanStart: true, ClientID: id,
		Username: id, UsernameFlag: true, Password: []byte(pass), PasswordFlag: true})
	if s.err == nil {
		t.Cleanup(func() { _ = s.c.Disconnect(&paho.Disconnect{}) })
	}
	return s
}

// ended waits for the server to end the session with 0x87 and reason.
func (s *session) ended(t *testing.T, reason string) {
	t.Helper()
	select {
	case d := <-s.closed:
		if d.ReasonCode != 0x87 || d.Properties == nil || d.Properties.ReasonString != "not authorized: "+reason {
			t.Fatalf("DISCONNECT 0x%02x %+v, want 0x87 %q", d.ReasonCode, d.Properties, reason)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("the session was not ended (%s)", reason)
	}
}

func heartRate(id string, v int) []byte {
	return []byte(`[{"bn":"urn:dev:id:` + id + `:","bt":` + strconv.FormatInt(time.Now().Add(-time.Second).UnixMilli(), 10) + `e-3,"n":"8867-4","u":"/min","v":` + strconv.Itoa(v) + `}]`)
}

// Through the REST API, rotating, revoking, disabling and deleting a device each end its live
// MQTT session at once and refuse its old secrets on MQTT and HTTP ingest; the new credentials
// work, and the readings of a deleted device stay readable by patient.
func TestDeviceLifecycleEndsSessions(t *testing.T) {
	e := start(t)
	patient, dev := e.ward()
	addr := e.n.MQTTAddr()
	s := dialDevice(t, addr, dev.ID, dev.MQTT.Password)
	if s.err != nil {
		t.Fatal(s.err)
	}
	if r := publish5(t, s.c, dev.MQTT.Topic, heartRate(dev.ID, 70)); r.ReasonCode != 0 {
		t.Fatalf("publish: 0x%02x", r.ReasonCode)
	}

	var rot device
	if c := e.call("POST", "/api/v1/devices/"+dev.ID+"/credentials", adminToken, nil, &rot); c != 200 || rot.MQTT.Password == "" {
		t.Fatalf("rotate: %d", c)
	}
	s.ended(t, "credentials rotated")
	if old := dialDevice(t, addr, dev.ID, dev.MQTT.Password); old.err == nil || old.ack == nil || old.ack.ReasonCode != 0x86 {
		t.Fatalf("old password after rotation: %v %+v", old.err, old.ack)
	}
	if c := e.call("POST", "/api/v1/ingest", dev.Token, heartRate(dev.ID, 71), nil); c != 401 {
		t.Fatalf("old token after rotation: %d", c)
	}
	if c := e.call("POST", "/api/v1/ingest", rot.Token, heartRate(dev.ID, 72), nil); c != 200 {
		t.Fatalf("new token: %d", c)
	}
	s = dialDevice(t, addr, dev.ID, rot.MQTT.Password)
	if s.err != nil {
		t.Fatalf("new password: %v", s.err)
	}

	if c := e.call("POST", "/api/v1/devices/"+dev.ID+"/revoke", adminToken, nil, nil); c != 200 {
		t.Fatalf("revoke: %d", c)
	}
	s.ended(t, "credentials revoked")
	if again := dialDevice(t, addr, dev.ID, rot.MQTT.Password); again.err == nil || again.ack.ReasonCode != 0x86 {
		t.Fatalf("password after revocation: %v %+v", again.err, again.ack)
	}

	if c := e.call("POST", "/api/v1/devices/"+dev.ID+"/credentials", adminToken, nil, &rot); c != 200 {
		t.Fatalf("rotate after revocation: %d", c)
	}
	s = dialDevice(t, addr, dev.ID, rot.MQTT.Password)
	if s.err != nil {
		t.Fatal(s.err)
	}
	if c := e.call("PATCH", "/api/v1/devices/"+dev.ID, adminToken, map[string]bool{"disabled": true}, nil); c != 200 {
		t.Fatalf("disable: %d", c)
	}
	s.ended(t, "device disabled")
	if c := e.call("POST", "/api/v1/ingest", rot.Token, heartRate(dev.ID, 73), nil); c != 401 {
		t.Fatalf("token of a disabled device: %d", c)
	}
	if c := e.call("PATCH", "/api/v1/devices/"+dev.ID, adminToken, map[string]bool{"disabled": false}, nil); c != 200 {
		t.Fatalf("enable: %d", c)
	}
	s = dialDevice(t, addr, dev.ID, rot.MQTT.Password)
	if s.err != nil {
		t.Fatalf("enabled device: %v", s.err)
	}

	if c := e.call("DELETE", "/api/v1/devices/"+dev.ID, adminToken, nil, nil); c != 204 {
		t.Fatalf("delete: %d", c)
	}
	s.ended(t, "device deleted")
	obs, err := e.n.Store().Observations(context.Background(), iomt.ObservationQuery{Patient: patient, Code: "8867-4", From: time.Now().Add(-time.Hour), To: time.Now()})
	if err != nil || len(obs) < 2 || obs[0].Device != dev.ID {
		t.Fatalf("readings of the deleted device: %+v, %v", obs, err)
	}
	var read struct{ Points []struct{} }
	if c := e.call("GET", "/api/v1/patients/"+patient+"/observations?code=8867-4", adminToken, nil, &read); c != 200 || len(read.Points) != len(obs) {
		t.Fatalf("readings by patient after delete: %d, %d points, want %d", c, len(read.Points), len(obs))
	}
}

// In a cluster, a device revoked through one node's API loses its live session on another
// node's broker at once: the change travels as a device-access event on the bus.
func TestRevocationReachesOtherNodes(t *testing.T) {
	if !scaleOut {
		t.Skip("needs two nodes on PostgreSQL and NATS (runs in the scale-out pass)")
	}
	nodes, _ := twoNodes(t, node.AlarmsConfig{})
	a, b := nodes["a"], nodes["b"]
	_, dev := a.ward()
	s := dialDevice(t, b.n.MQTTAddr(), dev.ID, dev.MQTT.Password)
	if s.err != nil {
		t.Fatal(s.err)
	}
	if r := publish5(t, s.c, dev.MQTT.Topic, heartRate(dev.ID, 70)); r.ReasonCode != 0 {
		t.Fatalf("publish on node b: 0x%02x", r.ReasonCode)
	}
	if c := a.call("POST", "/api/v1/devices/"+dev.ID+"/revoke", adminToken, nil, nil); c != 200 {
		t.Fatalf("revoke on node a: %d", c)
	}
	s.ended(t, "credentials revoked")
	if again := dialDevice(t, b.n.MQTTAddr(), dev.ID, dev.MQTT.Password); again.err == nil || again.ack.ReasonCode != 0x86 {
		t.Fatalf("reconnect to node b after revocation: %v %+v", again.err, again.ack)
	}
}

// With --mqtt-client-ca, a gateway whose client certificate names it (CN = its device id)
// delivers over TLS without a password, for the devices registered behind it.
func TestMQTTClientCertificate(t *testing.T) {
	pki := uplinktest.NewPKI(t, "unused")
	e := startWith(t, func(c *node.Config) {
		c.MQTTTLSCert, c.MQTTTLSKey, c.MQTTClientCA = pki.ServerCert, pki.ServerKey, pki.CAFile
	})
	patient, mon := e.ward()
	gw := e.gatewayDevice()
	e.behind(gw, mon)
	certFile, keyFile := pki.Issue(t, gw.ID, x509.ExtKeyUsageClientAuth, nil, nil)
	tc, err := uplink.TLSConfig(pki.CAFile, certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	sp, err := spool.Open(t.TempDir(), spool.Options{NoSync: true, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	if _, err := sp.Put(context.Background(), spool.Entry{Device: mon.ID, Class: gateway.Spot, Payload: heartRate(mon.ID, 66)}); err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(e.n.MQTTAddr())
	u, err := uplink.New(uplink.Config{Spool: sp, URL: "mqtts://127.0.0.1:" + port, TLS: tc, Username: gw.ID, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- u.Run(ctx) }()
	defer func() { cancel(); <-done }()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		obs, err := e.n.Store().Observations(context.Background(), iomt.ObservationQuery{Patient: patient, Code: "8867-4", From: time.Now().Add(-time.Minute), To: time.Now()})
		if err == nil && len(obs) == 1 && obs[0].Value == 66 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not delivered with a client certificate: %+v, %v", obs, err)
		}
	}
	if _, err := node.Start(context.Background(), node.Config{DataDir: t.TempDir(), HTTPAddr: "127.0.0.1:0", MQTTAddr: "127.0.0.1:0",
		People: node.PeopleConfig{BootstrapToken: adminToken}, MQTTClientCA: pki.CAFile}); err == nil || !strings.Contains(err.Error(), "--mqtt-client-ca") {
		t.Fatalf("a client CA without TLS: %v", err)
	}
}
