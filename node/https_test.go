package node_test

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/iomt/iomt/gateway/uplink/uplinktest"
	"github.com/iomt/iomt/node"
)

// installPair copies a certificate and key to the files a node serves, by rename, as renewal
// tools replace them.
func installPair(t *testing.T, certSrc, keySrc, certDst, keyDst string) {
	t.Helper()
	for _, f := range [][2]string{{certSrc, certDst}, {keySrc, keyDst}} {
		data, err := os.ReadFile(f[0])
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(f[1]+".tmp", data, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(f[1]+".tmp", f[1]); err != nil {
			t.Fatal(err)
		}
	}
}

func serialOf(t *testing.T, certFile string) string {
	t.Helper()
	pair, err := tls.LoadX509KeyPair(certFile, strings.TrimSuffix(certFile, ".pem")+".key")
	if err != nil {
		t.Fatal(err)
	}
	return pair.Leaf.SerialNumber.String()
}

// With --tls-cert/--tls-key the API, FHIR and dashboard are HTTPS only, with HSTS; renewed
// certificate files are served from the next handshake on, without a restart, and a broken
// renewal keeps the previous certificate. The MQTT broker's certificate reloads the same way.
func TestHTTPSEndToEnd(t *testing.T) {
	pki := uplinktest.NewPKI(t, "unused")
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "https.crt"), filepath.Join(dir, "https.key")
	mqttCert, mqttKey := filepath.Join(dir, "mqtt.crt"), filepath.Join(dir, "mqtt.key")
	installPair(t, pki.ServerCert, pki.ServerKey, certFile, keyFile)
	installPair(t, pki.ServerCert, pki.ServerKey, mqttCert, mqttKey)
	first := serialOf(t, pki.ServerCert)
	var logs syncBuffer
	e := startWith(t, func(c *node.Config) {
		c.HTTPTLSCert, c.HTTPTLSKey = certFile, keyFile
		c.MQTTTLSCert, c.MQTTTLSKey = mqttCert, mqttKey
		c.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	})
	if !e.n.HTTPS() || !strings.HasPrefix(e.n.URL(), "https://127.0.0.1:") {
		t.Fatalf("HTTPS %v, URL %s", e.n.HTTPS(), e.n.URL())
	}
	e.base = e.n.URL()
	ca, err := os.ReadFile(pki.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(ca)

	// get does a request on a new connection (a new handshake) with a verifying client.
	get := func(path string) (*http.Response, string) {
		t.Helper()
		c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}, DisableKeepAlives: true}}
		req, _ := http.NewRequest("GET", e.base+path, nil)
		req.Header.Set("Authorization", "Bearer "+adminToken)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp, string(body)
	}
	for _, path := range []string{"/healthz", "/api/v1/patients", "/fhir/r4/metadata", "/"} {
		resp, body := get(path)
		if resp.StatusCode != 200 {
			t.Fatalf("GET %s: %d %s", path, resp.StatusCode, body)
		}
		if h := resp.Header.Get("Strict-Transport-Security"); h != "max-age=31536000" {
			t.Errorf("GET %s: Strict-Transport-Security %q", path, h)
		}
		if resp.TLS == nil || resp.TLS.Version < tls.VersionTLS12 || resp.TLS.PeerCertificates[0].SerialNumber.String() != first {
			t.Fatalf("GET %s: TLS state %+v", path, resp.TLS)
		}
	}
	// The API works end to end over HTTPS (the test client verifies the server: e.call uses
	// http.DefaultClient, so give it the CA for this test).
	saved := http.DefaultClient
	http.DefaultClient = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}
	t.Cleanup(func() { http.DefaultClient = saved })
	patient, _ := e.ward()
	if resp, body := get("/api/v1/patients/" + patient); resp.StatusCode != 200 || !strings.Contains(body, "Ada Lovelace") {
		t.Fatalf("patient over HTTPS: %d %s", resp.StatusCode, body)
	}

	// Plain HTTP on the HTTPS port gets nothing but a refusal; TLS 1.1 gets no handshake.
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Get("http://" + e.n.HTTPAddr() + "/api/v1/patients")
	if err == nil {
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || strings.Contains(string(body), "Ada") {
			t.Errorf("plain HTTP to the HTTPS port: %d %s", resp.StatusCode, body)
		}
	}
	if c, err := tls.Dial("tcp", e.n.HTTPAddr(), &tls.Config{RootCAs: roots, MaxVersion: tls.VersionTLS11}); err == nil {
		c.Close()
		t.Error("a TLS 1.1 client was served")
	}

	// Renewal: a new certificate and key replace the files; the next handshake sees it.
	newCert, newKey := pki.Issue(t, "renewed", x509.ExtKeyUsageServerAuth, []string{"localhost"}, []net.IP{net.IPv4(127, 0, 0, 1)})
	second := serialOf(t, newCert)
	installPair(t, newCert, newKey, certFile, keyFile)
	if resp, _ := get("/healthz"); resp.TLS.PeerCertificates[0].SerialNumber.String() != second {
		t.Fatalf("after renewal: serial %s, want %s", resp.TLS.PeerCertificates[0].SerialNumber, second)
	}
	// A renewal gone wrong (a truncated certificate) keeps the working one, loudly.
	if err := os.WriteFile(certFile, []byte("-----BEGIN CERTIFICATE-----\nMIIB"), 0o600); err != nil {
		t.Fatal(err)
	}
	if resp, _ := get("/healthz"); resp.TLS.PeerCertificates[0].SerialNumber.String() != second {
		t.Fatalf("after a broken renewal: serial %s, want %s", resp.TLS.PeerCertificates[0].SerialNumber, second)
	}
	if l := logs.String(); !strings.Contains(l, "level=ERROR") || !strings.Contains(l, "still serving the previous certificate") ||
		!strings.Contains(l, "listener=https") {
		t.Errorf("broken renewal not logged as an error:\n%s", l)
	}

	// The MQTT broker's certificate is reloaded too.
	mqttSerial := func() string {
		t.Helper()
		c, err := tls.Dial("tcp", e.n.MQTTAddr(), &tls.Config{RootCAs: roots})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0].SerialNumber.String()
	}
	if s := mqttSerial(); s != first {
		t.Fatalf("mqtt serial %s, want %s", s, first)
	}
	installPair(t, newCert, newKey, mqttCert, mqttKey)
	if s := mqttSerial(); s != second {
		t.Fatalf("mqtt after renewal: serial %s, want %s", s, second)
	}
	if len(e.n.Warnings()) != 0 {
		t.Errorf("warnings on loopback with TLS: %v", e.n.Warnings())
	}
}

