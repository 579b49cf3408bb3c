package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/eclipse/paho.golang/paho"
	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"

	"github.com/iomt/iomt"
	ingestmqtt "github.com/iomt/iomt/ingest/mqtt"
	"github.com/iomt/iomt/sensing"
	"github.com/iomt/iomt/sim"
)

const benchUsage = `Usage: iomt bench ingest [flags]
       iomt bench alarms [flags]

Simulated devices publish over real MQTT (one connection each, QoS 1) to an iomt server — by
default one it starts as a child process on a fresh data directory — and the bench reports the
sustained rate stored, publish→stored latency (the server acknowledges only what it has
stored durably), and the server's CPU and memory. --target relay runs the same load through
the bare embedded broker (no authentication, no storage) to one subscriber, for comparison.

bench alarms: pulse oximeters publish SpO2 every second and each, in turn, dips below the alarm
limit; the bench measures publish → alarm on the live stream and publish → signed webhook
received, p50/p99, under that load.
`

func benchCommand(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, benchUsage)
		return 2
	}
	switch args[0] {
	case "ingest":
		return benchIngest(ctx, args[1:], stdout, stderr)
	case "alarms":
		return benchAlarms(ctx, args[1:], stdout, stderr)
	case "relay": // the bare broker, run as a child of `bench ingest --target relay`
		return benchRelay(ctx, args[1:], stdout, stderr)
	}
	fmt.Fprintf(stderr, "iomt bench: unknown benchmark %q\n\n%s", args[0], benchUsage)
	return 2
}

// BenchResult is what `iomt bench ingest --json` prints.
type BenchResult struct {
	Target       string  `json:"target"`
	ECGPatches   int     `json:"ecgPatches"`
	VitalDevices int     `json:"vitalDevices"`
	Format       string  `json:"format"`
	Seconds      float64 `json:"seconds"`
	MsgsPerSec   float64 `json:"msgsPerSec"`
	SamplesPerS  float64 `json:"samplesPerSec"`
	OfferedMsgs  float64 `json:"offeredMsgsPerSec"` // what the devices generate per second
	AckP50ms     float64 `json:"ackP50ms"`
	AckP99ms     float64 `json:"ackP99ms"`
	Refused      int64   `json:"refused"`
	Failed       int64   `json:"failed"`
	Delivered    int64   `json:"delivered,omitempty"` // relay: messages the subscriber received
	ServerCPU    float64 `json:"serverCpuCores,omitempty"`
	ServerRSSMB  float64 `json:"serverRssMB,omitempty"`
	ServerPeakMB float64 `json:"serverPeakRssMB,omitempty"`
	SimCPU       float64 `json:"simCpuCores"`
	// CPU time per stored message: steadier than rates on a machine shared with other work.
	ServerCPUPerMsg float64 `json:"serverCpuUsPerMsg,omitempty"`
	SimCPUPerMsg    float64 `json:"simCpuUsPerMsg"`
}

