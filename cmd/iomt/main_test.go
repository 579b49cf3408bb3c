package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
)

// build compiles the binary once per test run.
func build(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs the binary; skipped with -short")
	}
	bin := filepath.Join(t.TempDir(), "iomt")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

type server struct {
	cmd    *exec.Cmd
	http   string
	mqtt   string
	stderr *bytes.Buffer
	exited chan error
}

func startServer(t *testing.T, bin, dataDir string, extra ...string) *server {
	t.Helper()
	s := &server{http: freeAddr(t), mqtt: freeAddr(t), stderr: &bytes.Buffer{}, exited: make(chan error, 1)}
	args := append([]string{"serve", "--data-dir", dataDir, "--http-addr", s.http, "--mqtt-addr", s.mqtt, "--log-level", "warn"}, extra...)
	s.cmd = exec.Command(bin, args...)
	s.cmd.Env = append(os.Environ(), "IOMT_BOOTSTRAP_TOKEN=secret-admin-bootstrap")
	s.cmd.Stderr = s.stderr
	stdout, _ := s.cmd.StdoutPipe()
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "iomt serving") {
				close(ready)
			}
		}
	}()
	go func() { s.exited <- s.cmd.Wait() }()
	select {
	case <-ready:
	case err := <-s.exited:
		t.Fatalf("server exited: %v\n%s", err, s.stderr)
	case <-time.After(20 * time.Second):
		t.Fatalf("server did not start\n%s", s.stderr)
	}
	t.Cleanup(func() { _ = s.cmd.Process.Kill() })
	return s
}

func (s *server) api(t *testing.T, method, path string, body, out any) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, "http://"+s.http+path, rd)
	req.Header.Set("Authorization", "Bearer secret-admin-bootstrap")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, b)
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		t.Fatal(err)
	}
}

