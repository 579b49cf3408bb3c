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
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/iomt/iomt/alarm/notify"
	"github.com/iomt/iomt/sensing"
	"github.com/iomt/iomt/sim"
)

// AlarmBenchResult is what `iomt bench alarms --json` prints.
type AlarmBenchResult struct {
	Devices      int     `json:"devices"`
	Seconds      float64 `json:"seconds"`
	MsgsPerSec   float64 `json:"msgsPerSec"`
	Dips         int     `json:"dips"`
	Stream       string  `json:"stream"` // "events" (alarm console) or "readings+events" (ward view)
	StreamAlarms int     `json:"streamAlarms"`
	Webhooks     int     `json:"webhooks"`
	StreamP50ms  float64 `json:"streamP50ms"`
	StreamP99ms  float64 `json:"streamP99ms"`
	StreamMaxms  float64 `json:"streamMaxms"`
	HookP50ms    float64 `json:"webhookP50ms"`
	HookP99ms    float64 `json:"webhookP99ms"`
	HookMaxms    float64 `json:"webhookMaxms"`
	BadSigs      int64   `json:"badSignatures"`
	ServerCPU    float64 `json:"serverCpuCores"`
}

// The bench's rule: no validation delay, so what is measured is the path, not a chosen wait.
const benchAlarmRules = `version: 1
rules:
  - id: spo2-low
    kind: threshold
    code: 59408-5
    below: [{limit: 90, priority: high}]
    hysteresis: 1
    delay: 0s
    message: "SpO2 {value} % (below {limit} %)"
`

// latencies collects publish → arrival times per patient's current dip.
type latencies struct {
	mu    sync.Mutex
	sent  map[string]time.Time // patient → when its dip was published
	seen  map[string]bool      // patient → this dip already measured on this path
	got   []time.Duration
	count int
}

func newLatencies() *latencies {
	return &latencies{sent: map[string]time.Time{}, seen: map[string]bool{}}
}

func (l *latencies) dip(patient string, at time.Time) {
	l.mu.Lock()
	l.sent[patient] = at
	l.seen[patient] = false
	l.mu.Unlock()
}

func (l *latencies) arrived(patient string, now time.Time, measure bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	at, ok := l.sent[patient]
	if !ok || l.seen[patient] {
		return
	}
	l.seen[patient] = true
	l.count++
	if measure {
		l.got = append(l.got, now.Sub(at))
	}
}

func (l *latencies) quantiles() (p50, p99, maxv float64, n int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	d := slices.Clone(l.got)
	slices.Sort(d)
	if len(d) == 0 {
		return 0, 0, 0, l.count
	}
	q := func(f float64) float64 { return float64(d[min(len(d)-1, int(f*float64(len(d))))]) / 1e6 }
	return q(0.5), q(0.99), float64(d[len(d)-1]) / 1e6, l.count
}

