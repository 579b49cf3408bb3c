package sim_test

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/iomt/iomt/node"
	"github.com/iomt/iomt/sim"
)

// A scenario written by a user (a file, not a built-in name) is provisioned and played: a
// patient with a resting rate of 128/min whose oximeter says so.
func TestScenarioFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "tachy.yaml")
	if err := os.WriteFile(path, []byte(`name: tachy
description: a tachycardic adult wearing only a pulse oximeter
baseline: {hr: 128, rr: 18, spo2: 96, temp: 37.4, sbp: 118, dbp: 74, weight: 70}
devices:
  - kind: pulse-oximeter
`), 0o600); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("name: bad\nbaseline: {hr: fast}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	n, err := node.Start(context.Background(), node.Config{
		DataDir: t.TempDir(), HTTPAddr: "127.0.0.1:0", MQTTAddr: "127.0.0.1:0", People: node.PeopleConfig{BootstrapToken: "test-bootstrap-token"},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	ctx := context.Background()
	api := sim.API{Base: "http://" + n.HTTPAddr(), Token: "test-bootstrap-token"}

	for _, c := range []struct{ scenario, want string }{
		{"no-such-story", `unknown scenario "no-such-story"`},
		{filepath.Join(dir, "missing.yaml"), "missing.yaml"},
		{bad, "bad.yaml"},
	} {
		if _, err := sim.Provision(ctx, api, []sim.Bed{{Scenario: c.scenario}}); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("scenario %q: %v, want an error naming %q", c.scenario, err, c.want)
		}
	}

	beds, err := sim.Provision(ctx, api, []sim.Bed{{Scenario: path, Seed: 7}})
	if err != nil {
		t.Fatal(err)
	}
	if len(beds[0].Devices) != 1 || beds[0].Devices[0].Kind != "pulse-oximeter" {
		t.Fatalf("devices of the file's scenario: %+v", beds[0].Devices)
	}
	var st sim.Stats
	rctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	if err := sim.Run(rctx, sim.Options{Broker: n.MQTTAddr(), Tick: 250 * time.Millisecond}, beds, &st); err != nil {
		t.Fatal(err)
	}
	obs, err := n.Store().Latest(ctx, beds[0].Patient)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range obs {
		if o.Code == "8889-8" {
			if o.Value < 115 || o.Value > 140 {
				t.Errorf("pulse rate %v, want about 128", o.Value)
			}
			return
		}
	}
	t.Fatalf("no pulse rate stored: %+v", obs)
}
