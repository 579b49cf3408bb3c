package embedded

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/iomt/iomt"
	"github.com/iomt/iomt/store/storetest"
)

const (
	crashEnvDir   = "IOMT_EMBEDDED_CRASH_DIR"
	crashEnvStart = "IOMT_EMBEDDED_CRASH_START"
	crashDevices  = 8
)

// crashBatch is batch i of device k: HR and SpO2 at second i, a late HR reading at
// second i-10 plus 500 ms every fifth batch, and a 25-sample waveform segment.
func crashBatch(k, i int) iomt.Batch {
	dev := fmt.Sprintf("dev%d", k)
	pat := "pat-" + dev
	at := storetest.T0.Add(time.Duration(i) * time.Second)
	b := storetest.Vitals(pat, dev, at, 1, storetest.HR, storetest.SpO2)
	b.Observations[0].Value = float64(i)
	if i%5 == 0 && i >= 10 {
		b.Observations = append(b.Observations, iomt.Observation{Patient: pat, Device: dev, Code: storetest.HR,
			Time: at.Add(-9500 * time.Millisecond), Value: float64(-i), Unit: "/min"})
	}
	b.Waveforms = []iomt.Waveform{storetest.Wave(pat, dev, storetest.ECGII, at, 40*time.Millisecond, 25, int32(i))}
	return b
}

// TestCrashHelper is the child process of TestCrashKill9: it appends until killed and prints
// "ack k i" after each acknowledged batch.
func TestCrashHelper(t *testing.T) {
	dir := os.Getenv(crashEnvDir)
	if dir == "" {
		t.Skip("helper process for TestCrashKill9")
	}
	start, _ := strconv.Atoi(os.Getenv(crashEnvStart))
	// Small segments and frequent checkpoints so the kill lands in every phase.
	s, err := Open(dir, Options{Logger: quiet, SegmentBytes: 16 << 10, CheckpointBytes: 64 << 10, CheckpointInterval: 50 * time.Millisecond})
	if err != nil {
		fmt.Println("open-error", err)
		os.Exit(2)
	}
	var out sync.Mutex
	w := bufio.NewWriter(os.Stdout)
	var wg sync.WaitGroup
	for k := 0; k < crashDevices; k++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := start; ; i++ {
				if _, err := s.Append(context.Background(), []iomt.Batch{crashBatch(k, i)}); err != nil {
					fmt.Fprintln(os.Stderr, "append:", err)
					os.Exit(3)
				}
				out.Lock()
				fmt.Fprintf(w, "ack %d %d\n", k, i)
				w.Flush()
				out.Unlock()
			}
		}()
	}
	wg.Wait()
}

func TestCrashKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns processes")
	}
	dir := t.TempDir()
	acked := map[[2]int]bool{}
	start := 0
	for round := 0; round < 4; round++ {
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashHelper$", "-test.count=1")
		cmd.Env = append(os.Environ(), crashEnvDir+"="+dir, crashEnvStart+"="+strconv.Itoa(start))
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		var stderr strings.Builder
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(stdout)
		killAfter := 300 + rand.IntN(1500)
		n := 0
		killed := false
		for sc.Scan() {
			var k, i int
			if _, err := fmt.Sscanf(sc.Text(), "ack %d %d", &k, &i); err != nil {
				t.Fatalf("child said %q", sc.Text())
			}
			acked[[2]int{k, i}] = true
			if n++; n == killAfter && !killed {
				if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
					t.Fatal(err)
				}
				killed = true
			}
		}
		err = cmd.Wait()
		if !killed {
			t.Fatalf("child exited before the kill: %v\n%s", err, stderr.String())
		}
		t.Logf("round %d: killed after %d acks (%d acknowledged in all)", round, n, len(acked))
		// Next round starts past everything the child may have sent.
		start += 100000
	}

	s := openTest(t, dir)
	defer s.Close()
	ctx := context.Background()
	for k := 0; k < crashDevices; k++ {
		dev := fmt.Sprintf("dev%d", k)
		pat := "pat-" + dev
		hr, err := s.Observations(ctx, iomt.ObservationQuery{Patient: pat, Code: storetest.HR})
		if err != nil {
			t.Fatal(err)
		}
		seen := map[int64]int{}
		for _, o := range hr {
			seen[o.Time.UnixMilli()]++
		}
		waves, err := s.Waveforms(ctx, iomt.WaveformQuery{Patient: pat, Code: storetest.ECGII})
		if err != nil {
			t.Fatal(err)
		}
		wseen := map[int64]int{}
		for _, w := range waves {
			wseen[w.Start.UnixMilli()]++
		}
		for ms, c := range seen {
			if c != 1 {
				t.Fatalf("%s: reading at %d stored %d times", dev, ms, c)
			}
		}
		for ms, c := range wseen {
			if c != 1 {
				t.Fatalf("%s: segment at %d stored %d times", dev, ms, c)
			}
		}
		for key := range acked {
			if key[0] != k {
				continue
			}
			b := crashBatch(k, key[1])
			for _, o := range b.Observations {
				if o.Code == storetest.HR && seen[o.Time.UnixMilli()] != 1 {
					if d := os.Getenv("IOMT_CRASH_KEEP"); d != "" {
						s.abandon()
						copyDir(t, dir, d)
					}
					t.Fatalf("acknowledged reading of batch %v at %v lost", key, o.Time)
				}
			}
			if wseen[b.Waveforms[0].Start.UnixMilli()] != 1 {
				t.Fatalf("acknowledged segment of batch %v lost", key)
			}
			// Exactly once: appending it again finds only duplicates.
			d, err := s.Append(ctx, []iomt.Batch{b})
			if err != nil {
				t.Fatal(err)
			}
			if d[0] != b.Samples() {
				t.Fatalf("batch %v again: %d duplicates of %d samples", key, d[0], b.Samples())
			}
		}
	}
	segs, _ := filepath.Glob(filepath.Join(dir, "wal", "*.wal"))
	t.Logf("%d acknowledged batches verified; %d wal segments left", len(acked), len(segs))
}
