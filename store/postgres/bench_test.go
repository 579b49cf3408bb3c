package postgres

import (
	"context"
	"fmt"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/iomt/iomt"
	"github.com/iomt/iomt/store/storetest"
)

// Benchmarks need IOMT_TEST_POSTGRES, like the tests:
//
//	IOMT_TEST_POSTGRES=postgres://postgres@localhost:5432/postgres?sslmode=disable \
//	  go test ./store/postgres -run XXX -bench . -benchtime 20000x

const codePulse = "8889-8"

var vitalCodes = []string{storetest.HR, storetest.SpO2, storetest.RR, codePulse, "8310-5"}

// benchAppend runs callers goroutines, each a device appending one batch per call (as the
// MQTT broker does per message), b.N calls in all, and reports samples/s and calls per commit.
func benchAppend(b *testing.B, callers int, o Options, batch func(dev, sec int) iomt.Batch) {
	s := openTest(b, testDB(b), o)
	ctx := context.Background()
	// Partitions for the day exist already, as the background task makes sure in production.
	if _, err := s.Append(ctx, []iomt.Batch{batch(-1, 0)}); err != nil {
		b.Fatal(err)
	}
	var next, samples atomic.Int64
	var devs atomic.Int32
	c0 := s.commits.Load()
	srv0, srvOK := serverCPU(b, s)
	cli0 := clientCPU()
	b.ResetTimer()
	start := time.Now()
	done := make(chan error, callers)
	for range callers {
		go func() {
			dev := int(devs.Add(1))
			for sec := 0; next.Add(1) <= int64(b.N); sec++ {
				bt := batch(dev, sec)
				if _, err := s.Append(ctx, []iomt.Batch{bt}); err != nil {
					done <- err
					return
				}
				samples.Add(int64(bt.Samples()))
			}
			done <- nil
		}()
	}
	for range callers {
		if err := <-done; err != nil {
			b.Fatal(err)
		}
	}
	el := time.Since(start)
	b.StopTimer()
	// CPU per sample: on a machine shared with other jobs it varies much less than
	// throughput. The client's includes building the batches, the same on every path.
	if srv, ok := serverCPU(b, s); ok && srvOK {
		b.ReportMetric(float64((srv-srv0).Nanoseconds())/1e3/float64(samples.Load()), "server-µs/sample")
	}
	if cli := clientCPU() - cli0; cli > 0 {
		b.ReportMetric(float64(cli.Nanoseconds())/1e3/float64(samples.Load()), "client-µs/sample")
	}
	b.ReportMetric(float64(samples.Load())/el.Seconds(), "samples/s")
	b.ReportMetric(float64(b.N)/el.Seconds(), "calls/s")
	if c := s.commits.Load() - c0; c > 0 {
		b.ReportMetric(float64(b.N)/float64(c), "calls/commit")
	}
}

func vitals(dev, sec int) iomt.Batch {
	d := fmt.Sprintf("dev%04d", dev)
	b := storetest.Vitals("pat-"+d, d, storetest.T0.Add(time.Duration(sec)*time.Second), 1, vitalCodes...)
	return b
}

func ecg(dev, sec int) iomt.Batch {
	d := fmt.Sprintf("dev%04d", dev)
	return iomt.Batch{Tenant: iomt.DefaultTenant, Device: d, Patient: "pat-" + d, Waveforms: []iomt.Waveform{
		storetest.Wave("pat-"+d, d, storetest.ECGII, storetest.T0.Add(time.Duration(sec)*time.Second), 4*time.Millisecond, 250, int32(sec)),
	}}
}

// writePath is a way a group can be written, for benchmarks to compare.
type writePath struct {
	name string
	opts Options
}

var writePaths = []writePath{
	{"arrays", Options{CopyMinRows: -1, CopyMinSamples: -1}},
	{"copy", Options{CopyMinRows: 1, CopyMinSamples: 1}},
	// The staging tables emptied by truncation at every commit, or created and dropped by
	// every transaction, rather than emptied by DELETE and truncated now and then.
	{"copy-delete-rows", Options{CopyMinRows: 1, CopyMinSamples: 1, staging: stageDeleteRows}},
	{"copy-drop", Options{CopyMinRows: 1, CopyMinSamples: 1, staging: stageDropPerTx}},
	// COPY from the default thresholds up, arrays below.
	{"default", Options{}},
}

// pathsNamed returns those of writePaths with the given names.
func pathsNamed(names ...string) []writePath {
	var ps []writePath
	for _, p := range writePaths {
		if slices.Contains(names, p.name) {
			ps = append(ps, p)
		}
	}
	return ps
}

