package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"runtime/debug"
	"strings"
	"time"

	"github.com/iomt/iomt/config"
	"github.com/iomt/iomt/node"
	"github.com/iomt/iomt/sim"
)

// simCommand connects simulated devices to a running server.
func simCommand(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	fs := flag.NewFlagSet("sim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.String(config.FileFlag, "", "YAML config file whose keys are these flags' names")
	apiURL := fs.String("api", "http://127.0.0.1:8080", "the server's HTTP address, for provisioning")
	broker := fs.String("mqtt", "127.0.0.1:1883", "the server's MQTT address")
	tokenFile := fs.String("token-file", "", "file holding a token that may register patients and devices (the server's bootstrap token; or set IOMT_BOOTSTRAP_TOKEN), needed with --provision")
	provision := fs.Int("provision", 0, "register this many simulated patients and their devices through the API")
	scenarios := fs.String("scenario", "stable-adult", "scenarios to give the patients, comma-separated, used in turn: built-in ("+strings.Join(sim.BuiltinNames(), ", ")+") or scenario files (.yaml, format in sensing/README.md)")
	bedsFile := fs.String("beds", "", "file of provisioned patients and device credentials: written after --provision, read without it")
	format := fs.String("format", "json", "SenML encoding: json or cbor")
	duration := fs.Duration("duration", 0, "stop after this long (0: until interrupted)")
	speed := fs.Float64("speed", 1, "clock speed: with --lead, a patient starts that far in the past and runs this many times faster until it reaches now")
	lead := fs.Duration("lead", 0, "how far in the past the patients' clocks start")
	compress := fs.Float64("compress", 0, "play the scenarios' timelines this many times faster, readings in real time (e.g. 8: an hour's deterioration in 7.5 minutes)")
	seed := fs.Uint64("seed", 1, "seed of the first patient (the others follow)")
	logLevel := fs.String("log-level", "warn", "debug, info (each device command), warn or error")
	if err := config.Parse(fs, args, getenv); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintf(stderr, "iomt sim: %v\n", err)
		return 2
	}
	if *format != "json" && *format != "cbor" {
		fmt.Fprintf(stderr, "iomt sim: --format must be json or cbor, got %q\n", *format)
		return 2
	}
	if *compress != 0 && *compress < 1 {
		fmt.Fprintf(stderr, "iomt sim: --compress must be 0 (off) or at least 1, got %g\n", *compress)
		return 2
	}
	log, err := newLogger(stderr, *logLevel, "text")
	if err != nil {
		fmt.Fprintf(stderr, "iomt sim: %v\n", err)
		return 2
	}
	// Thousands of devices make mostly short-lived packs: collect less often, as the bench does.
	debug.SetGCPercent(400)
	var beds []sim.Bed
	switch {
	case *provision > 0:
		token, err := readSecret(*tokenFile, BootstrapEnv, getenv)
		if err != nil || token == "" {
			fmt.Fprintf(stderr, "iomt sim: --provision needs --token-file or %s (%v)\n", BootstrapEnv, err)
			return 2
		}
		names := strings.Split(*scenarios, ",")
		if _, err := sim.Scenarios(names); err != nil {
			fmt.Fprintf(stderr, "iomt sim: %v\n", err)
			return 2
		}
		want := make([]sim.Bed, *provision)
		for i := range want {
			want[i] = sim.Bed{Scenario: names[i%len(names)], Seed: *seed + uint64(i), Lead: *lead, Speed: *speed, Compress: *compress}
		}
		fmt.Fprintf(stdout, "provisioning %d patients on %s ...\n", len(want), *apiURL)
		if beds, err = sim.Provision(ctx, sim.API{Base: *apiURL, Token: token}, want); err != nil {
			fmt.Fprintf(stderr, "iomt sim: %v\n", err)
			return 1
		}
		if *bedsFile != "" {
			if err := sim.SaveBeds(*bedsFile, beds); err != nil {
				fmt.Fprintf(stderr, "iomt sim: %v\n", err)
				return 1
			}
			fmt.Fprintf(stdout, "credentials saved to %s\n", *bedsFile)
		}
	case *bedsFile != "":
		var err error
		if beds, err = sim.LoadBeds(*bedsFile); err != nil {
			fmt.Fprintf(stderr, "iomt sim: %v\n", err)
			return 1
		}
	default:
		fmt.Fprintln(stderr, "iomt sim: give --provision N (with --token-file) or --beds FILE")
		return 2
	}
	if *duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *duration)
		defer cancel()
	}
	devices := 0
	for _, b := range beds {
		devices += len(b.Devices)
	}
	fmt.Fprintf(stdout, "simulating %d patients, %d devices, to %s (%s)\n", len(beds), devices, *broker, *format)
	var st sim.Stats
	done := make(chan error, 1)
	go func() {
		done <- sim.Run(ctx, sim.Options{Broker: *broker, CBOR: *format == "cbor", Logger: log}, beds, &st)
	}()
	err = report(ctx, stdout, &st, done)
	printTotals(stdout, &st)
	if err != nil {
		fmt.Fprintf(stderr, "iomt sim: %v\n", err)
		return 1
	}
	return 0
}

