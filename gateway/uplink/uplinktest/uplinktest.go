// Package uplinktest helps tests of the gateway's uplink: a throw-away PKI made with
// crypto/x509, and a real Mosquitto broker started on free loopback ports with TLS.
package uplinktest

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"
)

// MosquittoPath is where the broker binary is looked for.
const MosquittoPath = "/usr/sbin/mosquitto"

// PKI is a CA and the certificates it signed, as PEM files in Dir.
type PKI struct {
	Dir        string
	CAFile     string
	ServerCert string // for 127.0.0.1 and localhost
	ServerKey  string
	ClientCert string // CN = the client name given to NewPKI
	ClientKey  string

	caCert *x509.Certificate
	caKey  *ecdsa.PrivateKey
}

// NewPKI makes a CA, a server certificate for loopback and a client certificate whose common
// name is client.
func NewPKI(t testing.TB, client string) *PKI {
	t.Helper()
	p := &PKI{Dir: t.TempDir()}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "iomt test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	p.caCert, _ = x509.ParseCertificate(der)
	p.caKey = key
	p.CAFile = p.write(t, "ca.pem", "CERTIFICATE", der)
	p.ServerCert, p.ServerKey = p.Issue(t, "server", x509.ExtKeyUsageServerAuth, []string{"localhost"}, []net.IP{net.IPv4(127, 0, 0, 1)})
	p.ClientCert, p.ClientKey = p.Issue(t, client, x509.ExtKeyUsageClientAuth, nil, nil)
	return p
}

var serial int64 = 100

// Issue signs a new certificate and returns its certificate and key files.
func (p *PKI) Issue(t testing.TB, cn string, usage x509.ExtKeyUsage, dns []string, ips []net.IP) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial++
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
		DNSNames: dns, IPAddresses: ips,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.caCert, &key.PublicKey, p.caKey)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	name := strings.ReplaceAll(cn, "/", "_")
	return p.write(t, name+".pem", "CERTIFICATE", der), p.write(t, name+".key", "EC PRIVATE KEY", kder)
}

