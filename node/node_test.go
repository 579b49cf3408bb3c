package node_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	mqtt3 "github.com/eclipse/paho.mqtt.golang"

	"github.com/iomt/iomt/node"
)

const adminToken = "test-admin-token"

type env struct {
	t    *testing.T
	n    *node.Node
	base string
	pg   string // the node's PostgreSQL URL, in scale-out mode
}

func start(t *testing.T) *env { return startWith(t, nil) }

// startWith starts a node whose configuration edit may change.
func startWith(t *testing.T, edit func(*node.Config)) *env {
	t.Helper()
	cfg := node.Config{
		DataDir: t.TempDir(), HTTPAddr: "127.0.0.1:0", MQTTAddr: "127.0.0.1:0", People: node.PeopleConfig{BootstrapToken: adminToken},
		MaxPacketSize: 64 << 10, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	backends(t, &cfg)
	if edit != nil {
		edit(&cfg)
	}
	n, err := node.Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := n.Close(); err != nil {
			t.Error(err)
		}
	})
	return &env{t: t, n: n, base: "http://" + n.HTTPAddr(), pg: cfg.Postgres}
}

// call does an HTTP request and decodes the JSON reply into out (if not nil).
func (e *env) call(method, path, token string, body any, out any) int {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	default:
		data, _ := json.Marshal(b)
		rd = bytes.NewReader(data)
	}
	req, _ := http.NewRequest(method, e.base+path, rd)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			e.t.Fatalf("%s %s: %d %s: %v", method, path, resp.StatusCode, data, err)
		}
	}
	return resp.StatusCode
}

type device struct {
	ID    string `json:"id"`
	Token string `json:"token"`
	MQTT  struct {
		Host, Username, Password, Topic, CommandTopic string
	} `json:"mqtt"`
}

// waitMetric polls the node's /metrics until a line contains want, failing after timeout.
func (e *env) waitMetric(t *testing.T, want string, timeout time.Duration) {
	t.Helper()
	for deadline := time.Now().Add(timeout); ; time.Sleep(50 * time.Millisecond) {
		resp, err := http.Get(e.base + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		m, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if strings.Contains(string(m), want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("metrics lack %s", want)
		}
	}
}

func (e *env) ward() (patient string, dev device) {
	e.t.Helper()
	var p struct{ ID string }
	if c := e.call("POST", "/api/v1/patients", adminToken, map[string]string{"name": "Ada Lovelace", "birthDate": "1950-12-10"}, &p); c != 201 {
		e.t.Fatalf("create patient: %d", c)
	}
	if c := e.call("POST", "/api/v1/devices", adminToken, map[string]string{"patient": p.ID, "kind": "multi-parameter"}, &dev); c != 201 {
		e.t.Fatalf("create device: %d", c)
	}
	return p.ID, dev
}

func connect5(t *testing.T, addr, user, pass string) (*paho.Client, *paho.Connack, error) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c := paho.NewClient(paho.ClientConfig{Conn: conn, ClientID: user})
	ca, err := c.Connect(context.Background(), &paho.Connect{
		KeepAlive: 30, CleanStart: true, ClientID: user, // a device connects under its own id
		Username: user, UsernameFlag: true, Password: []byte(pass), PasswordFlag: true,
	})
	if err == nil {
		t.Cleanup(func() { _ = c.Disconnect(&paho.Disconnect{}) })
	}
	return c, ca, err
}

func publish5(t *testing.T, c *paho.Client, topic string, payload []byte) *paho.PublishResponse {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := c.Publish(ctx, &paho.Publish{Topic: topic, QoS: 1, Payload: payload})
	if err != nil && r == nil {
		t.Fatalf("publish: %v", err)
	}
	return r
}

func reason(r *paho.PublishResponse) string {
	if r.Properties == nil {
		return ""
	}
	return r.Properties.ReasonString
}

type series struct {
	Code, Unit string
	Points     []struct {
		Time  time.Time
		Value float64
		Count int
		Min   float64
		Max   float64
	}
}

