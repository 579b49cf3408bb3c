package embedded

import (
	"context"
	"fmt"
	"io/fs"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/iomt/iomt"
	"github.com/iomt/iomt/store/storetest"
)

const (
	fleet     = 1000
	codePulse = "8889-8"
)

var vitalCodes = []string{storetest.HR, storetest.SpO2, storetest.RR, codePulse}

// device simulates one monitor: integer-valued vital signs as slow random walks, and a
// synthetic 250 Hz ECG (PQRST-like beat plus noise, 12-bit ADC counts).
type device struct {
	id, patient string
	index       int
	r           *rand.Rand
	hr, spo2    float64
	rr, pulse   float64
	phase       float64
}

func newDevice(k int) *device {
	return &device{
		id: fmt.Sprintf("dev%04d", k), patient: fmt.Sprintf("pat%04d", k), index: k,
		r:  rand.New(rand.NewPCG(uint64(k), 99)),
		hr: 60 + float64(k%40), spo2: 97, rr: 14, pulse: 60 + float64(k%40),
	}
}

func walk(r *rand.Rand, v, lo, hi float64) float64 {
	switch r.IntN(4) {
	case 0:
		v--
	case 1:
		v++
	}
	return math.Max(lo, math.Min(hi, v))
}

func (d *device) vitals(sec int) iomt.Batch {
	at := storetest.T0.Add(time.Duration(sec) * time.Second)
	d.hr = walk(d.r, d.hr, 40, 180)
	d.spo2 = walk(d.r, d.spo2, 85, 100)
	if d.r.IntN(8) == 0 {
		d.rr = walk(d.r, d.rr, 6, 40)
	}
	d.pulse = d.hr + float64(d.r.IntN(3)-1)
	vals := [4]float64{d.hr, d.spo2, d.rr, d.pulse}
	units := [4]string{"/min", "%", "/min", "/min"}
	b := iomt.Batch{Tenant: iomt.DefaultTenant, Device: d.id, Patient: d.patient, Received: at,
		Observations: make([]iomt.Observation, 4)}
	for i, c := range vitalCodes {
		b.Observations[i] = iomt.Observation{Patient: d.patient, Device: d.id, Code: c, Time: at, Value: vals[i], Unit: units[i]}
	}
	return b
}

func (d *device) ecg(sec int) iomt.Batch {
	at := storetest.T0.Add(time.Duration(sec) * time.Second)
	w := iomt.Waveform{Patient: d.patient, Device: d.id, Code: storetest.ECGII, Start: at,
		Period: 4 * time.Millisecond, Scale: 0.0025, Unit: "mV", Samples: make([]int32, 250)}
	beat := d.hr / 60 / 250 // beats per sample
	for i := range w.Samples {
		d.phase += beat
		if d.phase >= 1 {
			d.phase--
		}
		p := d.phase
		mv := 0.1*math.Exp(-math.Pow((p-0.2)/0.03, 2)) + // P
			1.2*math.Exp(-math.Pow((p-0.35)/0.008, 2)) - // R
			0.15*math.Exp(-math.Pow((p-0.38)/0.01, 2)) + // S
			0.3*math.Exp(-math.Pow((p-0.6)/0.05, 2)) // T
		w.Samples[i] = int32(mv/0.0025) + int32(d.r.IntN(5)-2)
	}
	return iomt.Batch{Tenant: iomt.DefaultTenant, Device: d.id, Patient: d.patient, Received: at, Waveforms: []iomt.Waveform{w}}
}

// dirBytes is the size of every file under dir.
func dirBytes(tb testing.TB, dir string) int64 {
	var n int64
	err := filepath.WalkDir(dir, func(_ string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !e.IsDir() {
			info, err := e.Info()
			if err != nil {
				return err
			}
			n += info.Size()
		}
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	return n
}

// logDir logs the bytes under dir by file kind.
func logDir(b *testing.B, dir string) {
	by := map[string]int64{}
	_ = filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err == nil && !e.IsDir() {
			info, _ := e.Info()
			by[filepath.Base(filepath.Dir(p))+"/*"+filepath.Ext(p)] += info.Size()
		}
		return nil
	})
	b.Logf("bytes by kind: %v", by)
}

// BenchmarkAppend1000Devices measures durable ingest (fsync before Append returns) of 1,000
// devices sending one-second batches. One op is one batch.
//
//	per-device: every device is a goroutine calling Append with its own batch, so group
//	            commit has to gather them;
//	writer:     one store writer calls Append with the fleet's second (1,000 batches).
func BenchmarkAppend1000Devices(b *testing.B) {
	for _, kind := range []string{"vitals", "ecg250Hz"} {
		for _, mode := range []string{"per-device", "writer"} {
			b.Run(kind+"/"+mode, func(b *testing.B) {
				benchAppend(b, kind, mode)
			})
		}
	}
}

