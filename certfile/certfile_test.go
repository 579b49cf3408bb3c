package certfile

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// writePair writes a self-signed certificate for 127.0.0.1 with the given serial, and its key.
func writePair(t testing.TB, certFile, keyFile string, serial int64, notAfter time.Time) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "iomt test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: notAfter, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	replace(t, certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	replace(t, keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}))
}

// replace swaps a file's content by rename, as renewal tools do.
func replace(t testing.TB, path string, data []byte) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// served starts a TLS listener with the pair and returns the serial a new handshake sees.
func served(t *testing.T, p *Pair) func() int64 {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", p.ServerConfig())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { _ = c.(*tls.Conn).Handshake(); c.Close() }()
		}
	}()
	return func() int64 {
		t.Helper()
		c, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{InsecureSkipVerify: true}) // the serial is what is checked
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0].SerialNumber.Int64()
	}
}

type logBuf struct{ bytes.Buffer }

func (b *logBuf) logger() *slog.Logger { return slog.New(slog.NewTextHandler(&b.Buffer, nil)) }

func TestReloadOnChange(t *testing.T) {
	dir := t.TempDir()
	cf, kf := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	writePair(t, cf, kf, 1001, time.Now().Add(90*24*time.Hour))
	var logs logBuf
	p, err := Load(cf, kf, logs.logger())
	if err != nil {
		t.Fatal(err)
	}
	serial := served(t, p)
	if s := serial(); s != 1001 {
		t.Fatalf("serial %d, want 1001", s)
	}

	// Renewed: the next handshake sees the new certificate, with no restart.
	writePair(t, cf, kf, 1002, time.Now().Add(90*24*time.Hour))
	if s := serial(); s != 1002 {
		t.Fatalf("after renewal: serial %d, want 1002", s)
	}
	if !strings.Contains(logs.String(), "TLS certificate reloaded") || !strings.Contains(logs.String(), "serial=1002") {
		t.Errorf("reload not logged:\n%s", logs.String())
	}

	// A certificate whose key has not been written yet: the previous pair goes on serving, and
	// the failure is logged once however many handshakes see it.
	writePair(t, cf, kf+".next", 1003, time.Now().Add(90*24*time.Hour))
	for range 3 {
		if s := serial(); s != 1002 {
			t.Fatalf("with a mismatched key: serial %d, want the previous 1002", s)
		}
	}
	if n := strings.Count(logs.String(), "do not load"); n != 1 {
		t.Errorf("broken pair logged %d times:\n%s", n, logs.String())
	}
	if !strings.Contains(logs.String(), "private key does not match public key") {
		t.Errorf("reason not logged:\n%s", logs.String())
	}
	// The key arrives: the new pair serves.
	next, err := os.ReadFile(kf + ".next")
	if err != nil {
		t.Fatal(err)
	}
	replace(t, kf, next)
	if s := serial(); s != 1003 {
		t.Fatalf("once the key arrived: serial %d, want 1003", s)
	}

	// Garbage and a missing file keep the current pair too.
	replace(t, cf, []byte("not a certificate"))
	if s := serial(); s != 1003 {
		t.Fatalf("with garbage: serial %d", s)
	}
	if err := os.Remove(kf); err != nil {
		t.Fatal(err)
	}
	if s := serial(); s != 1003 {
		t.Fatalf("with the key missing: serial %d", s)
	}
}

func TestLoadRefusals(t *testing.T) {
	dir := t.TempDir()
	cf, kf := filepath.Join(dir, "a.crt"), filepath.Join(dir, "a.key")
	if _, err := Load(cf, kf, nil); err == nil || !strings.Contains(err.Error(), "a.crt") {
		t.Errorf("missing files: %v", err)
	}
	if _, err := Load("", kf, nil); err == nil || !strings.Contains(err.Error(), "both a certificate file and a key file") {
		t.Errorf("no certificate file: %v", err)
	}
	writePair(t, cf, kf, 7, time.Now().Add(time.Hour))
	other := filepath.Join(dir, "b.key")
	writePair(t, filepath.Join(dir, "b.crt"), other, 8, time.Now().Add(time.Hour))
	if _, err := Load(cf, other, nil); err == nil || !strings.Contains(err.Error(), "does not match") {
		t.Errorf("mismatched key: %v", err)
	}
	// One about to expire loads, with a warning.
	var logs logBuf
	if _, err := Load(cf, kf, logs.logger()); err != nil || !strings.Contains(logs.String(), "expires within two weeks") {
		t.Errorf("expiring soon: %v\n%s", err, logs.String())
	}
}

func TestServerConfigRefusesOldTLS(t *testing.T) {
	dir := t.TempDir()
	cf, kf := filepath.Join(dir, "c.crt"), filepath.Join(dir, "c.key")
	writePair(t, cf, kf, 9, time.Now().Add(30*24*time.Hour))
	p, err := Load(cf, kf, nil)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", p.ServerConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err == nil {
			_ = c.(*tls.Conn).Handshake()
			c.Close()
		}
	}()
	_, err = tls.Dial("tcp", ln.Addr().String(), &tls.Config{InsecureSkipVerify: true, MaxVersion: tls.VersionTLS11})
	if err == nil {
		t.Fatal("a TLS 1.1 client was served")
	}
}

// The cost each handshake pays for noticing renewals (two stats), next to nothing of a
// handshake's own.
func BenchmarkCertificate(b *testing.B) {
	dir := b.TempDir()
	cf, kf := filepath.Join(dir, "c.crt"), filepath.Join(dir, "c.key")
	writePair(b, cf, kf, 9, time.Now().Add(30*24*time.Hour))
	p, err := Load(cf, kf, nil)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		_ = p.Certificate()
	}
}
