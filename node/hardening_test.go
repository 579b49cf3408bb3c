package node_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/iomt/iomt/ingest/mqtt"
	"github.com/iomt/iomt/node"
)

// waitLog waits until the node's log has a line holding every one of want.
func waitLog(t *testing.T, log *syncBuffer, want ...string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		for _, line := range strings.Split(log.String(), "\n") {
			ok := true
			for _, w := range want {
				ok = ok && strings.Contains(line, w)
			}
			if ok {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no log line with %q in:\n%s", want, log.String())
		}
	}
}

// hardened starts a node with small limits, logging to a buffer.
func hardened(t *testing.T) (*env, *syncBuffer) {
	logs := &syncBuffer{}
	e := startWith(t, func(c *node.Config) {
		c.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
		c.HTTPLimits = node.HTTPLimits{HeaderTimeout: 300 * time.Millisecond, BodyTimeout: 300 * time.Millisecond, IdleTimeout: 300 * time.Millisecond}
		c.MQTTLimits = mqtt.Limits{ConnectTimeout: 300 * time.Millisecond, MaxPendingPerSource: 4}
	})
	return e, logs
}

// closedWithin reads from c until the peer closes it, failing if that takes longer than d (a
// generous bound: the test asserts that the socket is reaped, not when).
func closedWithin(t *testing.T, c net.Conn, d time.Duration) []byte {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(d))
	got, err := io.ReadAll(c)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("connection still open after %v (read %q)", d, got)
	}
	return got
}

// trickle writes s one byte per interval until it is written or the peer closes the
// connection, in the background.
func trickle(c net.Conn, s string, interval time.Duration) {
	go func() {
		for i := range len(s) {
			if _, err := c.Write([]byte{s[i]}); err != nil {
				return
			}
			time.Sleep(interval)
		}
	}()
}