func benchIngest(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bench ingest", flag.ContinueOnError)
	fs.SetOutput(stderr)
	ecg := fs.Int("ecg", 100, "ECG patches (250 Hz lead II, heart rate, respiratory rate; one pack a second)")
	vitals := fs.Int("vitals", 1000, "pulse oximeters (SpO2 and pulse rate at 1 Hz)")
	duration := fs.Duration("duration", 30*time.Second, "how long to measure, after the warm-up")
	warmup := fs.Duration("warmup", 10*time.Second, "time to connect and settle before measuring")
	format := fs.String("format", "json", "SenML encoding: json or cbor")
	target := fs.String("target", "server", "server (iomt serve) or relay (the bare embedded broker)")
	mqttAddr := fs.String("mqtt", "", "MQTT address of a running server (default: start one)")
	apiURL := fs.String("api", "", "HTTP address of that running server, for provisioning")
	tokenFile := fs.String("token-file", "", "file holding the bootstrap token of that running server (or set IOMT_BOOTSTRAP_TOKEN)")
	noSync := fs.Bool("no-sync", false, "start the server with --no-sync")
	serverBin := fs.String("server-bin", "", "iomt binary to start as the server (default: this one), to compare builds under the same load")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *target != "server" && *target != "relay" {
		fmt.Fprintf(stderr, "iomt bench: --target must be server or relay, got %q\n", *target)
		return 2
	}
	if *ecg < 0 || *vitals < 0 || *ecg+*vitals == 0 {
		fmt.Fprintln(stderr, "iomt bench: give some devices with --ecg and --vitals")
		return 2
	}
	if *ecg+*vitals > 19000 {
		// Each device is a connection; this machine allows 20,000 open files per process.
		fmt.Fprintf(stderr, "iomt bench: at most 19,000 devices per process here, got %d\n", *ecg+*vitals)
		return 2
	}
	fail := func(err error) int { fmt.Fprintf(stderr, "iomt bench: %v\n", err); return 1 }
	// The simulator's heap is mostly short-lived packs; trading memory for less GC leaves more
	// of the machine to the server being measured.
	debug.SetGCPercent(400)

	var beds []sim.Bed
	for i := 0; i < *ecg; i++ {
		beds = append(beds, sim.Bed{Scenario: "stable-adult", Seed: uint64(i + 1), Kinds: []string{sensing.ECGPatch}})
	}
	for i := 0; i < *vitals; i++ {
		beds = append(beds, sim.Bed{Scenario: "stable-adult", Seed: uint64(100000 + i), Kinds: []string{sensing.PulseOximeter}})
	}
	tok, err := readSecret(*tokenFile, BootstrapEnv, os.Getenv)
	if err != nil {
		return fail(err)
	}
	token := &tok
	var child *benchChild
	broker := *mqttAddr
	if broker == "" {
		var err error
		broker, *apiURL, *token, child, err = startBenchTarget(*target, *serverBin, *noSync, stderr)
		if err != nil {
			return fail(err)
		}
		defer child.stop(stderr)
	}
	if *target == "relay" {
		for i := range beds {
			id := fmt.Sprintf("bench%05d", i)
			beds[i].Devices = []sim.Device{{Kind: beds[i].Kinds[0], ID: id, Password: "x", Topic: ingestmqtt.DataTopic(iomt.DefaultTenant, id)}}
		}
	} else {
		fmt.Fprintf(stdout, "provisioning %d patients ...\n", len(beds))
		if beds, err = sim.Provision(ctx, sim.API{Base: *apiURL, Token: *token}, beds); err != nil {
			return fail(err)
		}
	}
	var delivered atomic.Int64
	if *target == "relay" {
		if err := subscribeAll(ctx, broker, &delivered); err != nil {
			return fail(err)
		}
	}
	fmt.Fprintf(stdout, "%d ECG patches + %d pulse oximeters → %s (%s), warm-up %s, measuring %s\n", *ecg, *vitals, broker, *format, *warmup, *duration)
	// The load runs a little past the measuring window, so the window closes on a steady state
	// rather than on connections being torn down.
	runCtx, cancel := context.WithTimeout(ctx, *warmup+*duration+2*time.Second)
	defer cancel()
	var st sim.Stats
	done := make(chan error, 1)
	go func() { done <- sim.Run(runCtx, sim.Options{Broker: broker, CBOR: *format == "cbor"}, beds, &st) }()

	pid := os.Getpid()
	if child != nil {
		pid = child.cmd.Process.Pid
	}
	select {
	case <-time.After(*warmup):
	case err := <-done:
		return fail(fmt.Errorf("simulator stopped during warm-up: %v", err))
	}
	st.Latency(0.5) // discard the warm-up's latencies
	m0, s0, d0 := st.Messages.Load(), st.Samples.Load(), delivered.Load()
	cpu0, scpu0 := cpuSeconds(pid), cpuSeconds(os.Getpid())
	t0 := time.Now()
	tick := time.NewTicker(5 * time.Second)
	defer tick.Stop()
	lastM, last := m0, t0
	var runErr error
	// What the window measured, read when it closes: the simulator's teardown afterwards is
	// not part of it.
	var m1, s1, d1 int64
	var cpu1, scpu1, el, rss, peak float64
	var q []time.Duration
	closeWindow := func() {
		el = time.Since(t0).Seconds()
		m1, s1, d1 = st.Messages.Load(), st.Samples.Load(), delivered.Load()
		cpu1, scpu1 = cpuSeconds(pid), cpuSeconds(os.Getpid())
		q = st.Latency(0.5, 0.99)
		rss, peak = rssMB(pid)
	}
	window := time.NewTimer(*duration)
	defer window.Stop()
loop:
	for {
		select {
		case runErr = <-done:
			if el == 0 {
				closeWindow()
			}
			break loop
		case <-window.C:
			closeWindow()
		case now := <-tick.C:
			if el != 0 {
				continue
			}
			m := st.Messages.Load()
			fmt.Fprintf(stdout, "  %4.0fs  %7.0f msgs/s  connected %d (%d failed attempts)  refused %d  failed %d\n",
				now.Sub(t0).Seconds(), float64(m-lastM)/now.Sub(last).Seconds(), st.Connects.Load(), st.ConnErrs.Load(), st.Refused.Load(), st.Failed.Load())
			lastM, last = m, now
		}
	}
	if runErr != nil {
		return fail(runErr)
	}
	res := BenchResult{
		Target: *target, ECGPatches: *ecg, VitalDevices: *vitals, Format: *format, Seconds: el,
		MsgsPerSec:  float64(m1-m0) / el,
		SamplesPerS: float64(s1-s0) / el,
		OfferedMsgs: float64(*ecg + *vitals),
		AckP50ms:    float64(q[0]) / 1e6, AckP99ms: float64(q[1]) / 1e6,
		Refused: st.Refused.Load(), Failed: st.Failed.Load(),
		ServerCPU: (cpu1 - cpu0) / el, ServerRSSMB: rss, ServerPeakMB: peak,
		SimCPU: (scpu1 - scpu0) / el,
	}
	if *target == "relay" {
		res.Delivered = d1 - d0
	}
	if child == nil {
		res.ServerCPU, res.ServerRSSMB, res.ServerPeakMB = 0, 0, 0 // not ours to measure
	}
	if res.MsgsPerSec > 0 {
		res.ServerCPUPerMsg = res.ServerCPU / res.MsgsPerSec * 1e6
		res.SimCPUPerMsg = res.SimCPU / res.MsgsPerSec * 1e6
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(res)
		return 0
	}
	serverCPU := fmt.Sprintf("%.2f cores (%.0f µs per message)", res.ServerCPU, res.ServerCPUPerMsg)
	serverRSS := fmt.Sprintf("%.0f MB (peak %.0f MB)", res.ServerRSSMB, res.ServerPeakMB)
	if child == nil {
		serverCPU, serverRSS = "not measured (a server the bench did not start)", "not measured"
	}
	fmt.Fprintf(stdout, `
target                 %s
devices                %d ECG patches (250 Hz) + %d pulse oximeters (1 Hz), %s
offered                %.0f msgs/s
stored (acknowledged)  %.0f msgs/s, %.0f samples/s
publish→stored         p50 %.2f ms, p99 %.2f ms
refused / failed       %d / %d
server CPU             %s
server RSS             %s
simulator CPU          %.2f cores (%.0f µs per message)
`, res.Target, res.ECGPatches, res.VitalDevices, res.Format, res.OfferedMsgs, res.MsgsPerSec, res.SamplesPerS,
		res.AckP50ms, res.AckP99ms, res.Refused, res.Failed, serverCPU, serverRSS, res.SimCPU, res.SimCPUPerMsg)
	if *target == "relay" {
		fmt.Fprintf(stdout, "delivered              %.0f msgs/s to one subscriber\n", float64(res.Delivered)/el)
	}
	return 0
}