// A node that other machines can reach without TLS says so at start, naming the address and
// the flags that fix it; on loopback, or with TLS, it says nothing.
func TestPlaintextWarnings(t *testing.T) {
	var logs syncBuffer
	e := startWith(t, func(c *node.Config) {
		c.HTTPAddr, c.MQTTAddr = "0.0.0.0:0", "0.0.0.0:0" // every interface: reachable from the network
		c.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	})
	w := e.n.Warnings()
	if len(w) != 2 {
		t.Fatalf("warnings %q", w)
	}
	_, httpPort, _ := net.SplitHostPort(e.n.HTTPAddr())
	_, mqttPort, _ := net.SplitHostPort(e.n.MQTTAddr())
	for i, want := range [][]string{{"HTTP API", ":" + httpPort, "WITHOUT TLS", "--tls-cert and --tls-key"},
		{"MQTT broker", ":" + mqttPort, "WITHOUT TLS", "--mqtt-tls-cert and --mqtt-tls-key"}} {
		for _, s := range want {
			if !strings.Contains(w[i], s) {
				t.Errorf("warning %q lacks %q", w[i], s)
			}
		}
	}
	if l := logs.String(); strings.Count(l, "level=WARN") < 2 || !strings.Contains(l, "--tls-cert and --tls-key") {
		t.Errorf("warnings not logged:\n%s", l)
	}

	pki := uplinktest.NewPKI(t, "unused")
	secure := startWith(t, func(c *node.Config) {
		c.HTTPAddr, c.MQTTAddr = "0.0.0.0:0", "0.0.0.0:0"
		c.HTTPTLSCert, c.HTTPTLSKey = pki.ServerCert, pki.ServerKey
		c.MQTTTLSCert, c.MQTTTLSKey = pki.ServerCert, pki.ServerKey
	})
	if w := secure.n.Warnings(); len(w) != 0 {
		t.Errorf("warnings with TLS: %q", w)
	}
	if w := start(t).n.Warnings(); len(w) != 0 {
		t.Errorf("warnings on loopback: %q", w)
	}
}

// A certificate that does not load stops the node at start, naming the flags.
func TestTLSConfigRefused(t *testing.T) {
	pki := uplinktest.NewPKI(t, "unused")
	for _, tc := range []struct {
		name string
		edit func(*node.Config)
		want string
	}{
		{"key missing", func(c *node.Config) { c.HTTPTLSCert = pki.ServerCert }, "give both --tls-cert and --tls-key"},
		{"mismatched", func(c *node.Config) { c.HTTPTLSCert, c.HTTPTLSKey = pki.ServerCert, pki.ClientKey }, "https TLS certificate (--tls-cert, --tls-key)"},
		{"mqtt unreadable", func(c *node.Config) { c.MQTTTLSCert, c.MQTTTLSKey = pki.ServerCert+".gone", pki.ServerKey }, "mqtt TLS certificate (--mqtt-tls-cert, --mqtt-tls-key)"},
	} {
		cfg := node.Config{DataDir: t.TempDir(), HTTPAddr: "127.0.0.1:0", MQTTAddr: "127.0.0.1:0", People: node.PeopleConfig{BootstrapToken: adminToken}}
		tc.edit(&cfg)
		n, err := node.Start(t.Context(), cfg)
		if err == nil {
			n.Close()
			t.Errorf("%s: started", tc.name)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
}
