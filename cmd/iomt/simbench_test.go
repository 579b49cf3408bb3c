package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"os"
	"regexp"
	"strings"
	"testing"
)

// The demo picks another port when the asked one is taken and says so, prints where to look
// and the token, runs the ward for its duration and removes its temporary data.
func TestDemoCommand(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a node and a simulated ward; skipped with -short")
	}
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	var out, errb bytes.Buffer
	code := demoCommand(context.Background(), []string{"--patients", "3", "--duration", "6s",
		"--http-addr", taken.Addr().String(), "--mqtt-addr", "127.0.0.1:0"}, &out, &errb, func(string) string { return "" })
	if code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out.String(), errb.String())
	}
	s := out.String()
	for _, want := range []string{"note: HTTP port " + taken.Addr().String() + " was taken; using", "a ward of 3 simulated patients",
		"dashboard   http://", "sign in with one of the accounts", "MQTT        127.0.0.1:", "nurse ", "auditor ", "packs acknowledged"} {
		if !strings.Contains(s, want) {
			t.Errorf("output lacks %q:\n%s", want, s)
		}
	}
	if m := regexp.MustCompile(`total: (\d+) packs acknowledged`).FindStringSubmatch(s); m == nil || m[1] == "0" {
		t.Errorf("nothing acknowledged: %s", s)
	}
	if m := regexp.MustCompile(`data +(\S+)`).FindStringSubmatch(s); m == nil {
		t.Errorf("no data directory printed")
	} else if _, err := os.Stat(m[1]); !os.IsNotExist(err) {
		t.Errorf("temporary data directory %s left behind: %v", m[1], err)
	}
	if code := demoCommand(context.Background(), []string{"--format", "xml"}, &out, &errb, func(string) string { return "" }); code != 2 ||
		!strings.Contains(errb.String(), "--format must be json or cbor") {
		t.Errorf("bad format: exit %d, %s", code, errb.String())
	}
}

// bench ingest against the server it starts: the JSON result adds up, nothing refused.
func TestBenchIngestJSON(t *testing.T) {
	bin := build(t)
	var out, errb bytes.Buffer
	code := benchIngest(context.Background(), []string{"--ecg", "2", "--vitals", "20", "--warmup", "3s", "--duration", "4s",
		"--server-bin", bin, "--json"}, &out, &errb)
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out.String(), errb.String())
	}
	// Progress lines come first; the JSON document is the last thing printed.
	s := out.String()
	var res BenchResult
	if err := json.Unmarshal([]byte(s[strings.LastIndex(s, "\n{")+1:]), &res); err != nil {
		t.Fatalf("%v in:\n%s", err, s)
	}
	if res.Target != "server" || res.OfferedMsgs != 22 || res.MsgsPerSec < 15 || res.MsgsPerSec > 25 ||
		res.SamplesPerS < 400 || res.Refused != 0 || res.Failed != 0 || res.AckP50ms <= 0 || res.AckP99ms < res.AckP50ms ||
		res.ServerRSSMB <= 0 || res.Seconds < 3.5 || res.Seconds > 6 {
		t.Errorf("result %+v", res)
	}
}
