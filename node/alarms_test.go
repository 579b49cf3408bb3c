package node_test

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/iomt/iomt/alarm/notify"
	"github.com/iomt/iomt/node"
)

const alarmRulesYAML = `version: 1
rules:
  - id: spo2-low
    kind: threshold
    code: 59408-5
    below: [{limit: 90, priority: medium}, {limit: 85, priority: high}]
    hysteresis: 1
    delay: 0s
    message: "SpO2 {value} % (below {limit} %)"
`

// A reading below a limit raises an alarm at once through the node, the nurse's webhook
// hears of it (signed), nobody acknowledges so it escalates to the charge nurse, and after the
// acknowledgement through the API nothing escalates any more. The alarm, with every
// transition, is listed by the API.
func TestAlarmRaisedEscalatedAcknowledged(t *testing.T) {
	const secret = "webhook-secret"
	type hit struct {
		member, reason, delivery string
		at                       time.Time
	}
	var mu sync.Mutex
	var hits []hit
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if err := notify.Verify([]byte(secret), r.Header.Get("X-Iomt-Signature"), r.Header.Get("X-Iomt-Timestamp"), body, time.Now(), time.Minute); err != nil {
			t.Errorf("webhook signature: %v", err)
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		var p notify.Payload
		if err := json.Unmarshal(body, &p); err != nil {
			t.Errorf("webhook body: %v", err)
		}
		mu.Lock()
		hits = append(hits, hit{p.Member, p.Reason, r.Header.Get("X-Iomt-Delivery"), time.Now()})
		mu.Unlock()
	}))
	defer hook.Close()
	routing := `default_team: ward
policies:
  - id: urgent
    tiers: [{roles: [nurse], after: 2s}, {roles: [charge-nurse]}]
teams:
  - id: ward
    escalation: {high: urgent, medium: urgent}
    members:
      - {id: ann, role: nurse, contacts: [{channel: webhook, address: "` + hook.URL + `/ann"}]}
      - {id: cat, role: charge-nurse, contacts: [{channel: webhook, address: "` + hook.URL + `/cat"}]}
`
	dir := t.TempDir()
	rules, routes := filepath.Join(dir, "rules.yaml"), filepath.Join(dir, "routing.yaml")
	if err := os.WriteFile(rules, []byte(alarmRulesYAML), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(routes, []byte(routing), 0o600); err != nil {
		t.Fatal(err)
	}
	e := startWith(t, func(c *node.Config) {
		c.Alarms = node.AlarmsConfig{RulesFile: rules, RoutingFile: routes, WebhookSecret: secret}
	})
	patient, dev := e.ward()
	// The ward's alarm console: events only, no readings.
	req, _ := http.NewRequestWithContext(t.Context(), "GET", e.base+"/api/v1/stream?readings=false", nil)
	req.Header.Set("Authorization", "Bearer "+adminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("alarm console stream: %v %v", resp, err)
	}
	defer resp.Body.Close()
	console := make(chan string, 64)
	go func() {
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if k, ok := strings.CutPrefix(sc.Text(), "event: "); ok {
				console <- k
			}
		}
	}()
	raisedAt := time.Now()
	body := []byte(`[{"bn":"urn:dev:id:` + dev.ID + `:","bt":` + strconv.FormatInt(raisedAt.Unix(), 10) + `,"n":"59408-5","u":"%","v":88}]`)
	if code := e.call("POST", "/api/v1/ingest", dev.Token, body, nil); code != 200 {
		t.Fatalf("ingest: %d", code)
	}
	for kind := ""; kind != "alarm"; {
		select {
		case kind = <-console:
			if kind == "observation" || kind == "waveform" {
				t.Fatalf("the events-only stream carried an %s", kind)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("no alarm on the events-only stream")
		}
	}

	waitFor := func(what string, ok func() bool) {
		t.Helper()
		for deadline := time.Now().Add(15 * time.Second); !ok(); time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				mu.Lock()
				defer mu.Unlock()
				t.Fatalf("%s: webhook hits %+v", what, hits)
			}
		}
	}
	count := func(member string) int {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, h := range hits {
			if h.member == member {
				n++
			}
		}
		return n
	}
	waitFor("nurse told", func() bool { return count("ann") == 1 })
	waitFor("charge nurse told after 2 s", func() bool { return count("cat") == 1 })
	mu.Lock()
	first, second := hits[0], hits[1]
	mu.Unlock()
	if first.reason != "raised" || second.reason != "escalated" || second.at.Sub(raisedAt) < 1500*time.Millisecond {
		t.Fatalf("first %+v, then %+v: want raised, then escalated about 2 s after the reading", first, second)
	}

	var list struct {
		Alarms []struct {
			ID, Patient, Rule, State, Priority string
			Level                              int
			Transitions                        []struct{ From, To, Who, Why string }
		}
	}
	if code := e.call("GET", "/api/v1/alarms?state=active&patient="+patient, adminToken, nil, &list); code != 200 || len(list.Alarms) != 1 {
		t.Fatalf("active alarms: %d %+v", code, list)
	}
	a := list.Alarms[0]
	if a.Rule != "spo2-low" || a.Priority != "medium" || a.Level != 1 {
		t.Fatalf("alarm %+v: want spo2-low, medium, escalated to level 1", a)
	}
	var acked struct{ State string }
	if code := e.call("POST", "/api/v1/alarms/"+a.ID+"/acknowledge", adminToken, map[string]string{"why": "at the bedside"}, &acked); code != 200 || acked.State != "acknowledged" {
		t.Fatalf("acknowledge: %d %+v", code, acked)
	}
	var problem struct{ Status int }
	if code := e.call("POST", "/api/v1/alarms/"+a.ID+"/acknowledge", adminToken, map[string]string{"why": "again"}, &problem); code != 409 {
		t.Fatalf("acknowledging twice: %d, want 409", code)
	}
	if code := e.call("POST", "/api/v1/alarms/al_nosuch/acknowledge", adminToken, map[string]string{"why": "x"}, nil); code != 404 {
		t.Fatalf("unknown alarm: %d, want 404", code)
	}
	if code := e.call("POST", "/api/v1/alarms/"+a.ID+"/acknowledge", "", map[string]string{"why": "x"}, nil); code != 401 {
		t.Fatalf("no token: %d, want 401", code)
	}
	time.Sleep(3 * time.Second) // another tier's worth: nothing more may come
	if n := count("ann") + count("cat"); n != 2 {
		t.Fatalf("%d webhook deliveries after the acknowledgement, want none beyond the 2", n)
	}
	if code := e.call("GET", "/api/v1/alarms?state=acknowledged&patient="+patient, adminToken, nil, &list); code != 200 || len(list.Alarms) != 1 {
		t.Fatalf("acknowledged alarms: %d %+v", code, list)
	}
	tr := list.Alarms[0].Transitions
	if len(tr) != 3 || tr[2].To != "acknowledged" || tr[2].Who != "bootstrap" || tr[2].Why != "at the bedside" {
		t.Fatalf("transitions %+v", tr)
	}
}