func TestMQTT5EndToEnd(t *testing.T) {
	e := start(t)
	patient, dev := e.ward()
	if dev.MQTT.Topic != "iomt/v1/default/devices/"+dev.ID+"/senml" {
		t.Fatalf("topic %q", dev.MQTT.Topic)
	}
	c, _, err := connect5(t, e.n.MQTTAddr(), dev.MQTT.Username, dev.MQTT.Password)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().Truncate(time.Second)
	bt := float64(now.Unix())
	pack := fmt.Sprintf(`[{"bn":"urn:dev:id:%s:","bt":%v,"n":"hr","u":"beat/min","v":72},
		{"n":"MDC_PULS_OXIM_SAT_O2","u":"%%","v":97},
		{"n":"8310-5","u":"degF","v":98.6},
		{"n":"hr","t":1,"v":74},
		{"n":"hr","t":2,"v":400},
		{"n":"weight","u":"lb","v":154},
		{"n":"voltage","v":3},
		{"n":"battery","u":"%%EL","v":81}]`, dev.ID, bt)
	r := publish5(t, c, dev.MQTT.Topic, []byte(pack))
	if r.ReasonCode != 0 {
		t.Fatalf("puback reason code 0x%02x %q", r.ReasonCode, reason(r))
	}
	rs := reason(r)
	for _, want := range []string{"accepted 5", "refused 2", "record 4", "outside", "record 6", `unknown code "voltage"`} {
		if !strings.Contains(rs, want) {
			t.Errorf("puback reason %q lacks %q", rs, want)
		}
	}
	from := url.QueryEscape(now.Add(-time.Minute).Format(time.RFC3339)) + "&to=" + url.QueryEscape(now.Add(time.Minute).Format(time.RFC3339))
	var hr series
	e.call("GET", "/api/v1/patients/"+patient+"/observations?code=8867-4&from="+from, adminToken, nil, &hr)
	if hr.Code != "8867-4" || hr.Unit != "/min" || len(hr.Points) != 2 || hr.Points[0].Value != 72 || hr.Points[1].Value != 74 ||
		!hr.Points[0].Time.Equal(now) || !hr.Points[1].Time.Equal(now.Add(time.Second)) {
		t.Fatalf("heart rate: %+v", hr)
	}
	var temp series
	e.call("GET", "/api/v1/patients/"+patient+"/observations?code=temp&from="+from, adminToken, nil, &temp)
	if temp.Code != "8310-5" || temp.Unit != "Cel" || len(temp.Points) != 1 || math.Abs(temp.Points[0].Value-37) > 1e-9 {
		t.Fatalf("temperature: %+v", temp)
	}
	var vit struct {
		Vitals []struct {
			Code, Unit string
			Value      float64
		}
	}
	e.call("GET", "/api/v1/patients/"+patient+"/vitals", adminToken, nil, &vit)
	got := map[string]float64{}
	for _, v := range vit.Vitals {
		got[v.Code+" "+v.Unit] = v.Value
	}
	if got["8867-4 /min"] != 74 || got["59408-5 %"] != 97 || math.Abs(got["29463-7 kg"]-69.853) > 0.001 {
		t.Fatalf("vitals: %v", got)
	}
	var d struct {
		Battery  *float64
		LastSeen time.Time
	}
	e.call("GET", "/api/v1/devices/"+dev.ID, adminToken, nil, &d)
	if d.Battery == nil || *d.Battery != 81 || d.LastSeen.IsZero() {
		t.Fatalf("device status: %+v", d)
	}
	// A replay of the same pack stores nothing twice.
	r = publish5(t, c, dev.MQTT.Topic, []byte(pack))
	if !strings.Contains(reason(r), "accepted 0, duplicates 5") {
		t.Fatalf("replay: %q", reason(r))
	}
	e.call("GET", "/api/v1/patients/"+patient+"/observations?code=8867-4&from="+from, adminToken, nil, &hr)
	if len(hr.Points) != 2 {
		t.Fatalf("replay duplicated readings: %+v", hr.Points)
	}
}

