package node_test

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/iomt/iomt/node"
)

// A node that stops while it is still trying to deliver an alarm's webhook sends it again,
// under the same delivery id, once it is back: the stored alarm kept an outbox mark.
func TestAlarmDeliveryResumesAfterRestart(t *testing.T) {
	var healthy atomic.Bool
	var mu sync.Mutex
	seen := map[string][]bool{} // delivery id → outcome of each attempt
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get("X-Iomt-Delivery")
		ok := healthy.Load()
		mu.Lock()
		seen[id] = append(seen[id], ok)
		mu.Unlock()
		if !ok {
			http.Error(w, "pager down", http.StatusServiceUnavailable)
		}
	}))
	defer hook.Close()
	edit := restartable(t, hookedAlarms(t, hook.URL))
	e := startWith(t, edit)
	_, dev := e.ward()
	body := []byte(`[{"bn":"urn:dev:id:` + dev.ID + `:","bt":` + strconv.FormatInt(time.Now().Unix(), 10) + `,"n":"59408-5","u":"%","v":88}]`)
	if code := e.call("POST", "/api/v1/ingest", dev.Token, body, nil); code != 200 {
		t.Fatalf("ingest: %d", code)
	}
	var id string
	for deadline := time.Now().Add(10 * time.Second); id == ""; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no webhook attempt")
		}
		mu.Lock()
		for k := range seen {
			id = k
		}
		mu.Unlock()
	}
	// Stop the node while its notifier is between retries, then bring it back healthy.
	if err := e.n.Close(); err != nil {
		t.Fatal(err)
	}
	healthy.Store(true)
	e2 := startWith(t, edit)
	_ = e2
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		mu.Lock()
		got := seen[id]
		n := len(seen)
		mu.Unlock()
		if len(got) > 0 && got[len(got)-1] {
			if n != 1 {
				t.Fatalf("%d delivery ids, want the one retried", n)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("delivery %s not sent again after the restart: attempts %v", id, got)
		}
	}
}

// hookedAlarms writes the test rules and a routing whose one team, "ward", notifies hookURL,
// and returns the alarm configuration that uses them (webhook secret "s").
func hookedAlarms(t *testing.T, hookURL string) node.AlarmsConfig {
	t.Helper()
	dir := t.TempDir()
	rules, routes := filepath.Join(dir, "rules.yaml"), filepath.Join(dir, "routing.yaml")
	if err := os.WriteFile(rules, []byte(alarmRulesYAML), 0o600); err != nil {
		t.Fatal(err)
	}
	routing := "default_team: ward\nteams:\n  - id: ward\n    escalation: {}\n    members: []\n    hooks: [\"" + hookURL + "\"]\n"
	if err := os.WriteFile(routes, []byte(routing), 0o600); err != nil {
		t.Fatal(err)
	}
	return node.AlarmsConfig{RulesFile: rules, RoutingFile: routes, WebhookSecret: "s"}
}

// restartable returns a config edit that starts every node of a test on one data directory
// (and, in scale-out, the first node's store and bus), with the given alarms, so that a test
// can restart a node on the same state.
func restartable(t *testing.T, alarms node.AlarmsConfig) func(*node.Config) {
	data := filepath.Join(t.TempDir(), "data")
	var first node.Config
	return func(c *node.Config) {
		if first.DataDir == "" {
			c.DataDir = data
			first = *c
		} else { // the same store and bus again
			c.DataDir, c.Postgres, c.NATS = first.DataDir, first.Postgres, first.NATS
		}
		c.Alarms = alarms
	}
}
