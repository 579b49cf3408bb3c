package node_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/iomt/iomt"
	"github.com/iomt/iomt/alarm/notify"
	"github.com/iomt/iomt/node"
)

// Two nodes on one PostgreSQL database and one NATS JetStream: an alarm raised on the node
// owning the patient is acknowledged through the other node's API (the request travels to the
// owner); when the owner goes away, the survivor takes the partition over with the alarm
// restored from the store, so the condition clearing resolves that same alarm rather than
// the survivor raising a second one.
func TestAlarmAcrossNodes(t *testing.T) {
	if !scaleOut {
		t.Skip("needs two nodes on PostgreSQL and NATS (runs in the scale-out pass)")
	}
	rules := filepath.Join(t.TempDir(), "rules.yaml")
	if err := os.WriteFile(rules, []byte(alarmRulesYAML), 0o600); err != nil {
		t.Fatal(err)
	}
	nodes, owner := twoNodes(t, node.AlarmsConfig{RulesFile: rules})
	a := nodes["a"]
	patient, dev := a.ward()
	own := owner(patient)
	other := "a"
	if own == "a" {
		other = "b"
	}
	send := func(e *env, v int) {
		t.Helper()
		body := []byte(`[{"bn":"urn:dev:id:` + dev.ID + `:","bt":` + strconv.FormatInt(time.Now().UnixMilli(), 10) + `e-3,"n":"59408-5","u":"%","v":` + strconv.Itoa(v) + `}]`)
		if code := e.call("POST", "/api/v1/ingest", dev.Token, body, nil); code != 200 {
			t.Fatalf("ingest: %d", code)
		}
	}
	type alarmList struct {
		Alarms []struct {
			ID, State   string
			Transitions []struct{ Who, Why string }
		}
	}
	list := func(e *env, state string) alarmList {
		var l alarmList
		e.call("GET", "/api/v1/alarms?patient="+patient+"&state="+state, adminToken, nil, &l)
		return l
	}
	send(nodes[other], 88) // ingested on the other node, evaluated on the owner
	var l alarmList
	for deadline := time.Now().Add(10 * time.Second); len(l.Alarms) == 0; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no alarm raised")
		}
		l = list(nodes[other], "active")
	}
	id := l.Alarms[0].ID
	var acked struct{ State string }
	if code := nodes[other].call("POST", "/api/v1/alarms/"+id+"/acknowledge", adminToken, map[string]string{"why": "seen"}, &acked); code != 200 || acked.State != "acknowledged" {
		t.Fatalf("acknowledge on the node not owning the patient: %d %+v", code, acked)
	}

	// The owner leaves; the survivor takes its partitions and restores the alarm.
	if err := nodes[own].n.Close(); err != nil {
		t.Fatal(err)
	}
	delete(nodes, own)
	for deadline := time.Now().Add(15 * time.Second); owner(patient) != other; time.Sleep(200 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("partition not taken over")
		}
	}
	time.Sleep(1500 * time.Millisecond) // a tick to restore
	send(nodes[other], 88)              // still low: no second alarm
	send(nodes[other], 97)              // cleared: the restored alarm resolves
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		l = list(nodes[other], "resolved")
		if len(l.Alarms) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("alarm not resolved after takeover: resolved %+v, unresolved %+v", l, list(nodes[other], "unresolved"))
		}
	}
	if l.Alarms[0].ID != id {
		t.Fatalf("resolved %s, want the restored %s", l.Alarms[0].ID, id)
	}
	if all := list(nodes[other], "active,acknowledged,resolved"); len(all.Alarms) != 1 {
		t.Fatalf("%d alarms for one condition across a handover: %+v", len(all.Alarms), all)
	}
}