func BenchmarkAppendVitals(b *testing.B) {
	for _, c := range []struct {
		callers, writers int
	}{{1, 2}, {200, 1}, {200, 2}, {200, 4}} {
		for _, p := range pathsNamed("arrays", "copy", "default") {
			b.Run(fmt.Sprintf("callers=%d/writers=%d/%s", c.callers, c.writers, p.name), func(b *testing.B) {
				o := p.opts
				o.Writers = c.writers
				benchAppend(b, c.callers, o, vitals)
			})
		}
	}
}

func BenchmarkAppendWaveforms(b *testing.B) {
	for _, c := range []struct {
		callers, writers int
	}{{1, 2}, {200, 2}} {
		for _, p := range pathsNamed("arrays", "copy", "default") {
			b.Run(fmt.Sprintf("callers=%d/writers=%d/%s", c.callers, c.writers, p.name), func(b *testing.B) {
				o := p.opts
				o.Writers = c.writers
				benchAppend(b, c.callers, o, ecg)
			})
		}
	}
}

// serverCPU is the CPU time the PostgreSQL backends serving s's database have used, read
// from /proc/<pid>/schedstat; ok is false when the server is not on this machine (or /proc
// cannot be read). On a machine shared with other jobs, CPU time per row varies much less
// than wall-clock time.
func serverCPU(b *testing.B, s *Store) (cpu time.Duration, ok bool) {
	rows, err := s.Pool().Query(context.Background(), "SELECT pid FROM pg_stat_activity WHERE datname = current_database()")
	if err != nil {
		b.Fatal(err)
	}
	pids, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		b.Fatal(err)
	}
	for _, pid := range pids {
		raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/schedstat", pid))
		if err != nil {
			return 0, false
		}
		f := strings.Fields(string(raw))
		if len(f) == 0 {
			return 0, false
		}
		ns, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, false
		}
		cpu += time.Duration(ns)
	}
	return cpu, true
}

// benchGroup writes groups of a given size, one after the other, each one Append call of
// one batch per device (as a group commit of that many device messages would be), and
// reports rows (readings or segments) per second and per commit.
func benchGroup(b *testing.B, o Options, devices int, batch func(dev, sec int) iomt.Batch) {
	s := openTest(b, testDB(b), o)
	ctx := context.Background()
	if _, err := s.Append(ctx, []iomt.Batch{batch(-1, 0)}); err != nil {
		b.Fatal(err)
	}
	var rows int
	var busy, build time.Duration
	sec := 0
	srv0, srvOK := serverCPU(b, s)
	cli0 := clientCPU()
	for b.Loop() {
		b.StopTimer()
		c0 := clientCPU()
		bs := make([]iomt.Batch, devices)
		for d := range bs {
			bs[d] = batch(d, sec)
			rows += len(bs[d].Observations) + len(bs[d].Waveforms)
		}
		sec++
		build += clientCPU() - c0
		b.StartTimer()
		t0 := time.Now()
		dups, err := s.Append(ctx, bs)
		busy += time.Since(t0)
		if err != nil {
			b.Fatal(err)
		}
		for _, d := range dups {
			if d != 0 {
				b.Fatalf("%d duplicates in new data", d)
			}
		}
	}
	// Less what building the batches cost (the garbage they leave is still counted).
	cli := clientCPU() - cli0 - build
	if srv, ok := serverCPU(b, s); ok && srvOK {
		b.ReportMetric(float64((srv-srv0).Microseconds())/float64(rows), "server-µs/row")
	}
	if cli > 0 {
		b.ReportMetric(float64(cli.Microseconds())/float64(rows), "client-µs/row")
	}
	b.ReportMetric(float64(rows)/busy.Seconds(), "rows/s")
	b.ReportMetric(float64(rows)/float64(sec), "rows/commit")
}

// BenchmarkGroupVitals compares the write paths by group size: devices × 5 readings.
func BenchmarkGroupVitals(b *testing.B) {
	for _, devices := range []int{2, 20, 100, 200, 1000, 4000} {
		for _, p := range pathsNamed("arrays", "copy", "copy-delete-rows", "copy-drop") {
			b.Run(fmt.Sprintf("rows=%d/%s", devices*len(vitalCodes), p.name), func(b *testing.B) {
				benchGroup(b, p.opts, devices, vitals)
			})
		}
	}
}