// report prints progress every 5 s until the run ends.
func report(ctx context.Context, w io.Writer, st *sim.Stats, done <-chan error) error {
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	lastM, lastS, last := int64(0), int64(0), time.Now()
	for {
		select {
		case err := <-done:
			return err
		case now := <-t.C:
			m, s := st.Messages.Load(), st.Samples.Load()
			dt := now.Sub(last).Seconds()
			q := st.Latency(0.5, 0.99)
			fmt.Fprintf(w, "%s  connected %d  sent %d msgs (%.0f/s), %d samples (%.0f/s)  ack p50 %s p99 %s  refused %d  failed %d\n",
				now.Format("15:04:05"), st.Connects.Load(), m, float64(m-lastM)/dt, s, float64(s-lastS)/dt,
				q[0].Round(100*time.Microsecond), q[1].Round(100*time.Microsecond), st.Refused.Load(), st.Failed.Load())
			lastM, lastS, last = m, s, now
		case <-ctx.Done():
			return <-done
		}
	}
}

func printTotals(w io.Writer, st *sim.Stats) {
	fmt.Fprintf(w, "total: %d packs acknowledged (%d with some records refused), %d samples, %d packs refused, %d not acknowledged; %d device commands carried out, %d rejected, %d repeats answered again\n",
		st.Messages.Load(), st.Partial.Load(), st.Samples.Load(), st.Refused.Load(), st.Failed.Load(),
		st.Commands.Load(), st.CmdRejected.Load(), st.CmdRepeated.Load())
}

// demoWard is the demo's mix of patients: most stable, some deteriorating on a fast clock
// that catches up with real time, one going into AF, one diabetic going low overnight.
func demoWard(n int) []sim.Bed {
	special := []sim.Bed{
		{Scenario: "sepsis", Compress: 8},
		{Scenario: "af-onset", Compress: 8},
		{Scenario: "t1d-nocturnal-hypo", Lead: 8 * time.Hour, Speed: 60},
		{Scenario: "sepsis", Compress: 4},
		{Scenario: "device-fault"},
		{Scenario: "sepsis"},
	}
	beds := make([]sim.Bed, n)
	for i := range beds {
		beds[i] = sim.Bed{Scenario: "stable-adult"}
	}
	// Spread the special beds over the ward rather than bunching them at the start.
	for k, s := range special {
		if i := 2 + 3*k; i < n {
			beds[i] = s
		}
	}
	for i := range beds {
		beds[i].Seed = uint64(1000 + i)
	}
	return beds
}

// listenOrFree returns addr if it is free, else a free port on the same host, and says which.
func listenOrFree(addr string) (string, bool, error) {
	ln, err := net.Listen("tcp", addr)
	if err == nil {
		ln.Close()
		return addr, false, nil
	}
	host, _, serr := net.SplitHostPort(addr)
	if serr != nil {
		return "", false, fmt.Errorf("address %q: %w", addr, serr)
	}
	ln, err = net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return "", false, err
	}
	defer ln.Close()
	return ln.Addr().String(), true, nil
}