// twoNodes starts nodes "a" and "b" on one PostgreSQL database and one NATS JetStream and waits
// until they share the alarm partitions. owner names the node owning a patient's partition. A
// test that closes a node deletes it from the map; the others are closed at the end.
func twoNodes(t *testing.T, alarms node.AlarmsConfig) (map[string]*env, func(patient string) string) {
	t.Helper()
	pg, nats := pgDatabase(t), natsJetStream(t)
	nodes := map[string]*env{}
	for _, id := range []string{"a", "b"} {
		n, err := node.Start(context.Background(), node.Config{
			DataDir: t.TempDir(), HTTPAddr: "127.0.0.1:0", MQTTAddr: "127.0.0.1:0", People: node.PeopleConfig{BootstrapToken: adminToken},
			MaxPacketSize: 64 << 10, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
			Postgres: pg, NATS: node.NATSConfig{URL: nats, LeaseTTL: 2 * time.Second}, NodeID: id,
			Alarms: alarms,
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if nodes[id] != nil { // not closed by the test
				_ = n.Close()
			}
		})
		nodes[id] = &env{t: t, n: n, base: "http://" + n.HTTPAddr()}
	}
	owned := func(e *env) []int {
		var st struct{ Owned map[string][]int }
		e.call("GET", "/api/v1/cluster", adminToken, nil, &st)
		return st.Owned["alarms"]
	}
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		oa, ob := owned(nodes["a"]), owned(nodes["b"])
		if len(oa) > 0 && len(ob) > 0 && len(oa)+len(ob) == 16 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("partitions not shared: a %v, b %v", oa, ob)
		}
	}
	return nodes, func(patient string) string {
		part := iomt.Partition(patient, 16)
		for id, e := range nodes {
			if slices.Contains(owned(e), part) {
				return id
			}
		}
		return ""
	}
}

// A patient's silence, asked of the node not owning the patient, moves with the partition:
// when the owner goes away, a new alarm of that patient on the survivor is raised silenced and
// pages no one until the silence ends.
func TestAlarmSilenceAcrossHandover(t *testing.T) {
	if !scaleOut {
		t.Skip("needs two nodes on PostgreSQL and NATS (runs in the scale-out pass)")
	}
	// Long enough for the survivor to take the partition over (a 2 s lease) and a reading.
	const silence = 15 * time.Second
	var mu sync.Mutex
	var reasons []string
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var p notify.Payload
		if err := json.NewDecoder(r.Body).Decode(&p); err != nil {
			t.Errorf("webhook body: %v", err)
		}
		mu.Lock()
		reasons = append(reasons, string(p.Reason))
		mu.Unlock()
	}))
	defer hook.Close()
	nodes, owner := twoNodes(t, hookedAlarms(t, hook.URL))
	patient, dev := nodes["a"].ward()
	own := owner(patient)
	other := "a"
	if own == "a" {
		other = "b"
	}
	if code := nodes[other].call("POST", "/api/v1/alarms/silence", adminToken, map[string]string{
		"patient": patient, "for": silence.String(), "why": "washing"}, nil); code != 200 {
		t.Fatalf("silence on the node not owning the patient: %d", code)
	}
	end := time.Now().Add(silence)
	if err := nodes[own].n.Close(); err != nil {
		t.Fatal(err)
	}
	delete(nodes, own)
	for deadline := time.Now().Add(15 * time.Second); owner(patient) != other; time.Sleep(200 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("partition not taken over")
		}
	}
	body := []byte(`[{"bn":"urn:dev:id:` + dev.ID + `:","bt":` + strconv.FormatInt(time.Now().UnixMilli(), 10) + `e-3,"n":"59408-5","u":"%","v":88}]`)
	if code := nodes[other].call("POST", "/api/v1/ingest", dev.Token, body, nil); code != 200 {
		t.Fatalf("ingest: %d", code)
	}
	var list struct {
		Alarms []struct{ SilencedUntil time.Time }
	}
	for deadline := time.Now().Add(10 * time.Second); len(list.Alarms) == 0; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no alarm raised after the takeover")
		}
		nodes[other].call("GET", "/api/v1/alarms?state=active&patient="+patient, adminToken, nil, &list)
	}
	if time.Now().After(end) {
		t.Fatalf("the alarm came after the %s silence had ended: the takeover was too slow for the test", silence)
	}
	su := list.Alarms[0].SilencedUntil
	if su.IsZero() || su.After(end) {
		t.Fatalf("alarm raised during the silence on the new owner: silenced until %v, want the silence's end (≤ %v)", su, end)
	}
	for deadline := time.Now().Add(silence + 10*time.Second); ; time.Sleep(50 * time.Millisecond) {
		mu.Lock()
		got := append([]string(nil), reasons...)
		mu.Unlock()
		if len(got) > 0 {
			if got[0] != "silence-expired" || time.Now().Before(su) {
				t.Fatalf("hook heard %v at %v, silenced until %v: want silence-expired, once it ended", got, time.Now(), su)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the hook heard nothing after the silence ended")
		}
	}
}