// TestKill9LosesNoAcknowledgedReading publishes from several devices over MQTT QoS 1, kills the
// server with SIGKILL mid-stream, restarts it on the same data directory and checks that every
// reading whose PUBACK arrived is stored, exactly once.
func TestKill9LosesNoAcknowledgedReading(t *testing.T) {
	bin := build(t)
	dir := t.TempDir()
	s := startServer(t, bin, dir)

	const devices, perPack = 8, 10
	type dev struct {
		patient, id, user, pass, topic string
	}
	var devs []dev
	for i := 0; i < devices; i++ {
		var p struct{ ID string }
		s.api(t, "POST", "/api/v1/patients", map[string]string{"name": fmt.Sprintf("patient %d", i)}, &p)
		var d struct {
			ID   string
			MQTT struct{ Username, Password, Topic string }
		}
		s.api(t, "POST", "/api/v1/devices", map[string]string{"patient": p.ID, "kind": "pulse-oximeter"}, &d)
		devs = append(devs, dev{p.ID, d.ID, d.MQTT.Username, d.MQTT.Password, d.MQTT.Topic})
	}

	base := time.Now().Add(-24 * time.Hour).Truncate(time.Second)
	acked := make([]int, devices) // packs acknowledged per device
	var ackedPacks atomic.Int64
	var wg sync.WaitGroup
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for i, d := range devs {
		wg.Add(1)
		go func(i int, d dev) {
			defer wg.Done()
			conn, err := net.Dial("tcp", s.mqtt)
			if err != nil {
				t.Error(err)
				return
			}
			c := paho.NewClient(paho.ClientConfig{Conn: conn, ClientID: d.id})
			if _, err := c.Connect(ctx, &paho.Connect{KeepAlive: 30, CleanStart: true, ClientID: d.id, Username: d.user, UsernameFlag: true, Password: []byte(d.pass), PasswordFlag: true}); err != nil {
				t.Error(err)
				return
			}
			for pack := 0; ctx.Err() == nil; pack++ {
				var b strings.Builder
				b.WriteString("[")
				for k := 0; k < perPack; k++ {
					if k > 0 {
						b.WriteString(",")
					}
					n := pack*perPack + k
					fmt.Fprintf(&b, `{"n":"hr","u":"/min","v":%d,"t":%d}`, 40+n%100, base.Unix()+int64(n))
				}
				b.WriteString("]")
				pctx, pcancel := context.WithTimeout(ctx, 5*time.Second)
				r, err := c.Publish(pctx, &paho.Publish{Topic: d.topic, QoS: 1, Payload: []byte(b.String())})
				pcancel()
				if err != nil {
					return // the server died: this pack was not acknowledged
				}
				if r.ReasonCode != 0 || r.Properties != nil && r.Properties.ReasonString != "" {
					t.Errorf("pack refused: 0x%02x %+v", r.ReasonCode, r.Properties)
					return
				}
				acked[i] = pack + 1
				ackedPacks.Add(1)
			}
		}(i, d)
	}
	// Mid-stream: after 1.5 s and once every device has had packs acknowledged (a slow
	// machine may take longer to connect them all).
	time.Sleep(1500 * time.Millisecond)
	for deadline := time.Now().Add(20 * time.Second); ackedPacks.Load() < 2*devices && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
	}
	if err := s.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-s.exited
	wg.Wait()
	total := 0
	for _, n := range acked {
		total += n * perPack
	}
	if total == 0 {
		t.Fatal("nothing was acknowledged before the kill")
	}
	t.Logf("%d readings acknowledged before kill -9", total)

	s2 := startServer(t, bin, dir)
	from := base.Add(-time.Minute).Format(time.RFC3339)
	to := base.Add(25 * time.Hour).Format(time.RFC3339)
	for i, d := range devs {
		var series struct {
			Points []struct {
				Time  time.Time
				Value float64
			}
		}
		s2.api(t, "GET", "/api/v1/patients/"+d.patient+"/observations?code=hr&from="+from+"&to="+to, nil, &series)
		seen := map[int64]bool{}
		for _, p := range series.Points {
			sec := p.Time.Unix()
			if seen[sec] {
				t.Fatalf("device %d: reading at %s stored twice", i, p.Time)
			}
			seen[sec] = true
		}
		for n := 0; n < acked[i]*perPack; n++ {
			if !seen[base.Unix()+int64(n)] {
				t.Fatalf("device %d: acknowledged reading %d (of %d) lost", i, n, acked[i]*perPack)
			}
		}
	}
}

func TestServeGracefulAndPortTaken(t *testing.T) {
	bin := build(t)
	dir := t.TempDir()
	s := startServer(t, bin, dir)
	// A second server on the same MQTT port names the port and fails.
	out, err := exec.Command(bin, "serve", "--data-dir", t.TempDir(), "--http-addr", freeAddr(t), "--mqtt-addr", s.mqtt).CombinedOutput()
	if err == nil || !regexp.MustCompile(`mqtt address .* is already in use`).Match(out) {
		t.Fatalf("port taken: %v %s", err, out)
	}
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-s.exited:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", err, s.stderr)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("no exit after SIGTERM")
	}
}

func TestRunUsage(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"bogus"}, &out, &errb, func(string) string { return "" }); code != 2 || !strings.Contains(errb.String(), `unknown command "bogus"`) {
		t.Fatalf("bogus command: %d %s", code, errb.String())
	}
	errb.Reset()
	if code := run(context.Background(), []string{"serve", "--log-format", "xml"}, &out, &errb, func(string) string { return "" }); code != 2 || !strings.Contains(errb.String(), "--log-format must be text or json") {
		t.Fatalf("bad log format: %d %s", code, errb.String())
	}
	out.Reset()
	if code := run(context.Background(), []string{"version"}, &out, &errb, func(string) string { return "" }); code != 0 || !strings.HasPrefix(out.String(), "iomt ") {
		t.Fatalf("version: %d %s", code, out.String())
	}
}