func TestMQTTRefusals(t *testing.T) {
	e := start(t)
	_, good := e.ward()
	_, other := e.ward()

	// A healthy device publishes throughout; it must never be disturbed.
	gc, _, err := connect5(t, e.n.MQTTAddr(), good.MQTT.Username, good.MQTT.Password)
	if err != nil {
		t.Fatal(err)
	}
	okPack := func(i int) []byte {
		return fmt.Appendf(nil, `[{"n":"hr","u":"/min","v":%d,"t":%d}]`, 60+i, time.Now().Unix()-int64(100-i))
	}
	i := 0
	healthy := func() {
		t.Helper()
		r := publish5(t, gc, good.MQTT.Topic, okPack(i))
		i++
		if r.ReasonCode != 0 || reason(r) != "" {
			t.Fatalf("healthy device disturbed: 0x%02x %q", r.ReasonCode, reason(r))
		}
	}
	healthy()

	t.Run("wrong password v5", func(t *testing.T) {
		_, ca, err := connect5(t, e.n.MQTTAddr(), other.MQTT.Username, "wrong")
		if err == nil || ca == nil || ca.ReasonCode != 0x86 {
			t.Fatalf("connect with wrong password: %v %+v", err, ca)
		}
	})
	healthy()
	t.Run("wrong password v3", func(t *testing.T) {
		o := mqtt3.NewClientOptions().AddBroker("tcp://" + e.n.MQTTAddr()).SetUsername(other.MQTT.Username).SetPassword("wrong").SetClientID("v3bad").SetProtocolVersion(4).SetAutoReconnect(false)
		c := mqtt3.NewClient(o)
		tok := c.Connect()
		tok.Wait()
		if tok.Error() == nil || !strings.Contains(tok.Error().Error(), "not Authorized") && !strings.Contains(tok.Error().Error(), "bad user name or password") {
			t.Fatalf("v3 connect with wrong password: %v", tok.Error())
		}
	})
	healthy()
	t.Run("foreign topic v5", func(t *testing.T) {
		c, _, err := connect5(t, e.n.MQTTAddr(), other.MQTT.Username, other.MQTT.Password)
		if err != nil {
			t.Fatal(err)
		}
		r := publish5(t, c, good.MQTT.Topic, okPack(0))
		if r.ReasonCode != 0x87 {
			t.Fatalf("publish to a foreign topic: 0x%02x", r.ReasonCode)
		}
		sa, err := c.Subscribe(context.Background(), &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: good.MQTT.CommandTopic, QoS: 1}}})
		if err == nil && sa.Reasons[0] < 0x80 {
			t.Fatalf("subscribe to a foreign command topic granted: %v", sa.Reasons)
		}
		sa, err = c.Subscribe(context.Background(), &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: other.MQTT.CommandTopic, QoS: 1}}})
		if err != nil || sa.Reasons[0] >= 0x80 {
			t.Fatalf("subscribe to its own command topic: %v %v", err, sa)
		}
	})
	healthy()
	t.Run("foreign topic v3", func(t *testing.T) {
		lost := make(chan error, 1)
		o := mqtt3.NewClientOptions().AddBroker("tcp://" + e.n.MQTTAddr()).SetUsername(other.MQTT.Username).SetPassword(other.MQTT.Password).
			SetClientID(other.MQTT.Username).SetProtocolVersion(4).SetAutoReconnect(false).SetConnectionLostHandler(func(_ mqtt3.Client, err error) { lost <- err })
		c := mqtt3.NewClient(o)
		if tok := c.Connect(); tok.Wait() && tok.Error() != nil {
			t.Fatal(tok.Error())
		}
		c.Publish(good.MQTT.Topic, 1, false, okPack(0))
		select {
		case <-lost:
		case <-time.After(5 * time.Second):
			t.Fatal("v3 client publishing to a foreign topic was not disconnected")
		}
	})
	healthy()
	t.Run("malformed pack", func(t *testing.T) {
		c, _, err := connect5(t, e.n.MQTTAddr(), other.MQTT.Username, other.MQTT.Password)
		if err != nil {
			t.Fatal(err)
		}
		for _, bad := range []struct{ payload, want string }{
			{`{"n":"hr"}`, "malformed"},
			{`[{"n":"hr","v":"seventy"}]`, "record 0"},
			{`[{"n":"hr","v":70,"t":4000000000}]`, "ahead of server time"},
		} {
			r := publish5(t, c, other.MQTT.Topic, []byte(bad.payload))
			if r.ReasonCode != 0x99 || !strings.Contains(reason(r), bad.want) {
				t.Errorf("pack %s: 0x%02x %q, want 0x99 with %q", bad.payload, r.ReasonCode, reason(r), bad.want)
			}
		}
		// The same connection carries on with good data.
		r := publish5(t, c, other.MQTT.Topic, []byte(`[{"n":"spo2","v":95}]`))
		if r.ReasonCode != 0 {
			t.Fatalf("good pack after bad ones: 0x%02x %q", r.ReasonCode, reason(r))
		}
	})
	healthy()
	t.Run("oversized packet", func(t *testing.T) {
		c, _, err := connect5(t, e.n.MQTTAddr(), other.MQTT.Username, other.MQTT.Password)
		if err != nil {
			t.Fatal(err)
		}
		big := append([]byte(`[{"n":"hr","v":70,"vs":"`), bytes.Repeat([]byte("x"), 100<<10)...)
		big = append(big, `"}]`...)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if _, err := c.Publish(ctx, &paho.Publish{Topic: other.MQTT.Topic, QoS: 1, Payload: big}); err == nil {
			t.Fatal("oversized packet acknowledged")
		}
	})
	healthy()
	var m bytes.Buffer
	resp, err := http.Get(e.base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(&m, resp.Body)
	resp.Body.Close()
	for _, want := range []string{`iomt_mqtt_refusals_total{reason="bad_credentials"} 2`, `iomt_mqtt_refusals_total{reason="foreign_topic"}`, `iomt_ingest_packs_total{outcome="malformed",transport="mqtt"} 2`} {
		if !strings.Contains(m.String(), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

func TestHTTPIngestAndStream(t *testing.T) {
	e := start(t)
	patient, dev := e.ward()

	// Watch the patient's live stream while ingesting over HTTP.
	req, _ := http.NewRequest("GET", e.base+"/api/v1/patients/"+patient+"/stream", nil)
	req.Header.Set("Authorization", "Bearer "+adminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != 200 || ct != "text/event-stream" {
		t.Fatalf("stream: %d %s", resp.StatusCode, ct)
	}
	events := make(chan string, 16)
	go func() {
		// Readings only: analyses (news2, alarms) may tell of them too, in any order.
		sc := bufio.NewScanner(resp.Body)
		kind := ""
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "event: ") {
				kind = strings.TrimPrefix(sc.Text(), "event: ")
			}
			if strings.HasPrefix(sc.Text(), "data: ") && kind == "observation" {
				events <- sc.Text()
			}
		}
	}()

	var res struct {
		Accepted int
		Refused  []struct {
			Record int
			Reason string
		}
	}
	code := e.call("POST", "/api/v1/ingest", dev.Token, []byte(`[{"n":"rr","u":"/min","v":16},{"n":"sbp","u":"kPa","v":16}]`), &res)
	if code != 200 || res.Accepted != 2 {
		t.Fatalf("http ingest: %d %+v", code, res)
	}
	select {
	case ev := <-events:
		if !strings.Contains(ev, `"code":"9279-1"`) {
			t.Fatalf("first observation event %s", ev)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no live event")
	}

	var prob struct {
		Title, Detail string
		Status        int
		Refused       []struct {
			Record int
			Reason string
		}
	}
	cases := []struct {
		token string
		body  string
		code  int
		want  string
	}{
		{"", `[]`, 401, "missing device token"},
		{dev.ID + ".wrong", `[]`, 401, "invalid device token"},
		{adminToken, `[]`, 401, "invalid device token"},
		{dev.Token, `not json`, 400, "malformed"},
		{dev.Token, `[{"n":"hr","u":"kg","v":1}]`, 422, "cannot"},
	}
	for _, c := range cases {
		got := e.call("POST", "/api/v1/ingest", c.token, []byte(c.body), &prob)
		if got != c.code || !strings.Contains(prob.Detail, c.want) {
			t.Errorf("ingest %q with token %q: %d %q, want %d with %q", c.body, c.token, got, prob.Detail, c.code, c.want)
		}
	}
}

func TestAPIErrors(t *testing.T) {
	e := start(t)
	patient, _ := e.ward()
	var prob struct {
		Status int
		Detail string
	}
	cases := []struct {
		method, path, token string
		body                any
		code                int
		want                string
	}{
		{"GET", "/api/v1/patients", "", nil, 401, "sign in, or send Authorization"},
		{"GET", "/api/v1/patients", "nope", nil, 401, "invalid bearer token"},
		{"GET", "/api/v1/patients/zzz", adminToken, nil, 404, "not found"},
		{"POST", "/api/v1/patients", adminToken, []byte(`{"name":""}`), 400, `"name" is required`},
		{"POST", "/api/v1/patients", adminToken, []byte(`{"name":"x","birthDate":"1990-13-01"}`), 400, "YYYY-MM-DD"},
		{"POST", "/api/v1/patients", adminToken, []byte(`{"name":"x","sex":"f"}`), 400, "unknown field"},
		{"POST", "/api/v1/devices", adminToken, []byte(`{"kind":"toaster"}`), 400, "not a known device kind"},
		{"POST", "/api/v1/devices", adminToken, []byte(`{"kind":"cgm","patient":"nobody"}`), 422, "does not exist"},
		{"GET", "/api/v1/patients/" + patient + "/observations", adminToken, nil, 400, `"code" is required`},
		{"GET", "/api/v1/patients/" + patient + "/observations?code=foo", adminToken, nil, 400, "unknown code"},
		{"GET", "/api/v1/patients/" + patient + "/observations?code=hr&from=yesterday", adminToken, nil, 400, "RFC 3339"},
		{"GET", "/api/v1/patients/" + patient + "/observations?code=hr&step=1ms", adminToken, nil, 400, "at least 1s"},
		{"GET", "/api/v1/nothing", adminToken, nil, 404, "no such endpoint"},
	}
	for _, c := range cases {
		got := e.call(c.method, c.path, c.token, c.body, &prob)
		if got != c.code || !strings.Contains(prob.Detail, c.want) {
			t.Errorf("%s %s: %d %q, want %d with %q", c.method, c.path, got, prob.Detail, c.code, c.want)
		}
	}
	var doc map[string]any
	if e.call("GET", "/api/v1/openapi.json", "", nil, &doc) != 200 || doc["openapi"] != "3.1.0" {
		t.Fatal("openapi document")
	}
	// MRN is unique.
	body := map[string]string{"name": "A", "mrn": "MRN-1"}
	if c := e.call("POST", "/api/v1/patients", adminToken, body, nil); c != 201 {
		t.Fatal(c)
	}
	if c := e.call("POST", "/api/v1/patients", adminToken, body, &prob); c != 409 {
		t.Fatalf("duplicate MRN: %d", c)
	}
}

func TestPortInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, err = node.Start(context.Background(), node.Config{DataDir: t.TempDir(), HTTPAddr: "127.0.0.1:0", MQTTAddr: ln.Addr().String(), People: node.PeopleConfig{BootstrapToken: "x-bootstrap-token"}})
	if err == nil || !strings.Contains(err.Error(), "mqtt address "+ln.Addr().String()+" is already in use") {
		t.Fatalf("got %v", err)
	}
}
