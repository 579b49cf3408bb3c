package spool

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func open(t testing.TB, dir string, o Options) *Spool {
	t.Helper()
	if o.Logger == nil {
		o.Logger = quiet()
	}
	s, err := Open(dir, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func put(t testing.TB, s *Spool, dev string, c Class, payload string) uint64 {
	t.Helper()
	seq, err := s.Put(context.Background(), Entry{Device: dev, Class: c, Payload: []byte(payload)})
	if err != nil {
		t.Fatalf("put %s %s: %v", dev, payload, err)
	}
	return seq
}

func payloads(es []Entry) []string {
	var out []string
	for _, e := range es {
		out = append(out, string(e.Payload))
	}
	return out
}

func TestRefusals(t *testing.T) {
	s := open(t, t.TempDir(), Options{MaxBytes: 1000})
	ctx := context.Background()
	cases := []struct {
		name string
		e    Entry
		want error
	}{
		{"empty device", Entry{Class: Spot, Payload: []byte("x")}, ErrEmptyDevice},
		{"NUL in device", Entry{Device: "a\x00b", Class: Spot, Payload: []byte("x")}, ErrBadDevice},
		{"long device", Entry{Device: strings.Repeat("d", MaxDeviceLen+1), Class: Spot, Payload: []byte("x")}, ErrBadDevice},
		{"empty payload", Entry{Device: "d", Class: Spot}, ErrEmptyPayload},
		{"no class", Entry{Device: "d", Payload: []byte("x")}, ErrBadClass},
		{"too large", Entry{Device: "d", Class: Alarm, Payload: make([]byte, 1000)}, ErrTooLarge},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := s.Put(ctx, c.e)
			if !errors.Is(err, c.want) {
				t.Fatalf("got %v, want %v", err, c.want)
			}
			if !strings.Contains(err.Error(), "spool: put") {
				t.Fatalf("error lacks context: %v", err)
			}
		})
	}
	if d, _, _ := s.Stats(); d != 0 {
		t.Fatalf("depth %d after refusals", d)
	}
}

func TestOrderAndAck(t *testing.T) {
	s := open(t, t.TempDir(), Options{NoSync: true})
	put(t, s, "a", Waveform, "a1")
	put(t, s, "b", Spot, "b1")
	put(t, s, "c", Waveform, "c1")
	put(t, s, "a", Spot, "a2")
	put(t, s, "c", Alarm, "c2") // pulls c1 forward with it
	put(t, s, "b", Waveform, "b2")

	got, err := s.Next(100)
	if err != nil {
		t.Fatal(err)
	}
	want := "c1 c2 a1 b1 a2 b2" // a1 carries a2's Spot priority and is older than b1
	if g := strings.Join(payloads(got), " "); g != want {
		t.Fatalf("order %q, want %q", g, want)
	}
	// Next is a peek.
	again, _ := s.Next(2)
	if g := strings.Join(payloads(again), " "); g != "c1 c2" {
		t.Fatalf("second Next %q", g)
	}
	if err := s.Ack(got[:2]...); err != nil {
		t.Fatal(err)
	}
	if err := s.Remove("a", 1); err != nil {
		t.Fatal(err)
	}
	rest, _ := s.Next(100)
	if g := strings.Join(payloads(rest), " "); g != "b1 a2 b2" {
		t.Fatalf("after ack %q", g)
	}
	if g := fmt.Sprintf("%s/%d %s/%d %s/%d", rest[0].Device, rest[0].Seq, rest[1].Device, rest[1].Seq, rest[2].Device, rest[2].Seq); g != "b/1 a/2 b/2" {
		t.Fatalf("seqs %s", g)
	}
}

func TestPerDeviceOrderUnderMixedClasses(t *testing.T) {
	s := open(t, t.TempDir(), Options{NoSync: true})
	classes := []Class{Waveform, Spot, Alarm, Waveform, Spot, Waveform, Alarm, Waveform}
	for i := 0; i < 200; i++ {
		dev := fmt.Sprintf("d%d", i%7)
		put(t, s, dev, classes[i%len(classes)], strconv.Itoa(i))
	}
	last := map[string]uint64{}
	n := 0
	for {
		es, err := s.Next(13)
		if err != nil {
			t.Fatal(err)
		}
		if len(es) == 0 {
			break
		}
		for _, e := range es {
			if e.Seq != last[e.Device]+1 {
				t.Fatalf("%s: seq %d after %d", e.Device, e.Seq, last[e.Device])
			}
			last[e.Device] = e.Seq
			n++
		}
		if err := s.Ack(es...); err != nil {
			t.Fatal(err)
		}
	}
	if n != 200 {
		t.Fatalf("delivered %d of 200", n)
	}
}