// A slow-loris client sending its headers a byte at a time is cut off at the header timeout,
// while a normal client is served meanwhile; a keep-alive connection left idle is closed too.
func TestSlowHeadersCutOff(t *testing.T) {
	e, _ := hardened(t)
	slow, err := net.Dial("tcp", e.n.HTTPAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	trickle(slow, "GET /healthz HTTP/1.1\r\nHost: iomt\r\nX-Padding: "+strings.Repeat("a", 200)+"\r\n\r\n", 50*time.Millisecond)
	time.Sleep(100 * time.Millisecond)
	var p struct{ ID string }
	if c := e.call("POST", "/api/v1/patients", adminToken, map[string]string{"name": "Grace Hopper"}, &p); c != http.StatusCreated {
		t.Errorf("a normal client while the slow one dribbles: %d", c)
	}
	if got := closedWithin(t, slow, 5*time.Second); bytes.Contains(got, []byte("200 OK")) {
		t.Errorf("the slow client was served: %q", got)
	}

	idle, err := net.Dial("tcp", e.n.HTTPAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	if _, err := idle.Write([]byte("GET /healthz HTTP/1.1\r\nHost: iomt\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(idle), nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("keep-alive request: %v %v", resp, err)
	}
	resp.Body.Close()
	closedWithin(t, idle, 5*time.Second) // idle after its request: closed by the server
}

// A request body dribbled slowly is answered 408 with the reason when the body timeout passes,
// the connection is closed and the event logged with the source; a normal client is served
// meanwhile, and a live stream (no body) outlives every timeout and goes on delivering.
func TestSlowBodyCutOff(t *testing.T) {
	e, logs := hardened(t)
	patient, dev := e.ward()

	req, _ := http.NewRequest("GET", e.base+"/api/v1/patients/"+patient+"/stream", nil)
	req.Header.Set("Authorization", "Bearer "+adminToken)
	stream, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Body.Close()
	observations := make(chan string, 16)
	go func() {
		sc := bufio.NewScanner(stream.Body)
		kind := ""
		for sc.Scan() {
			if k, ok := strings.CutPrefix(sc.Text(), "event: "); ok {
				kind = k
			}
			if strings.HasPrefix(sc.Text(), "data: ") && kind == "observation" {
				observations <- sc.Text()
			}
		}
		close(observations)
	}()

	slow, err := net.Dial("tcp", e.n.HTTPAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	body := `{"name":"` + strings.Repeat("a", 100) + `"}`
	head := fmt.Sprintf("POST /api/v1/patients HTTP/1.1\r\nHost: iomt\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", adminToken, len(body))
	if _, err := slow.Write([]byte(head)); err != nil {
		t.Fatal(err)
	}
	trickle(slow, body, 50*time.Millisecond)
	time.Sleep(100 * time.Millisecond)
	var p struct{ ID string }
	if c := e.call("POST", "/api/v1/patients", adminToken, map[string]string{"name": "Grace Hopper"}, &p); c != http.StatusCreated {
		t.Errorf("a normal client while the slow one dribbles: %d", c)
	}
	_ = slow.SetReadDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(slow)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("no answer to the dribbled body: %v", err)
	}
	msg, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusRequestTimeout || !strings.Contains(string(msg), "request body not received within 300ms") {
		t.Errorf("dribbled body: %d %s, want 408 with the reason", resp.StatusCode, msg)
	}
	// Closed: an end of stream, or a reset when the server closed while bytes were unread.
	if rest, err := io.ReadAll(br); (err != nil && !errors.Is(err, syscall.ECONNRESET)) || len(rest) > 0 {
		t.Errorf("connection not closed after the 408: %q %v", rest, err)
	}
	waitLog(t, logs, "http request body not received in time", "remote=127.0.0.1:", "path=/api/v1/patients")

	// The stream has outlived the header, body and idle timeouts (300 ms each) and still
	// delivers a reading sent now.
	time.Sleep(time.Second)
	if c := e.call("POST", "/api/v1/ingest", dev.Token, []byte(`[{"n":"rr","u":"/min","v":16}]`), nil); c != 200 {
		t.Fatalf("ingest: %d", c)
	}
	select {
	case ev, ok := <-observations:
		if !ok || !strings.Contains(ev, `"code":"9279-1"`) {
			t.Fatalf("stream: %q, open %v", ev, ok)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the live stream delivered nothing")
	}
}

// An idle TCP socket that never sends CONNECT is closed after the connect timeout and logged
// with its source, while a real device keeps publishing (every reading acknowledged as
// stored); sockets beyond the cap of not-logged-in connections from one source are refused
// at once, logged once, while a device from another address connects and publishes; once
// the flood is reaped, the source may connect again.
func TestMQTTIdleAndFloodedSockets(t *testing.T) {
	e, logs := hardened(t)
	_, dev := e.ward()
	c, _, err := connect5(t, e.n.MQTTAddr(), dev.MQTT.Username, dev.MQTT.Password)
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	published := make(chan error, 2)
	go func() {
		// The device publishes every 50 ms throughout; each must be stored (PUBACK 0).
		for i := 0; ; i++ {
			select {
			case <-stop:
				if i < 5 {
					published <- fmt.Errorf("only %d readings published during the test", i)
				}
				published <- nil
				return
			case <-time.After(50 * time.Millisecond):
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			r, err := c.Publish(ctx, &paho.Publish{Topic: dev.MQTT.Topic, QoS: 1,
				Payload: fmt.Appendf(nil, `[{"n":"hr","u":"/min","v":%d,"t":%d}]`, 60+i%40, time.Now().Add(-time.Hour).Unix()+int64(i))})
			cancel()
			switch {
			case err != nil:
				published <- fmt.Errorf("publish %d: %w", i, err)
				return
			case r.ReasonCode != 0:
				published <- fmt.Errorf("publish %d: reason 0x%02x %q", i, r.ReasonCode, reason(r))
				return
			}
		}
	}()

	idle, err := net.Dial("tcp", e.n.MQTTAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	closedWithin(t, idle, 5*time.Second)
	waitLog(t, logs, "mqtt connection closed: it did not log in", "remote=127.0.0.1", "connectTimeout=300ms")

	// A flood from 127.0.0.2: four sockets that never log in are held, the fifth and later
	// are refused at once (well before the connect timeout would close them).
	attacker := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}
	var flood []net.Conn
	defer func() {
		for _, f := range flood {
			f.Close()
		}
	}()
	for range 4 {
		f, err := attacker.Dial("tcp", e.n.MQTTAddr())
		if err != nil {
			t.Fatal(err)
		}
		flood = append(flood, f)
	}
	for range 3 {
		f, err := attacker.Dial("tcp", e.n.MQTTAddr())
		if err != nil {
			t.Fatal(err)
		}
		flood = append(flood, f)
		_ = f.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := f.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("a socket beyond the cap was not refused: %v", err)
		}
	}
	// Meanwhile another source's device connects and publishes.
	_, dev2 := e.ward()
	c2, _, err := connect5(t, e.n.MQTTAddr(), dev2.MQTT.Username, dev2.MQTT.Password)
	if err != nil {
		t.Fatalf("a device from another address during the flood: %v", err)
	}
	if r := publish5(t, c2, dev2.MQTT.Topic, fmt.Appendf(nil, `[{"n":"hr","u":"/min","v":70,"t":%d}]`, time.Now().Unix())); r.ReasonCode != 0 {
		t.Errorf("publish during the flood: 0x%02x %q", r.ReasonCode, reason(r))
	}
	waitLog(t, logs, "mqtt connection refused: too many connections from this address have not logged in", "remote=127.0.0.2", "limit=4")
	if n := strings.Count(logs.String(), "mqtt connection refused: too many"); n != 1 {
		t.Errorf("%d log lines for the refusals, want 1", n)
	}
	// The held ones are reaped at the connect timeout, and the source may connect again.
	for _, f := range flood[:4] {
		closedWithin(t, f, 5*time.Second)
	}
	waitLog(t, logs, "mqtt connections refused from this address", "remote=127.0.0.2", "refused=3")
	again, err := attacker.Dial("tcp", e.n.MQTTAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	_ = again.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	if _, err := again.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("after the flood was reaped, a new socket from the source was closed at once: %v", err)
	}

	close(stop)
	if err := <-published; err != nil {
		t.Errorf("the connected device was disturbed: %v", err)
	}
	e.waitMetric(t, `iomt_mqtt_refusals_total{reason="too_many_pending"} 3`, 5*time.Second)
	e.waitMetric(t, `iomt_mqtt_refusals_total{reason="connect_timeout"}`, 5*time.Second)
}

// A rule set with a costly rule (nested comprehensions) is refused through the API with 422,
// the rule, the field, the estimate and the limit, and nothing is saved; control characters
// in a silence's or an acknowledgement's text are refused with 422 naming the field.
func TestCostlyRuleAndHostileAlarmText(t *testing.T) {
	e := start(t)
	costly := []byte(`version: 1
rules:
  - id: spo2-low
    kind: threshold
    code: spo2
    below: [{limit: 90, priority: medium}]
  - id: everything-at-once
    kind: condition
    levels:
      - when: 'vitals.all(a, vitals.all(b, vitals.all(c, vitals[a] + vitals[b] + vitals[c] > 0.0)))'
        priority: high
`)
	var p struct {
		Status int
		Errors []struct{ Rule, Field, Detail string }
	}
	if code := e.call("PUT", "/api/v1/alarm-rules?tenant=default", adminToken, costly, &p); code != 422 || len(p.Errors) != 1 {
		t.Fatalf("costly rule: %d %+v, want 422 with one error", code, p)
	}
	if er := p.Errors[0]; er.Rule != "everything-at-once" || er.Field != "levels[0].when" ||
		!strings.Contains(er.Detail, "may cost up to") || !strings.Contains(er.Detail, "more than the limit of 10000") {
		t.Errorf("refusal %+v does not name the rule, field, estimate and limit", er)
	}
	if code := e.call("GET", "/api/v1/alarm-rules?tenant=default", adminToken, nil, nil); code != 404 {
		t.Errorf("the refused rule set was saved: %d", code)
	}

	patient, _ := e.ward()
	var prob struct{ Detail string }
	for _, c := range []struct {
		path string
		body map[string]string
		want string
	}{
		{"/api/v1/alarms/silence", map[string]string{"patient": patient, "for": "5m", "why": "wash\x00ing"}, `"why" has a control character (U+0000)`},
		{"/api/v1/alarms/silence", map[string]string{"patient": patient, "for": "5m", "rule": "hr\x1b[2J"}, `"rule" has a control character (U+001B)`},
		{"/api/v1/alarms/silence", map[string]string{"patient": patient, "for": "5m", "why": strings.Repeat("w", 4001)}, `"why" is 4001 bytes long, at most 4000`},
		{"/api/v1/alarms/silence", map[string]string{"patient": patient, "for": "5m", "device": "d\r\nX-Injected: 1"}, `"device" has a control character (U+000D)`},
	} {
		if code := e.call("POST", c.path, adminToken, c.body, &prob); code != 422 || !strings.Contains(prob.Detail, c.want) {
			t.Errorf("POST %s: %d %q, want 422 with %q", c.path, code, prob.Detail, c.want)
		}
	}
}