// benchChild is the server (or relay) a bench started, and its data directory.
type benchChild struct {
	cmd *exec.Cmd
	dir string
}

// stop interrupts the child, waits for it and removes its data directory.
func (c *benchChild) stop(stderr io.Writer) {
	_ = c.cmd.Process.Signal(os.Interrupt)
	// mochi-mqtt v2.7.9 can deadlock in Close while thousands of clients disconnect at once
	// (a recursive read lock in Clients.GetByListener): do not hang with it.
	exited := make(chan struct{})
	go func() { _ = c.cmd.Wait(); close(exited) }()
	select {
	case <-exited:
	case <-time.After(30 * time.Second):
		fmt.Fprintln(stderr, "iomt bench: the server did not stop within 30 s of SIGINT; killed")
		_ = c.cmd.Process.Kill()
		<-exited
	}
	if c.dir != "" {
		if err := os.RemoveAll(c.dir); err != nil {
			fmt.Fprintf(stderr, "iomt bench: %v\n", err)
		}
	}
}

// startBenchTarget runs `iomt serve` (or the bare relay) as a child on free loopback ports.
func startBenchTarget(target, exe string, noSync bool, stderr io.Writer, extra ...string) (broker, api, token string, child *benchChild, err error) {
	if exe == "" {
		if exe, err = os.Executable(); err != nil {
			return "", "", "", nil, err
		}
	}
	free := func() string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return "127.0.0.1:0"
		}
		defer ln.Close()
		return ln.Addr().String()
	}
	broker, httpAddr := free(), free()
	token = "bench-admin-token"
	child = &benchChild{}
	if target == "relay" {
		child.cmd = exec.Command(exe, "bench", "relay", "--mqtt-addr", broker)
	} else {
		if child.dir, err = os.MkdirTemp("", "iomt-bench-"); err != nil {
			return "", "", "", nil, err
		}
		args := []string{"serve", "--data-dir", filepath.Join(child.dir, "data"), "--http-addr", httpAddr, "--mqtt-addr", broker, "--log-level", "warn"}
		if noSync {
			args = append(args, "--no-sync")
		}
		args = append(args, extra...)
		child.cmd = exec.Command(exe, args...)
		// IOMT_ADMIN_TOKEN too, so that --server-bin can be a build from before accounts existed
		// and the same load compares the two.
		child.cmd.Env = append(os.Environ(), BootstrapEnv+"="+token, "IOMT_ADMIN_TOKEN="+token)
	}
	cmd := child.cmd
	cmd.Stderr = stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		os.RemoveAll(child.dir)
		return "", "", "", nil, err
	}
	if err := cmd.Start(); err != nil {
		os.RemoveAll(child.dir)
		return "", "", "", nil, fmt.Errorf("start %s: %w", target, err)
	}
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(out)
		once := false
		for sc.Scan() {
			if !once && (strings.HasPrefix(sc.Text(), "iomt serving") || strings.HasPrefix(sc.Text(), "relay listening")) {
				once = true
				close(ready)
			}
		}
	}()
	select {
	case <-ready:
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		os.RemoveAll(child.dir)
		return "", "", "", nil, fmt.Errorf("%s did not start", target)
	}
	return broker, "http://" + httpAddr, token, child, nil
}