func TestFullPolicy(t *testing.T) {
	reg := prometheus.NewRegistry()
	s := open(t, t.TempDir(), Options{MaxBytes: 10 * (100 + 1 + entryOverhead), Registerer: reg, NoSync: true})
	p := strings.Repeat("x", 96)
	entry := func(tag string) string { return tag + p[len(tag):] + "...." }
	// Fill: 4 waveforms, 3 spots, 3 alarms (10 entries of 133 B).
	for i, c := range []Class{Waveform, Spot, Alarm, Waveform, Spot, Alarm, Waveform, Spot, Alarm, Waveform} {
		put(t, s, "d", c, entry(fmt.Sprintf("%s%d", c, i)))
	}
	if d, _, _ := s.Stats(); d != 10 {
		t.Fatalf("depth %d", d)
	}
	// A spot reading evicts the oldest waveform.
	put(t, s, "d", Spot, entry("spot10"))
	es, _ := s.Next(100)
	if g := payloads(es)[0][:9]; g != "spot1xxxx" {
		t.Fatalf("first after eviction %q (waveform0 should be gone)", g)
	}
	// Alarms push out the remaining waveforms, then the oldest spots.
	for i := 11; i < 18; i++ {
		put(t, s, "d", Alarm, entry(fmt.Sprintf("alarm%d", i)))
	}
	es, _ = s.Next(100)
	var classes []string
	for _, e := range es {
		classes = append(classes, e.Class.String())
	}
	if g := strings.Join(classes, ","); g != "alarm,alarm,alarm,alarm,alarm,alarm,alarm,alarm,alarm,alarm" {
		t.Fatalf("classes after alarms: %s", g)
	}
	// A waveform may not evict anything of higher priority.
	if _, err := s.Put(context.Background(), Entry{Device: "d", Class: Waveform, Payload: []byte(entry("w"))}); !errors.Is(err, ErrFull) {
		t.Fatalf("waveform into a spool of alarms: %v", err)
	}
	// Entirely alarms: a new alarm is refused, nothing is dropped.
	if _, err := s.Put(context.Background(), Entry{Device: "d", Class: Alarm, Payload: []byte(entry("a"))}); !errors.Is(err, ErrFull) {
		t.Fatalf("alarm into a spool of alarms: %v", err)
	}
	if v := gauge(t, reg, "iomt_spool_dropped_total", "waveform"); v != 4 {
		t.Fatalf("dropped waveforms %v", v)
	}
	if v := gauge(t, reg, "iomt_spool_dropped_total", "spot"); v != 4 {
		t.Fatalf("dropped spots %v", v)
	}
	if v := gauge(t, reg, "iomt_spool_dropped_total", "alarm"); v != 0 {
		t.Fatalf("dropped alarms %v", v)
	}
	if v := gauge(t, reg, "iomt_spool_refused_total", "alarm"); v != 1 {
		t.Fatalf("refused alarms %v", v)
	}
}

func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	now := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	s := open(t, t.TempDir(), Options{Registerer: reg, NoSync: true, Now: func() time.Time { return now }})
	ctx := context.Background()
	for i := 0; i < 3; i++ {
		if _, err := s.Put(ctx, Entry{Device: "d", Class: Spot, Payload: []byte("12345"), Received: now.Add(time.Duration(i-60) * time.Second)}); err != nil {
			t.Fatal(err)
		}
	}
	depth, b, oldest := s.Stats()
	if depth != 3 || b != 3*(1+5+entryOverhead) || !oldest.Equal(now.Add(-60*time.Second)) {
		t.Fatalf("stats %d %d %v", depth, b, oldest)
	}
	check := func(depth, bytes, age float64) {
		t.Helper()
		if g := gauge(t, reg, "iomt_spool_depth", ""); g != depth {
			t.Errorf("iomt_spool_depth %v, want %v", g, depth)
		}
		if g := gauge(t, reg, "iomt_spool_bytes", ""); g != bytes {
			t.Errorf("iomt_spool_bytes %v, want %v", g, bytes)
		}
		if g := gauge(t, reg, "iomt_spool_oldest_age_seconds", ""); g != age {
			t.Errorf("iomt_spool_oldest_age_seconds %v, want %v", g, age)
		}
	}
	check(3, 114, 60)
	if err := s.Remove("d", 3); err != nil {
		t.Fatal(err)
	}
	check(0, 0, 0)
	// Close unregisters, so a reopened spool can register again.
	s.Close()
	open(t, t.TempDir(), Options{Registerer: reg})
}

