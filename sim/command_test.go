package sim_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/iomt/iomt"
	"github.com/iomt/iomt/node"
	"github.com/iomt/iomt/sim"
)

// Two rules whose commands go to the patient's bp-monitor: one it carries out, one it does not
// know.
const commandRules = `version: 1
rules:
  - id: spo2-low
    kind: threshold
    code: 59408-5
    below: [{limit: 90, priority: medium}]
    delay: 0s
    command: {name: measure-bp, target: bp-monitor}
  - id: pulse-high
    kind: threshold
    code: 8889-8
    above: [{limit: 140, priority: medium}]
    delay: 0s
    command: {name: self-destruct, target: bp-monitor}
`

// syncBuffer is a log sink the node writes to from many goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// A simulated bp-monitor carries out the measure-bp an alarm rule sends it: the node counts
// the command as acknowledged and a cuff reading arrives. A repeated command ID is acked again
// without a second measurement; a command it does not know, or one for another kind of
// device, is answered "rejected" with the reason, which the server reports.
func TestSimulatedDevicesObeyCommands(t *testing.T) {
	rules := filepath.Join(t.TempDir(), "rules.yaml")
	if err := os.WriteFile(rules, []byte(commandRules), 0o600); err != nil {
		t.Fatal(err)
	}
	var logs syncBuffer
	n, err := node.Start(context.Background(), node.Config{
		DataDir: t.TempDir(), HTTPAddr: "127.0.0.1:0", MQTTAddr: "127.0.0.1:0", People: node.PeopleConfig{BootstrapToken: "test-bootstrap-token"},
		Logger: slog.New(slog.NewTextHandler(&logs, nil)),
		// Long enough that a failed delivery within the test can only be a rejection.
		Alarms: node.AlarmsConfig{RulesFile: rules, CommandTimeout: 10 * time.Minute},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	ctx := context.Background()
	base := "http://" + n.HTTPAddr()
	// The patient's clock starts 10 min back and runs 30 times faster, so a 40 s cuff
	// measurement takes about a second and only the first scheduled one (within a minute of
	// the start; the next is 15 min later) happens during the test.
	beds, err := sim.Provision(ctx, sim.API{Base: base, Token: "test-bootstrap-token"}, []sim.Bed{
		{Scenario: "stable-adult", Seed: 1, Kinds: []string{"bp-monitor", "thermometer"}, Lead: 10 * time.Minute, Speed: 30},
	})
	if err != nil {
		t.Fatal(err)
	}
	patient := beds[0].Patient
	ids := map[string]string{}
	for _, d := range beds[0].Devices {
		ids[d.Kind] = d.ID
	}
	call := func(method, path, token string, body []byte) (int, []byte) {
		t.Helper()
		req, err := http.NewRequest(method, base+path, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	// An oximeter outside the simulation reports what raises the alarms.
	code, body := call("POST", "/api/v1/devices", "test-bootstrap-token", []byte(`{"patient":"`+patient+`","kind":"pulse-oximeter"}`))
	var ox struct{ ID, Token string }
	if err := json.Unmarshal(body, &ox); code != 201 || err != nil {
		t.Fatalf("create oximeter: %d %s", code, body)
	}

	rctx, cancel := context.WithCancel(ctx)
	var st sim.Stats
	var simLogs syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- sim.Run(rctx, sim.Options{Broker: n.MQTTAddr(), Tick: 100 * time.Millisecond,
			Logger: slog.New(slog.NewTextHandler(&simLogs, nil))}, beds, &st)
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("sim: %v", err)
		}
	}()

	bpReadings := func() int {
		obs, err := n.Store().Observations(ctx, iomt.ObservationQuery{Patient: patient, Code: "8480-6",
			From: time.Now().Add(-time.Hour), To: time.Now().Add(time.Minute)})
		if err != nil {
			t.Fatal(err)
		}
		return len(obs)
	}
	metric := func(want string) func() bool {
		return func() bool {
			code, m := call("GET", "/metrics", "", nil)
			return code == 200 && strings.Contains(string(m), want)
		}
	}
	// The scheduled first reading, so that the next one can only be the commanded one.
	eventually(t, "the scheduled blood pressure", func() bool { return bpReadings() == 1 })

	// Low SpO2 raises spo2-low, whose command the bp-monitor acknowledges and carries out.
	if code, b := call("POST", "/api/v1/ingest", ox.Token, []byte(`[{"n":"59408-5","u":"%","v":86}]`)); code != 200 {
		t.Fatalf("ingest SpO2: %d %s", code, b)
	}
	eventually(t, "the command acknowledged ok", metric(`iomt_alarm_deliveries_total{channel="device",outcome="ok"} 1`))
	eventually(t, "the commanded blood pressure", func() bool { return bpReadings() == 2 })
	if c := st.Commands.Load(); c != 1 {
		t.Fatalf("%d commands carried out, want 1", c)
	}

	// The same command twice (as a QoS 1 redelivery would): acknowledged twice, done once.
	dup := []byte(`{"id":"dup-1","name":"measure-bp","device":"` + ids["bp-monitor"] + `"}`)
	for range 2 {
		if err := n.SendCommand(iomt.DefaultTenant, ids["bp-monitor"], dup); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "the repeated command", func() bool { return st.CmdRepeated.Load() == 1 })
	if c := st.Commands.Load(); c != 2 {
		t.Fatalf("%d commands carried out after a repeated one, want 2", c)
	}
	eventually(t, "the blood pressure of the repeated command", func() bool { return bpReadings() >= 3 })

	// A command the device does not know: answered "rejected" with the reason, which the
	// server logs with the failed delivery.
	if code, b := call("POST", "/api/v1/ingest", ox.Token, []byte(`[{"n":"8889-8","u":"/min","v":150}]`)); code != 200 {
		t.Fatalf("ingest pulse rate: %d %s", code, b)
	}
	eventually(t, "the unknown command failed", metric(`iomt_alarm_deliveries_total{channel="device",outcome="failed"} 1`))
	eventually(t, "the device's reason in the server's log", func() bool {
		return strings.Contains(logs.String(), `unknown command \"self-destruct\"`)
	})

	// measure-bp to a thermometer, and a payload that is no command.
	wrong := []byte(`{"id":"wrong-1","name":"measure-bp","device":"` + ids["thermometer"] + `"}`)
	if err := n.SendCommand(iomt.DefaultTenant, ids["thermometer"], wrong); err != nil {
		t.Fatal(err)
	}
	if err := n.SendCommand(iomt.DefaultTenant, ids["thermometer"], []byte(`not json`)); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the refusals", func() bool { return st.CmdRejected.Load() == 3 })
	for _, want := range []string{"a thermometer cannot measure-bp: that takes a bp-monitor", "sim command unreadable"} {
		if !strings.Contains(simLogs.String(), want) {
			t.Errorf("simulator log lacks %q", want)
		}
	}
	if c := st.Commands.Load(); c != 2 {
		t.Fatalf("%d commands carried out, want 2", c)
	}
	if r := st.Refused.Load(); r != 0 {
		t.Fatalf("%d packs refused", r)
	}
	t.Logf("commands: %d carried out, %d rejected, %d repeated", st.Commands.Load(), st.CmdRejected.Load(), st.CmdRepeated.Load())
}