func (p *PKI) write(t testing.TB, name, typ string, der []byte) string {
	t.Helper()
	path := filepath.Join(p.Dir, name)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// Mosquitto is a broker process with a TLS listener that requires a client certificate
// signed by the PKI (its common name is the username) and a plain loopback listener for test
// subscribers. (per_listener_settings would be tidier, but Mosquitto 2.0.11 then delivers
// nothing to a persistent session restored after a restart.)
type Mosquitto struct {
	TLSAddr   string // host:port
	PlainAddr string
	conf      string
	cmd       *exec.Cmd
	log       string
	exited    chan struct{}
}

// FreePort returns a loopback port nobody listens on at the moment.
func FreePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// StartMosquitto starts a broker, skipping the test when the binary is absent. It is
// killed when the test ends.
func StartMosquitto(t testing.TB, p *PKI) *Mosquitto {
	t.Helper()
	if _, err := os.Stat(MosquittoPath); err != nil {
		t.Skipf("%s is not installed: skipping a test against Mosquitto", MosquittoPath)
	}
	dir := t.TempDir()
	m := &Mosquitto{conf: filepath.Join(dir, "mosquitto.conf"), log: filepath.Join(dir, "mosquitto.log")}
	// A port found free may be taken before mosquitto binds it (other tests run alongside):
	// then mosquitto exits, and the broker is tried again on other ports.
	var err error
	for range 3 {
		m.TLSAddr = "127.0.0.1:" + strconv.Itoa(FreePort(t))
		m.PlainAddr = "127.0.0.1:" + strconv.Itoa(FreePort(t))
		m.writeConf(t, dir, p)
		if err = m.start(); err == nil {
			t.Cleanup(func() { m.Stop(t) })
			return m
		}
	}
	t.Fatal(err)
	return nil
}

func (m *Mosquitto) writeConf(t testing.TB, dir string, p *PKI) {
	t.Helper()
	_, tlsPort, _ := net.SplitHostPort(m.TLSAddr)
	_, plainPort, _ := net.SplitHostPort(m.PlainAddr)
	// Run as root, mosquitto would drop to user "mosquitto", who cannot read the test's
	// private temporary directory: keep the invoking user.
	user := ""
	if os.Geteuid() == 0 {
		user = "user root\n"
	}
	conf := fmt.Sprintf(user+`allow_anonymous true
persistence true
persistence_location %s/
autosave_interval 1
max_queued_messages 0
max_inflight_messages 0
set_tcp_nodelay true
log_dest file %s
log_type error
log_type warning
log_type notice
connection_messages true
listener %s 127.0.0.1
cafile %s
certfile %s
keyfile %s
require_certificate true
use_identity_as_username true
listener %s 127.0.0.1
`, dir, m.log, tlsPort, p.CAFile, p.ServerCert, p.ServerKey, plainPort)
	if err := os.WriteFile(m.conf, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
}

// Start (re)starts the broker on its ports and waits until both accept connections.
func (m *Mosquitto) Start(t testing.TB) {
	t.Helper()
	if err := m.start(); err != nil {
		t.Fatal(err)
	}
}

func (m *Mosquitto) start() error {
	m.cmd = exec.Command(MosquittoPath, "-c", m.conf)
	stderr, err := os.OpenFile(m.log+".stderr", os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	defer stderr.Close()
	m.cmd.Stderr = stderr
	if err := m.cmd.Start(); err != nil {
		return fmt.Errorf("starting mosquitto: %w", err)
	}
	m.exited = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) { _ = cmd.Wait(); close(done) }(m.cmd, m.exited)
	fail := func(format string, args ...any) error {
		m.Stop(nil)
		log, _ := os.ReadFile(m.log)
		errs, _ := os.ReadFile(m.log + ".stderr")
		return fmt.Errorf(format+"\n%s%s", append(args, log, errs)...)
	}
	deadline := time.Now().Add(10 * time.Second)
	for _, a := range []string{m.TLSAddr, m.PlainAddr} {
		for {
			select {
			case <-m.exited:
				return fail("mosquitto exited at start (port taken?)")
			default:
			}
			c, err := net.DialTimeout("tcp", a, time.Second)
			if err == nil {
				c.Close()
				break
			}
			if time.Now().After(deadline) {
				return fail("mosquitto did not listen on %s: %v", a, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	// Something else may have answered on a port mosquitto then failed to bind.
	select {
	case <-m.exited:
		return fail("mosquitto exited at start (port taken?)")
	case <-time.After(50 * time.Millisecond):
	}
	return nil
}

// Stop terminates the broker and waits for it; a stopped broker is left alone. t may be nil.
func (m *Mosquitto) Stop(t testing.TB) {
	if m.cmd == nil || m.cmd.Process == nil {
		return
	}
	_ = m.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-m.exited:
	case <-time.After(10 * time.Second):
		_ = m.cmd.Process.Kill()
		<-m.exited
	}
	m.cmd = nil
}

// Log returns what the broker logged, for failure messages.
func (m *Mosquitto) Log() string {
	b, _ := os.ReadFile(m.log)
	return string(b)
}

// Message is what a Subscriber received.
type Message struct {
	Topic   string
	Seq     uint64 // the "seq" user property; 0 when absent
	Class   string // the "class" user property
	Payload []byte
}

// Subscriber records every message on a topic filter, in arrival order. Its session outlives
// broker restarts (the broker persists it), so it misses nothing published while it reconnects.
type Subscriber struct {
	mu   sync.Mutex
	msgs []Message
	up   chan struct{}
}

// Subscribe connects to addr (plain MQTT 5) and subscribes to filter with QoS 1.
func Subscribe(t testing.TB, addr, filter string) *Subscriber {
	t.Helper()
	s := &Subscriber{up: make(chan struct{}, 1)}
	u, _ := url.Parse("mqtt://" + addr)
	ctx, cancel := context.WithCancel(context.Background())
	id := fmt.Sprintf("test-subscriber-%d", time.Now().UnixNano())
	cm, err := autopaho.NewConnection(ctx, autopaho.ClientConfig{
		ServerUrls: []*url.URL{u}, KeepAlive: 10,
		SessionExpiryInterval: 3600, ReconnectBackoff: autopaho.NewConstantBackoff(100 * time.Millisecond),
		OnConnectionUp: func(cm *autopaho.ConnectionManager, ca *paho.Connack) {
			if !ca.SessionPresent {
				sctx, c := context.WithTimeout(ctx, 5*time.Second)
				defer c()
				if _, err := cm.Subscribe(sctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: filter, QoS: 1}}}); err != nil {
					t.Errorf("subscribe: %v", err)
				}
			}
			select {
			case s.up <- struct{}{}:
			default:
			}
		},
		ClientConfig: paho.ClientConfig{
			ClientID: id,
			OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(r paho.PublishReceived) (bool, error) {
				m := Message{Topic: r.Packet.Topic, Payload: bytes.Clone(r.Packet.Payload)}
				if r.Packet.Properties != nil {
					m.Seq, _ = strconv.ParseUint(r.Packet.Properties.User.Get("seq"), 10, 64)
					m.Class = r.Packet.Properties.User.Get("class")
				}
				s.mu.Lock()
				s.msgs = append(s.msgs, m)
				s.mu.Unlock()
				return true, nil
			}},
		},
	})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		dctx, c := context.WithTimeout(context.Background(), 5*time.Second)
		defer c()
		_ = cm.Disconnect(dctx)
		cancel()
	})
	select {
	case <-s.up:
	case <-time.After(10 * time.Second):
		t.Fatal("test subscriber did not connect")
	}
	return s
}

// Messages returns a copy of what arrived so far.
func (s *Subscriber) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Message(nil), s.msgs...)
}

// WaitFor polls until done says yes about the messages, or fails the test after timeout.
func (s *Subscriber) WaitFor(t testing.TB, timeout time.Duration, what string, done func([]Message) bool) []Message {
	t.Helper()
	return s.waitFor(t, timeout, what, done)
}

func (s *Subscriber) waitFor(t testing.TB, timeout time.Duration, what string, done func([]Message) bool) []Message {
	deadline := time.Now().Add(timeout)
	for {
		ms := s.Messages()
		if done(ms) {
			return ms
		}
		if time.Now().After(deadline) {
			t.Errorf("timed out after %v waiting for %s (%d messages so far)", timeout, what, len(ms))
			return ms
		}
		time.Sleep(20 * time.Millisecond)
	}
}