// Rules saved through the API are compiled first: a bad document is refused with every
// error, a good one becomes the tenant's version.
func TestAlarmRulesAPI(t *testing.T) {
	e := start(t)
	bad := []byte("version: 2\nrules:\n  - id: x\n    kind: threshold\n    code: no-such-code\n    below: [{limit: 90, priority: medium}]\n  - id: y\n    kind: condition\n    levels: [{when: \"vitals[\", priority: high}]\n")
	var p struct {
		Status int
		Errors []struct{ Rule, Field, Detail string }
	}
	if code := e.call("PUT", "/api/v1/alarm-rules?tenant=default", adminToken, bad, &p); code != 422 || len(p.Errors) != 2 {
		t.Fatalf("bad rules: %d %+v", code, p)
	}
	if code := e.call("GET", "/api/v1/alarm-rules?tenant=default", adminToken, nil, nil); code != 404 {
		t.Fatalf("no rules saved yet: %d, want 404", code)
	}
	var saved struct {
		Version int
		Who     string
	}
	if code := e.call("PUT", "/api/v1/alarm-rules?tenant=default", adminToken, []byte(alarmRulesYAML), &saved); code != 200 || saved.Version != 1 || saved.Who != "bootstrap" {
		t.Fatalf("good rules: %d %+v", code, saved)
	}
	if code := e.call("PUT", "/api/v1/alarm-rules?tenant=default", adminToken, []byte(alarmRulesYAML), nil); code != 409 {
		t.Fatalf("same version twice: %d, want 409", code)
	}
	req, _ := http.NewRequest("GET", e.base+"/api/v1/alarm-rules?tenant=default", nil)
	req.Header.Set("Authorization", "Bearer "+adminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(got) != alarmRulesYAML || resp.Header.Get("X-Iomt-Version") != "1" {
		t.Fatalf("GET rules: %d %q", resp.StatusCode, got)
	}
}

// TestOximeterProbeOffThroughThePipeline: an oximeter that says its probe is off the patient
// (MDC_PULS_OXIM_DEV_STATUS sensor-off, as a PLX gateway forwards it) with a low SpO2 gets the
// technical "sensor off" alarm and no SpO2 alarm.
func TestOximeterProbeOffThroughThePipeline(t *testing.T) {
	e := start(t)
	patient, dev := e.ward()
	rules := map[string]bool{}
	// 20 s: past both the sensor-off delay (10 s) and the SpO2 alarm's (15 s).
	for end := time.Now().Add(20 * time.Second); time.Now().Before(end); {
		body := []byte(`[{"bn":"urn:dev:id:` + dev.ID + `:","bt":` + strconv.FormatInt(time.Now().Unix(), 10) +
			`,"n":"59408-5","u":"%","v":80},{"n":"MDC_PULS_OXIM_DEV_STATUS","u":"1","v":2048}]`)
		if code := e.call("POST", "/api/v1/ingest", dev.Token, body, nil); code != 200 {
			t.Fatalf("ingest: %d", code)
		}
		time.Sleep(time.Second)
		var list struct{ Alarms []struct{ Rule string } }
		e.call("GET", "/api/v1/alarms?patient="+patient, adminToken, nil, &list)
		for _, a := range list.Alarms {
			rules[a.Rule] = true
		}
	}
	if !rules["lead-off"] || rules["spo2-low"] {
		t.Fatalf("alarms %v: want the sensor-off alarm (lead-off) and no spo2-low", rules)
	}
}