// BenchmarkGroupWaveforms compares the write paths by group size: 1-s ECG segments of 250
// samples.
func BenchmarkGroupWaveforms(b *testing.B) {
	for _, devices := range []int{10, 100, 250, 1000, 4000} {
		for _, p := range pathsNamed("arrays", "copy", "copy-delete-rows", "copy-drop") {
			b.Run(fmt.Sprintf("segments=%d/%s", devices, p.name), func(b *testing.B) {
				benchGroup(b, p.opts, devices, ecg)
			})
		}
	}
}

// queryFixture holds patients × hours of 1 Hz readings of 4 codes, written in large batches.
func queryFixture(b *testing.B, patients, hours int) *Store {
	s := openTest(b, testDB(b), Options{})
	ctx := context.Background()
	start := storetest.T0.Add(-time.Duration(hours) * time.Hour)
	t0 := time.Now()
	n := 0
	for p := range patients {
		d := fmt.Sprintf("dev%04d", p)
		for h := range hours {
			bt := storetest.Vitals("pat-"+d, d, start.Add(time.Duration(h)*time.Hour), 3600, vitalCodes[:4]...)
			if _, err := s.Append(ctx, []iomt.Batch{bt}); err != nil {
				b.Fatal(err)
			}
			n += len(bt.Observations)
		}
	}
	if _, err := s.Pool().Exec(ctx, "VACUUM ANALYZE observations"); err != nil {
		b.Fatal(err)
	}
	b.Logf("fixture: %d readings in %v (%.0f/s bulk)", n, time.Since(t0).Round(time.Millisecond), float64(n)/time.Since(t0).Seconds())
	return s
}

func BenchmarkQueries(b *testing.B) {
	const patients, hours = 10, 12
	s := queryFixture(b, patients, hours)
	ctx := context.Background()
	p := "pat-dev0007"
	b.Run("Latest", func(b *testing.B) {
		for b.Loop() {
			l, err := s.Latest(ctx, p)
			if err != nil || len(l) != 4 {
				b.Fatal(len(l), err)
			}
		}
	})
	// What Latest would cost without the latest table.
	b.Run("LatestDistinctOn", func(b *testing.B) {
		for b.Loop() {
			rows, err := s.Pool().Query(ctx, `SELECT DISTINCT ON (code) code, device, time, value, unit FROM observations
				WHERE patient = $1 ORDER BY code, time DESC, device`, p)
			if err != nil {
				b.Fatal(err)
			}
			n := 0
			for rows.Next() {
				n++
			}
			if rows.Err() != nil || n != 4 {
				b.Fatal(n, rows.Err())
			}
		}
	})
	b.Run("Observations1h", func(b *testing.B) {
		q := iomt.ObservationQuery{Patient: p, Code: storetest.HR, From: storetest.T0.Add(-3 * time.Hour), To: storetest.T0.Add(-2 * time.Hour)}
		for b.Loop() {
			o, err := s.Observations(ctx, q)
			if err != nil || len(o) != 3600 {
				b.Fatal(len(o), err)
			}
		}
	})
	b.Run("Aggregates12h1min", func(b *testing.B) {
		q := iomt.ObservationQuery{Patient: p, Code: storetest.HR, From: storetest.T0.Add(-12 * time.Hour), To: storetest.T0, Step: time.Minute}
		for b.Loop() {
			a, err := s.Aggregates(ctx, q)
			if err != nil || len(a) != 720 || math.IsNaN(a[0].Mean) {
				b.Fatal(len(a), err)
			}
		}
	})
}

func BenchmarkWaveforms1h(b *testing.B) {
	s := openTest(b, testDB(b), Options{})
	ctx := context.Background()
	// Four hours of 1 s segments for 5 patients.
	for p := range 5 {
		for h := range 4 {
			var bs []iomt.Batch
			for sec := range 3600 {
				bs = append(bs, ecg(p, h*3600+sec))
			}
			if _, err := s.Append(ctx, bs); err != nil {
				b.Fatal(err)
			}
		}
	}
	if _, err := s.Pool().Exec(ctx, "VACUUM ANALYZE waveforms"); err != nil {
		b.Fatal(err)
	}
	q := iomt.WaveformQuery{Patient: "pat-dev0002", Code: storetest.ECGII, From: storetest.T0.Add(time.Hour), To: storetest.T0.Add(2 * time.Hour)}
	for b.Loop() {
		w, err := s.Waveforms(ctx, q)
		if err != nil || len(w) != 3600 {
			b.Fatal(len(w), err)
		}
	}
}