func TestRestartResumes(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, Options{MaxBytes: 5 * (1 + 3 + entryOverhead)})
	put(t, s, "a", Waveform, "aw1")
	put(t, s, "a", Alarm, "aa2")
	put(t, s, "b", Spot, "bs1")
	put(t, s, "b", Spot, "bs2")
	put(t, s, "a", Spot, "as3")
	put(t, s, "b", Spot, "bs3") // full: evicts aw1
	if err := s.Remove("b", 1); err != nil {
		t.Fatal(err)
	}
	before, _ := s.Next(100)
	d0, b0, o0 := s.Stats()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = open(t, dir, Options{MaxBytes: 5 * (1 + 3 + entryOverhead)})
	after, _ := s.Next(100)
	if fmt.Sprint(before) != fmt.Sprint(after) {
		t.Fatalf("after restart\n%v\nwant\n%v", after, before)
	}
	if d, b, o := s.Stats(); d != d0 || b != b0 || !o.Equal(o0) {
		t.Fatalf("stats %d %d %v, want %d %d %v", d, b, o, d0, b0, o0)
	}
	// Sequence numbers continue, even for a device whose entries were all removed.
	if err := s.Remove("a", 10); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = open(t, dir, Options{})
	if seq := put(t, s, "a", Spot, "as4"); seq != 4 {
		t.Fatalf("a resumed at %d, want 4", seq)
	}
	if seq := put(t, s, "b", Spot, "bs4"); seq != 4 {
		t.Fatalf("b resumed at %d, want 4", seq)
	}
}

func TestConcurrentPut(t *testing.T) {
	s := open(t, t.TempDir(), Options{})
	var wg sync.WaitGroup
	seqs := make([][]uint64, 8)
	for w := range seqs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				seq, err := s.Put(context.Background(), Entry{Device: fmt.Sprintf("d%d", w%3), Class: Spot, Payload: []byte("p")})
				if err != nil {
					t.Error(err)
					return
				}
				seqs[w] = append(seqs[w], seq)
			}
		}()
	}
	wg.Wait()
	seen := map[string]bool{}
	for w, ss := range seqs {
		for _, q := range ss {
			k := fmt.Sprintf("d%d/%d", w%3, q)
			if seen[k] {
				t.Fatalf("seq %s assigned twice", k)
			}
			seen[k] = true
		}
	}
	if d, _, _ := s.Stats(); d != 400 {
		t.Fatalf("depth %d", d)
	}
}

const crashEnv = "IOMT_SPOOL_CRASH_DIR"

// TestCrashChild is the child of TestCrashKill9: it Puts forever, printing each acknowledged
// entry, and removes entries as an uplink would, printing its intent before each Remove.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashEnv)
	if dir == "" {
		t.Skip("child process of TestCrashKill9")
	}
	s, err := Open(dir, Options{Logger: quiet()})
	if err != nil {
		fmt.Println("ERR", err)
		os.Exit(2)
	}
	var mu sync.Mutex
	out := bufio.NewWriter(os.Stdout)
	say := func(format string, args ...any) {
		mu.Lock()
		fmt.Fprintf(out, format+"\n", args...)
		out.Flush()
		mu.Unlock()
	}
	classes := []Class{Waveform, Spot, Waveform, Alarm}
	for w := 0; w < 4; w++ {
		go func() {
			dev := fmt.Sprintf("dev%d", w)
			for i := 0; ; i++ {
				p := fmt.Sprintf("%s|%d|%d|%s", dev, os.Getpid(), i, strings.Repeat("x", 100+i%300))
				seq, err := s.Put(context.Background(), Entry{Device: dev, Class: classes[i%4], Payload: []byte(p)})
				if err != nil {
					say("ERR %v", err)
					os.Exit(2)
				}
				say("PUT %s %d %s", dev, seq, p)
				if i%10 == 9 {
					say("REMOVING %s %d", dev, seq-5)
					if err := s.Remove(dev, seq-5); err != nil {
						say("ERR %v", err)
						os.Exit(2)
					}
				}
			}
		}()
	}
	select {}
}

func TestCrashKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns processes")
	}
	dir := t.TempDir()
	acked := map[string]map[uint64]string{} // device -> seq -> payload
	maxSeq := map[string]uint64{}
	mayBeRemoved := map[string]uint64{}
	for round := 0; round < 3; round++ {
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), crashEnv+"="+dir)
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 1<<16), 1<<20)
		n, killAt, killed := 0, 150+round*100, false
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) < 3 {
				t.Fatalf("round %d: child: %q", round, sc.Text())
			}
			switch f[0] {
			case "PUT":
				seq, _ := strconv.ParseUint(f[2], 10, 64)
				if acked[f[1]] == nil {
					acked[f[1]] = map[uint64]string{}
				}
				if seq <= maxSeq[f[1]] {
					t.Fatalf("round %d: %s seq %d reused (max acknowledged %d)", round, f[1], seq, maxSeq[f[1]])
				}
				acked[f[1]][seq] = f[3]
				maxSeq[f[1]] = seq
				n++
			case "REMOVING":
				up, _ := strconv.ParseUint(f[2], 10, 64)
				mayBeRemoved[f[1]] = max(mayBeRemoved[f[1]], up)
			default:
				if !killed {
					t.Fatalf("child: %s", sc.Text())
				}
			}
			// After the kill, keep reading what the child wrote before it died: a REMOVING
			// line the parent has not read yet still removed entries.
			if n == killAt && !killed {
				if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
					t.Fatal(err)
				}
				killed = true
			}
		}
		cmd.Wait()
		if n < killAt {
			t.Fatalf("round %d: child ended after %d puts", round, n)
		}

		s, err := Open(dir, Options{Logger: quiet()})
		if err != nil {
			t.Fatalf("round %d: reopen: %v", round, err)
		}
		es, err := s.Next(1 << 20)
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]map[uint64]string{}
		last := map[string]uint64{}
		for _, e := range es {
			if e.Seq <= last[e.Device] {
				t.Fatalf("round %d: %s out of order: %d after %d", round, e.Device, e.Seq, last[e.Device])
			}
			last[e.Device] = e.Seq
			if got[e.Device] == nil {
				got[e.Device] = map[uint64]string{}
			}
			got[e.Device][e.Seq] = string(e.Payload)
		}
		lost := 0
		for dev, m := range acked {
			for seq, p := range m {
				if seq <= mayBeRemoved[dev] {
					continue
				}
				if g, ok := got[dev][seq]; !ok || g != p {
					lost++
					t.Errorf("round %d: acknowledged %s/%d missing or changed", round, dev, seq)
				}
			}
		}
		// Numbering continues past everything acknowledged, even removed entries.
		for dev := range acked {
			seq, err := s.Put(context.Background(), Entry{Device: dev, Class: Spot, Payload: []byte("probe")})
			if err != nil {
				t.Fatal(err)
			}
			if seq <= maxSeq[dev] {
				t.Fatalf("round %d: %s resumed at seq %d, acknowledged up to %d", round, dev, seq, maxSeq[dev])
			}
			maxSeq[dev] = seq
			if err := s.Ack(Entry{Device: dev, Seq: seq}); err != nil { // keep the probe out of the next round
				t.Fatal(err)
			}
		}
		d, _, _ := s.Stats()
		t.Logf("round %d: killed after %d acknowledged puts; %d entries on reopen, %d lost", round, n, d, lost)
		s.Close()
	}
}

// gauge reads one sample from reg; label is the class label value, or "" for none.
func gauge(t *testing.T, reg *prometheus.Registry, name, label string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if label != "" && (len(m.GetLabel()) != 1 || m.GetLabel()[0].GetValue() != label) {
				continue
			}
			if m.GetCounter() != nil {
				return m.GetCounter().GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	t.Fatalf("metric %s{%s} not found", name, label)
	return 0
}