func benchAppend(b *testing.B, kind, mode string) {
	dir := b.TempDir()
	s, err := Open(dir, Options{Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	devs := make([]*device, fleet)
	for k := range devs {
		devs[k] = newDevice(k)
	}
	// Batches are generated before the timer starts: a ring of distinct seconds per device,
	// re-stamped with the second being sent.
	const ring = 32
	rings := make([][ring]iomt.Batch, fleet)
	for k, d := range devs {
		for i := range ring {
			if kind == "vitals" {
				rings[k][i] = d.vitals(i)
			} else {
				rings[k][i] = d.ecg(i)
			}
		}
	}
	// Re-stamping in place is safe: each device's ring is used by one goroutine, and Append
	// keeps nothing of its argument.
	gen := func(d *device, sec int) iomt.Batch {
		b := &rings[d.index][sec%ring]
		at := storetest.T0.Add(time.Duration(sec) * time.Second)
		b.Received = at
		for i := range b.Observations {
			b.Observations[i].Time = at
		}
		for i := range b.Waveforms {
			b.Waveforms[i].Start = at
		}
		return *b
	}
	seconds := (b.N + fleet - 1) / fleet
	var samples atomic.Int64
	ctx := context.Background()
	b.ResetTimer()
	start := time.Now()
	switch mode {
	case "per-device":
		var wg sync.WaitGroup
		for _, d := range devs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for sec := 0; sec < seconds; sec++ {
					batch := gen(d, sec)
					if _, err := s.Append(ctx, []iomt.Batch{batch}); err != nil {
						b.Error(err)
						return
					}
					samples.Add(int64(batch.Samples()))
				}
			}()
		}
		wg.Wait()
	case "writer":
		batches := make([]iomt.Batch, fleet)
		for sec := 0; sec < seconds; sec++ {
			n := 0
			for k, d := range devs {
				batches[k] = gen(d, sec)
				n += batches[k].Samples()
			}
			if _, err := s.Append(ctx, batches); err != nil {
				b.Fatal(err)
			}
			samples.Add(int64(n))
		}
	}
	el := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(samples.Load())/el.Seconds(), "samples/s")
	b.ReportMetric(float64(seconds*fleet)/el.Seconds(), "batches/s")
	b.ReportMetric(float64(seconds*fleet)/float64(s.commits.Load()), "batches/commit")
	b.ReportMetric(el.Seconds()*1e3/float64(s.commits.Load()), "ms/commit")
}

// BenchmarkDiskBytesPerSample appends vital signs (4 codes at 1 Hz) of 1,000 devices for an
// hour (14.4M samples) and of 100 devices for a day (34.6M), and 250 Hz ECG of 1,000 devices
// for 6 minutes (90M samples), with a checkpoint every 5 minutes of data, closes the store (final checkpoint, WAL trimmed) and reports the data
// directory's size per sample, before and after a full Pebble compaction.
func BenchmarkDiskBytesPerSample(b *testing.B) {
	for _, c := range []struct {
		name          string
		devices, secs int
	}{{"vitals1Hz/1000dev-1h", 1000, 3600}, {"vitals1Hz/100dev-24h", 100, 86400}, {"ecg250Hz/1000dev-6min", 1000, 360}} {
		b.Run(c.name, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				benchDisk(b, c.name[:strings.IndexByte(c.name, '/')], c.devices, c.secs)
			}
		})
	}
}

