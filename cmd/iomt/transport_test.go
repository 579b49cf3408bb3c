package main

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/iomt/iomt/gateway/uplink/uplinktest"
)

// lockedBuffer is an output serve writes to while the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// serveUntilStarted runs serve in-process until it says it is serving, then stops it and
// returns what it printed.
func serveUntilStarted(t *testing.T, args ...string) (stdout, stderr string) {
	t.Helper()
	var out, errb lockedBuffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	env := func(k string) string {
		if k == "IOMT_ADMIN_TOKEN" {
			return "transport-test-token"
		}
		return ""
	}
	go func() {
		done <- run(ctx, append([]string{"serve", "--data-dir", t.TempDir(), "--no-sync"}, args...), &out, &errb, env)
	}()
	for deadline := time.Now().Add(20 * time.Second); !strings.Contains(out.String(), "iomt serving"); time.Sleep(20 * time.Millisecond) {
		select {
		case code := <-done:
			cancel()
			t.Fatalf("serve exited with %d:\n%s%s", code, out.String(), errb.String())
		default:
		}
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("serve did not start:\n%s%s", out.String(), errb.String())
		}
	}
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("serve exited with %d:\n%s", code, errb.String())
	}
	return out.String(), errb.String()
}

// serve on every interface without TLS says so on stderr, whatever the log level; with
// --tls-cert and --mqtt-tls-cert it prints an https:// URL and no warning.
func TestServeWarnsOfPlaintext(t *testing.T) {
	out, errs := serveUntilStarted(t, "--http-addr", "0.0.0.0:0", "--mqtt-addr", "0.0.0.0:0", "--log-level", "error")
	if !strings.Contains(out, "API http://") {
		t.Errorf("stdout: %s", out)
	}
	for _, want := range []string{"iomt serve: WARNING: the HTTP API", "--tls-cert and --tls-key", "iomt serve: WARNING: the MQTT broker", "--mqtt-tls-cert and --mqtt-tls-key"} {
		if !strings.Contains(errs, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errs)
		}
	}

	pki := uplinktest.NewPKI(t, "unused")
	out, errs = serveUntilStarted(t, "--http-addr", "0.0.0.0:0", "--mqtt-addr", "0.0.0.0:0",
		"--tls-cert", pki.ServerCert, "--tls-key", pki.ServerKey, "--mqtt-tls-cert", pki.ServerCert, "--mqtt-tls-key", pki.ServerKey)
	if !strings.Contains(out, "API https://") || strings.Contains(errs, "WARNING") {
		t.Errorf("with TLS: stdout %s\nstderr %s", out, errs)
	}
}

// `iomt gateway` refuses a plaintext uplink to another machine at start, saying why and how
// to allow it; --allow-plaintext-uplink gets it past the uplink (here it then stops at an
// HTTP address in use, before connecting anywhere).
func TestGatewayRefusesPlaintextUplink(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	conf := filepath.Join(t.TempDir(), "gateway.yaml")
	doc := "data_dir: data\nuplink: {url: 'mqtt://cloud.example.org:1883'}\nhttp: {listen: '" + taken.Addr().String() + "'}\n"
	if err := os.WriteFile(conf, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	code := gatewayCommand(context.Background(), []string{"--config", conf}, &out, &errb)
	if code != 1 || !strings.Contains(errb.String(), "plaintext MQTT to another machine") || !strings.Contains(errb.String(), "--allow-plaintext-uplink") {
		t.Errorf("exit %d, stderr %s", code, errb.String())
	}
	errb.Reset()
	code = gatewayCommand(context.Background(), []string{"--config", conf, "--allow-plaintext-uplink"}, &out, &errb)
	if code != 1 || strings.Contains(errb.String(), "plaintext") || !strings.Contains(errb.String(), "http.listen") {
		t.Errorf("allowed: exit %d, stderr %s", code, errb.String())
	}
}
