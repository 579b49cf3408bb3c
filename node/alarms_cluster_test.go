package node_test

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/iomt/iomt"
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
	pg, nats := pgDatabase(t), natsJetStream(t)
	rules := filepath.Join(t.TempDir(), "rules.yaml")
	if err := os.WriteFile(rules, []byte(alarmRulesYAML), 0o600); err != nil {
		t.Fatal(err)
	}
	nodes := map[string]*env{}
	for _, id := range []string{"a", "b"} {
		n, err := node.Start(context.Background(), node.Config{
			DataDir: t.TempDir(), HTTPAddr: "127.0.0.1:0", MQTTAddr: "127.0.0.1:0", AdminToken: adminToken,
			MaxPacketSize: 64 << 10, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
			Postgres: pg, NATS: node.NATSConfig{URL: nats, LeaseTTL: 2 * time.Second}, NodeID: id,
			Alarms: node.AlarmsConfig{RulesFile: rules},
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
	a := nodes["a"]
	patient, dev := a.ward()
	part := iomt.Partition(patient, 16)
	owner := func() string {
		for id, e := range nodes {
			var st struct{ Owned map[string][]int }
			if e.call("GET", "/api/v1/cluster", adminToken, nil, &st) == 200 && slices.Contains(st.Owned["alarms"], part) {
				return id
			}
		}
		return ""
	}
	// Wait until the partitions are shared, so that the patient has one owner of the two.
	var own string
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		var sa, sb struct{ Owned map[string][]int }
		nodes["a"].call("GET", "/api/v1/cluster", adminToken, nil, &sa)
		nodes["b"].call("GET", "/api/v1/cluster", adminToken, nil, &sb)
		if len(sa.Owned["alarms"]) > 0 && len(sb.Owned["alarms"]) > 0 && len(sa.Owned["alarms"])+len(sb.Owned["alarms"]) == 16 {
			own = owner()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("partitions not shared: a %v, b %v", sa.Owned["alarms"], sb.Owned["alarms"])
		}
	}
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
	if code := nodes[other].call("POST", "/api/v1/alarms/"+id+"/acknowledge", adminToken, map[string]string{"why": "seen", "by": "ann"}, &acked); code != 200 || acked.State != "acknowledged" {
		t.Fatalf("acknowledge on the node not owning the patient: %d %+v", code, acked)
	}

	// The owner leaves; the survivor takes its partitions and restores the alarm.
	if err := nodes[own].n.Close(); err != nil {
		t.Fatal(err)
	}
	delete(nodes, own)
	for deadline := time.Now().Add(15 * time.Second); owner() != other; time.Sleep(200 * time.Millisecond) {
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