func benchDisk(b *testing.B, kind string, fleet, seconds int) {
	dir := b.TempDir()
	s, err := Open(dir, Options{Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	devs := make([]*device, fleet)
	for k := range devs {
		devs[k] = newDevice(k)
	}
	batches := make([]iomt.Batch, fleet)
	var n int64
	ctx := context.Background()
	for sec := 0; sec < seconds; sec++ {
		for k, d := range devs {
			if kind == "vitals1Hz" {
				batches[k] = d.vitals(sec)
			} else {
				batches[k] = d.ecg(sec)
			}
			n += int64(batches[k].Samples())
		}
		if _, err := s.Append(ctx, batches); err != nil {
			b.Fatal(err)
		}
		// A checkpoint every 5 minutes of data, as the default interval does in real time:
		// head chunks are rewritten each time, and Pebble compacts the old versions away.
		if sec%300 == 299 {
			if err := s.Checkpoint(); err != nil {
				b.Fatal(err)
			}
		}
	}
	if err := s.Close(); err != nil {
		b.Fatal(err)
	}
	// Pebble deletes obsolete files in the background and finishes the job when it opens a
	// store, so measure after an open and a close.
	reopen := func(compact bool) {
		s, err := Open(dir, Options{Logger: quiet})
		if err != nil {
			b.Fatal(err)
		}
		if compact {
			if err := s.compactAll(); err != nil {
				b.Fatal(err)
			}
		}
		if err := s.Close(); err != nil {
			b.Fatal(err)
		}
	}
	reopen(false)
	closed := dirBytes(b, dir)
	logDir(b, dir)
	reopen(true)
	reopen(false)
	compacted := dirBytes(b, dir)
	b.ReportMetric(float64(closed)/float64(n), "B/sample")
	b.ReportMetric(float64(compacted)/float64(n), "B/sample-compacted")
	b.ReportMetric(float64(n), "samples")
}

// querySetup builds a store with 20 patients × 25 h of 1 Hz HR and SpO2, checkpointed and
// reopened, so the older data is in Pebble and the last hours in the head.
var querySetup = sync.OnceValues(func() (string, error) {
	dir, err := makeTempDir()
	if err != nil {
		return "", err
	}
	s, err := Open(dir, Options{Logger: quiet})
	if err != nil {
		return "", err
	}
	ctx := context.Background()
	const patients, hours = 20, 25
	devs := make([]*device, patients)
	for k := range devs {
		devs[k] = newDevice(k)
	}
	for h := 0; h < hours; h++ {
		var batches []iomt.Batch
		for _, d := range devs {
			bb := iomt.Batch{Device: d.id, Patient: d.patient}
			for sec := h * 3600; sec < (h+1)*3600; sec++ {
				v := d.vitals(sec)
				bb.Observations = append(bb.Observations, v.Observations[:2]...)
			}
			batches = append(batches, bb)
		}
		if _, err := s.Append(ctx, batches); err != nil {
			return "", err
		}
	}
	return dir, s.Close()
})

func BenchmarkQuery(b *testing.B) {
	dir, err := querySetup()
	if err != nil {
		b.Fatal(err)
	}
	s, err := Open(dir, Options{Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	end := storetest.T0.Add(25 * time.Hour)
	for _, c := range []struct {
		name string
		q    iomt.ObservationQuery
		want int
	}{
		{"Observations1h", iomt.ObservationQuery{Patient: "pat0007", Code: storetest.HR, From: end.Add(-time.Hour), To: end}, 3600},
		{"Observations24h", iomt.ObservationQuery{Patient: "pat0007", Code: storetest.HR, From: end.Add(-24 * time.Hour), To: end}, 86400},
		{"Aggregates24hBy1min", iomt.ObservationQuery{Patient: "pat0007", Code: storetest.HR, From: end.Add(-24 * time.Hour), To: end, Step: time.Minute}, 1440},
	} {
		b.Run(c.name, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				var n int
				if c.q.Step > 0 {
					a, err := s.Aggregates(ctx, c.q)
					if err != nil {
						b.Fatal(err)
					}
					n = len(a)
				} else {
					o, err := s.Observations(ctx, c.q)
					if err != nil {
						b.Fatal(err)
					}
					n = len(o)
				}
				if n != c.want {
					b.Fatalf("%d results, want %d", n, c.want)
				}
			}
		})
	}
	b.Run("Latest", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			l, err := s.Latest(ctx, "pat0007")
			if err != nil || len(l) != 2 {
				b.Fatalf("%v %v", l, err)
			}
		}
	})
}

var benchTempDirs []string

func makeTempDir() (string, error) {
	d, err := os.MkdirTemp("", "iomt-embedded-bench-")
	if err == nil {
		benchTempDirs = append(benchTempDirs, d)
	}
	return d, err
}

func TestMain(m *testing.M) {
	code := m.Run()
	for _, d := range benchTempDirs {
		os.RemoveAll(d)
	}
	os.Exit(code)
}

// BenchmarkSaveSession measures replacing a session (a sign-in, or a LastSeen update) durably,
// from many callers at once: saves of different sessions share Pebble's synced commits.
func BenchmarkSaveSession(b *testing.B) {
	s := openTest(b, b.TempDir())
	defer s.Close()
	ctx := context.Background()
	var n atomic.Int64
	b.SetParallelism(16)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		id := fmt.Sprintf("s%d", n.Add(1))
		for i := 0; pb.Next(); i++ {
			ss := iomt.Session{ID: id, Tenant: "t1", User: "u1", Method: "password", Created: storetest.T0,
				LastSeen: storetest.T0.Add(time.Duration(i) * time.Second), Expires: storetest.T0.Add(time.Hour)}
			if err := s.SaveSession(ctx, ss); err != nil {
				b.Fatal(err)
			}
		}
	})
}