func benchAlarms(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bench alarms", flag.ContinueOnError)
	fs.SetOutput(stderr)
	devices := fs.Int("devices", 5000, "pulse oximeters publishing SpO2 once a second")
	every := fs.Duration("every", 30*time.Second, "each device dips below the limit once per this period (staggered)")
	duration := fs.Duration("duration", 60*time.Second, "how long to measure, after the warm-up")
	warmup := fs.Duration("warmup", 15*time.Second, "time to connect and settle before measuring")
	serverBin := fs.String("server-bin", "", "iomt binary to start as the server (default: this one)")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	withReadings := fs.Bool("stream-readings", false, "follow the ward stream with every reading (default: events only, as an alarm console)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *devices < 1 || *devices > 19000 {
		fmt.Fprintf(stderr, "iomt bench: --devices must be from 1 to 19,000, got %d\n", *devices)
		return 2
	}
	if *every < 2*time.Second {
		fmt.Fprintf(stderr, "iomt bench: --every must be at least 2s (a dip and its recovery), got %s\n", *every)
		return 2
	}
	fail := func(err error) int { fmt.Fprintf(stderr, "iomt bench: %v\n", err); return 1 }

	// The webhook receiver: the routing's team hook, signed with a secret only we and the
	// server know.
	secret := []byte(newToken())
	stream, hooks := newLatencies(), newLatencies()
	var measuring atomic.Bool
	var badSigs atomic.Int64
	hookLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fail(err)
	}
	hookSrv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		now := time.Now()
		if notify.Verify(secret, r.Header.Get("X-Iomt-Signature"), r.Header.Get("X-Iomt-Timestamp"), body, now, time.Minute) != nil {
			badSigs.Add(1)
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		var p notify.Payload
		if json.Unmarshal(body, &p) == nil && p.Reason == "raised" {
			hooks.arrived(p.Alarm.Patient, now, measuring.Load())
		}
	})}
	go func() { _ = hookSrv.Serve(hookLn) }()
	defer hookSrv.Close()

	dir, err := os.MkdirTemp("", "iomt-bench-alarms-")
	if err != nil {
		return fail(err)
	}
	defer os.RemoveAll(dir)
	rules, routing := filepath.Join(dir, "rules.yaml"), filepath.Join(dir, "routing.yaml")
	routingDoc := "default_team: ward\nteams:\n  - id: ward\n    escalation: {}\n    members: []\n    hooks: [\"http://" + hookLn.Addr().String() + "/alarms\"]\n"
	if err := os.WriteFile(rules, []byte(benchAlarmRules), 0o600); err != nil {
		return fail(err)
	}
	if err := os.WriteFile(routing, []byte(routingDoc), 0o600); err != nil {
		return fail(err)
	}
	broker, apiURL, token, child, err := startBenchTarget("server", *serverBin, false, stderr,
		"--alarm-rules", rules, "--alarm-routing", routing, "--alarm-webhook-secret", string(secret))
	if err != nil {
		return fail(err)
	}
	defer child.stop(stderr)

	beds := make([]sim.Bed, *devices)
	for i := range beds {
		beds[i] = sim.Bed{Scenario: "stable-adult", Seed: uint64(i + 1), Kinds: []string{sensing.PulseOximeter}}
	}
	fmt.Fprintf(stdout, "provisioning %d patients ...\n", len(beds))
	if beds, err = sim.Provision(ctx, sim.API{Base: apiURL, Token: token}, beds); err != nil {
		return fail(err)
	}

	runCtx, cancel := context.WithTimeout(ctx, *warmup+*duration)
	defer cancel()
	if err := readAlarmStream(runCtx, apiURL, token, *withReadings, stream, &measuring); err != nil {
		return fail(err)
	}

	var msgs atomic.Int64
	var wg sync.WaitGroup
	start := time.Now().Truncate(time.Second).Add(time.Second)
	period := int64(*every / time.Second)
	for i, b := range beds {
		d := b.Devices[0]
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := sim.NewClient(sim.ClientOptions{Addr: broker, ClientID: d.ID, Username: d.ID, Password: d.Password,
				OnAck: func(a sim.Ack) {
					if a.Code < 0x80 {
						msgs.Add(1)
					}
				}})
			defer c.Close()
			// Connects are spread over the first seconds so the server is not flooded.
			time.Sleep(time.Duration(i%1000) * 5 * time.Millisecond)
			if err := c.Connect(runCtx); err != nil {
				if runCtx.Err() == nil {
					fmt.Fprintf(stderr, "iomt bench: %s: %v\n", d.ID, err)
				}
				return
			}
			offset := int64(i) % period
			// Devices are not in step: each publishes at its own phase within the second.
			phase := time.Duration(i) * time.Second / time.Duration(len(beds))
			for sec := int64(0); ; sec++ {
				at := start.Add(time.Duration(sec)*time.Second + phase)
				select {
				case <-runCtx.Done():
					return
				case <-time.After(time.Until(at)):
				}
				v := 97.0
				dip := (sec+offset)%period == 0 && time.Since(start) > 5*time.Second
				if dip {
					v = 85
				}
				now := time.Now()
				pack := `[{"bn":"urn:dev:id:` + d.ID + `:","bt":` + strconv.FormatFloat(float64(now.UnixMilli())/1000, 'f', 3, 64) +
					`,"n":"59408-5","u":"%","v":` + strconv.FormatFloat(v, 'f', 0, 64) + `}]`
				if dip {
					stream.dip(b.Patient, now)
					hooks.dip(b.Patient, now)
				}
				if err := c.Publish(runCtx, d.Topic, []byte(pack), 0); err != nil {
					return
				}
			}
		}()
	}
	pid := child.cmd.Process.Pid
	select {
	case <-time.After(*warmup):
	case <-runCtx.Done():
	}
	measuring.Store(true)
	m0, cpu0, t0 := msgs.Load(), cpuSeconds(pid), time.Now()
	_, _, _, s0 := stream.quantiles()
	_, _, _, h0 := hooks.quantiles()
	tick := time.NewTicker(5 * time.Second)
	defer tick.Stop()
	lastM, last := m0, t0