// benchRelay is the bare embedded broker: anyone may connect and publish, nothing is stored.
func benchRelay(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bench relay", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("mqtt-addr", "127.0.0.1:1883", "address to listen on")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintf(stderr, "iomt bench relay: %v\n", err)
		return 1
	}
	caps := mochi.NewDefaultServerCapabilities()
	caps.MaximumClientWritesPending = 64 // as the node's broker does
	srv := mochi.New(&mochi.Options{Capabilities: caps})
	_ = srv.AddHook(new(auth.AllowHook), nil)
	if err := srv.AddListener(listeners.NewNet("tcp", ln)); err != nil {
		fmt.Fprintf(stderr, "iomt bench relay: %v\n", err)
		return 1
	}
	if err := srv.Serve(); err != nil {
		fmt.Fprintf(stderr, "iomt bench relay: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "relay listening on %s\n", ln.Addr())
	<-ctx.Done()
	_ = srv.Close()
	return 0
}

// subscribeAll counts what the relay delivers to one subscriber of every device topic.
func subscribeAll(ctx context.Context, broker string, n *atomic.Int64) error {
	conn, err := net.Dial("tcp", broker)
	if err != nil {
		return err
	}
	c := paho.NewClient(paho.ClientConfig{Conn: conn, ClientID: "bench-subscriber",
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(paho.PublishReceived) (bool, error) { n.Add(1); return true, nil }}})
	if _, err := c.Connect(ctx, &paho.Connect{KeepAlive: 60, CleanStart: true, ClientID: "bench-subscriber"}); err != nil {
		return fmt.Errorf("subscriber: %w", err)
	}
	if _, err := c.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "iomt/v1/+/devices/+/senml", QoS: 1}}}); err != nil {
		return fmt.Errorf("subscriber: %w", err)
	}
	return nil
}

// cpuSeconds is the user+system CPU time of a process, from /proc.
func cpuSeconds(pid int) float64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the command name (which may hold spaces) start after the last ')'.
	s := string(data)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100 // USER_HZ is 100 on Linux
}

// rssMB is a process's resident and peak resident memory, from /proc.
func rssMB(pid int) (rss, peak float64) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		v, _ := strconv.ParseFloat(f[1], 64)
		switch f[0] {
		case "VmRSS:":
			rss = v / 1024
		case "VmHWM:":
			peak = v / 1024
		}
	}
	return rss, peak
}