// demoCommand runs a node and a simulated ward in one process.
func demoCommand(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.String(config.FileFlag, "", "YAML config file whose keys are these flags' names")
	dataDir := fs.String("data-dir", "", "data directory (default: a temporary one, removed at exit)")
	httpAddr := fs.String("http-addr", "127.0.0.1:8080", "address of the dashboard and API (another free port is used if it is taken)")
	mqttAddr := fs.String("mqtt-addr", "127.0.0.1:1883", "address of the MQTT broker (another free port is used if it is taken)")
	patients := fs.Int("patients", 20, "patients on the simulated ward")
	format := fs.String("format", "json", "SenML encoding the simulated devices use: json or cbor")
	duration := fs.Duration("duration", 0, "stop after this long (0: until Ctrl-C)")
	logLevel := fs.String("log-level", "warn", "debug, info, warn or error")
	if err := config.Parse(fs, args, getenv); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintf(stderr, "iomt demo: %v\n", err)
		return 2
	}
	if *patients < 1 || *patients > 5000 {
		fmt.Fprintf(stderr, "iomt demo: --patients must be 1..5000, got %d\n", *patients)
		return 2
	}
	if *format != "json" && *format != "cbor" {
		fmt.Fprintf(stderr, "iomt demo: --format must be json or cbor, got %q\n", *format)
		return 2
	}
	log, err := newLogger(stderr, *logLevel, "text")
	if err != nil {
		fmt.Fprintf(stderr, "iomt demo: %v\n", err)
		return 2
	}
	dir := *dataDir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "iomt-demo-"); err != nil {
			fmt.Fprintf(stderr, "iomt demo: %v\n", err)
			return 1
		}
		defer os.RemoveAll(dir)
	}
	// The simulator registers the ward with a bootstrap token that lives only in this process.
	tok := newToken()
	var notes []string
	addrs := []*string{httpAddr, mqttAddr}
	for i, what := range []string{"HTTP", "MQTT"} {
		got, moved, err := listenOrFree(*addrs[i])
		if err != nil {
			fmt.Fprintf(stderr, "iomt demo: %s address: %v\n", what, err)
			return 1
		}
		if moved {
			notes = append(notes, fmt.Sprintf("%s port %s was taken; using %s", what, *addrs[i], got))
		}
		*addrs[i] = got
	}
	n, err := node.Start(ctx, node.Config{DataDir: dir, HTTPAddr: *httpAddr, MQTTAddr: *mqttAddr, Logger: log,
		People: node.PeopleConfig{BootstrapToken: tok}})
	if err != nil {
		fmt.Fprintf(stderr, "iomt demo: %v\n", err)
		return 1
	}
	defer n.Close()
	base := "http://" + n.HTTPAddr()
	beds, err := sim.Provision(ctx, sim.API{Base: base, Token: tok}, demoWard(*patients))
	if err != nil {
		fmt.Fprintf(stderr, "iomt demo: %v\n", err)
		return 1
	}
	accounts, err := demoAccounts(ctx, n, beds)
	if err != nil {
		fmt.Fprintf(stderr, "iomt demo: %v\n", err)
		return 1
	}
	for _, note := range notes {
		fmt.Fprintln(stdout, "note: "+note)
	}
	fmt.Fprintf(stdout, `iomt demo: a ward of %d simulated patients
  dashboard   %s   (sign in with one of the accounts below)
  REST API    %s/api/v1   (see %s/api/v1/openapi.json)
  MQTT        %s
  data        %s
%sThree patients are septic: two deteriorate on 8× and 4× timelines, the third in real time;
one goes into atrial fibrillation within a minute, and a diabetic's night runs on a 60× clock that starts 8 h ago
and catches up with now: the low comes at about 8 minutes (its readings are dated overnight).
Ctrl-C stops.
`, len(beds), base, base, base, n.MQTTAddr(), dir, accounts)
	if *duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *duration)
		defer cancel()
	}
	var st sim.Stats
	done := make(chan error, 1)
	go func() {
		done <- sim.Run(ctx, sim.Options{Broker: n.MQTTAddr(), CBOR: *format == "cbor", Logger: log.With("component", "sim")}, beds, &st)
	}()
	if err := <-done; err != nil {
		fmt.Fprintf(stderr, "iomt demo: %v\n", err)
		return 1
	}
	printTotals(stdout, &st)
	return 0
}