loop:
	for {
		select {
		case <-runCtx.Done():
			break loop
		case now := <-tick.C:
			m := msgs.Load()
			_, _, _, sn := stream.quantiles()
			_, _, _, hn := hooks.quantiles()
			fmt.Fprintf(stdout, "  %4.0fs  %7.0f msgs/s  alarms on the stream %d, webhooks %d\n",
				now.Sub(t0).Seconds(), float64(m-lastM)/now.Sub(last).Seconds(), sn-s0, hn-h0)
			lastM, last = m, now
		}
	}
	el := time.Since(t0).Seconds()
	res := AlarmBenchResult{Devices: *devices, Seconds: el, MsgsPerSec: float64(msgs.Load()-m0) / el,
		Stream: "events", BadSigs: badSigs.Load(), ServerCPU: (cpuSeconds(pid) - cpu0) / el}
	if *withReadings {
		res.Stream = "readings+events"
	}
	var sn, hn int
	res.StreamP50ms, res.StreamP99ms, res.StreamMaxms, sn = stream.quantiles()
	res.HookP50ms, res.HookP99ms, res.HookMaxms, hn = hooks.quantiles()
	res.StreamAlarms, res.Webhooks = sn-s0, hn-h0
	res.Dips = int(el * float64(*devices) / float64(period))
	wg.Wait()
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(res)
		return 0
	}
	fmt.Fprintf(stdout, `
devices                  %d pulse oximeters, SpO2 at 1 Hz, each dipping to 85 %% once every %s
ingest                   %.0f msgs/s acknowledged
alarms measured          %d on the live stream (%s), %d webhooks (about %d dips expected)
publish → stream alarm   p50 %.2f ms, p99 %.2f ms, max %.1f ms
publish → webhook        p50 %.2f ms, p99 %.2f ms, max %.1f ms
bad signatures           %d
server CPU               %.2f cores
`, res.Devices, *every, res.MsgsPerSec, res.StreamAlarms, res.Stream, res.Webhooks, res.Dips,
		res.StreamP50ms, res.StreamP99ms, res.StreamMaxms, res.HookP50ms, res.HookP99ms, res.HookMaxms, res.BadSigs, res.ServerCPU)
	return 0
}

// readAlarmStream follows the ward's live stream (readings and events, or events only as an
// alarm console does) and records each raised alarm's arrival.
func readAlarmStream(ctx context.Context, apiURL, token string, readings bool, l *latencies, measuring *atomic.Bool) error {
	url := apiURL + "/api/v1/stream?readings=false"
	if readings {
		url = apiURL + "/api/v1/stream"
	}
	req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("live stream: %w", err)
	}
	if resp.StatusCode != 200 {
		resp.Body.Close()
		return fmt.Errorf("live stream: %s", resp.Status)
	}
	go func() {
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<16), 1<<22)
		event := ""
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "event: "):
				event = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: ") && event == "alarm":
				now := time.Now()
				var ch struct {
					Change string
					Alarm  struct{ Patient string }
				}
				if json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &ch) == nil && ch.Change == "raised" {
					l.arrived(ch.Alarm.Patient, now, measuring.Load())
				}
			case line == "":
				event = ""
			}
		}
	}()
	return nil
}
