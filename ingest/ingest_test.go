package ingest_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/iomt/iomt"
	"github.com/iomt/iomt/bus/memory"
	"github.com/iomt/iomt/codes"
	"github.com/iomt/iomt/ingest"
	"github.com/iomt/iomt/store/embedded"
	"github.com/iomt/iomt/wire/senml"
)

type fixture struct {
	in    *ingest.Ingester
	store *embedded.Store
	dev   iomt.Device
	now   time.Time
}

func setup(t testing.TB) *fixture {
	t.Helper()
	st, err := embedded.Open(t.TempDir(), embedded.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	bus := memory.New(memory.Options{})
	t.Cleanup(func() { bus.Close(); st.Close() })
	ctx := context.Background()
	p := iomt.Patient{ID: "p1", Tenant: iomt.DefaultTenant, Name: "Test", CreatedAt: time.Now()}
	if err := st.CreatePatient(ctx, p); err != nil {
		t.Fatal(err)
	}
	d := iomt.Device{ID: "d1", Tenant: iomt.DefaultTenant, Kind: "ecg-patch", Patient: "p1", CreatedAt: time.Now()}
	if err := st.CreateDevice(ctx, d); err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	in := ingest.New(codes.New(), st, st, bus, nil, nil, ingest.Options{Now: func() time.Time { return now }})
	return &fixture{in: in, store: st, dev: d, now: now}
}

// ecgPack is one second of 250 Hz lead II, as a patch sends it.
func ecgPack(start time.Time, n int) senml.Pack {
	bt := float64(start.UnixMilli()) / 1000
	p := make(senml.Pack, n)
	for i := range p {
		v := float64(i%50)*0.01 - 0.2
		p[i] = senml.Record{Name: "MDC_ECG_ELEC_POTL_II", Time: float64(i) * 0.004, Value: &v}
	}
	p[0].BaseName = "urn:dev:id:d1:"
	p[0].BaseTime = bt
	p[0].BaseUnit = "mV"
	return p
}

func TestWaveformBecomesOneSegment(t *testing.T) {
	f := setup(t)
	start := f.now.Add(-time.Second)
	for _, enc := range []func(senml.Pack) ([]byte, error){senml.EncodeJSON, senml.EncodeCBOR} {
		data, err := enc(ecgPack(start, 250))
		if err != nil {
			t.Fatal(err)
		}
		res, err := f.in.Ingest(context.Background(), f.dev, data, "test")
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Refused) != 0 {
			t.Fatalf("refused: %+v", res.Refused)
		}
		start = start.Add(-time.Second)
	}
	ws, err := f.store.Waveforms(context.Background(), iomt.WaveformQuery{Patient: "p1", Code: "MDC_ECG_ELEC_POTL_II", From: f.now.Add(-time.Minute), To: f.now})
	if err != nil {
		t.Fatal(err)
	}
	if len(ws) != 2 {
		t.Fatalf("want 2 segments, got %d", len(ws))
	}
	w := ws[1]
	if w.Period != 4*time.Millisecond || len(w.Samples) != 250 || !w.Start.Equal(f.now.Add(-time.Second)) || w.Unit != "mV" {
		t.Fatalf("segment: start %s period %s n %d unit %s", w.Start, w.Period, len(w.Samples), w.Unit)
	}
	// 0.01 mV steps at the catalog's scale come back exactly.
	for i, s := range w.Samples {
		want := float64(i%50)*0.01 - 0.2
		if got := float64(s) * w.Scale; got-want > 1e-9 || want-got > 1e-9 {
			t.Fatalf("sample %d: %g, want %g", i, got, want)
		}
	}
}

func TestGapSplitsSegments(t *testing.T) {
	f := setup(t)
	p := ecgPack(f.now.Add(-time.Second), 20)
	// Samples 10.. arrive 100 ms later than the grid: a dropout.
	for i := 10; i < 20; i++ {
		p[i].Time += 0.1
	}
	data, _ := senml.EncodeJSON(p)
	if _, err := f.in.Ingest(context.Background(), f.dev, data, "test"); err != nil {
		t.Fatal(err)
	}
	ws, _ := f.store.Waveforms(context.Background(), iomt.WaveformQuery{Patient: "p1", Code: "MDC_ECG_ELEC_POTL_II", From: f.now.Add(-time.Minute), To: f.now})
	if len(ws) != 2 || len(ws[0].Samples) != 10 || len(ws[1].Samples) != 10 {
		t.Fatalf("want two segments of 10, got %d", len(ws))
	}
}

// A sample off its neighbours' grid at the end of a pack is a run of one: it takes the
// period of the run before it. A pack holding a single sample of a waveform has no period to
// give it, so that sample is refused with the reason, and the rest of the pack is stored.
func TestLoneWaveformSample(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	p := ecgPack(f.now.Add(-2*time.Second), 11)
	p[10].Time += 0.1
	data, _ := senml.EncodeJSON(p)
	if res, err := f.in.Ingest(ctx, f.dev, data, "test"); err != nil || len(res.Refused) != 0 {
		t.Fatalf("off-grid last sample: %+v, %v", res, err)
	}
	q := iomt.WaveformQuery{Patient: "p1", Code: "MDC_ECG_ELEC_POTL_II", From: f.now.Add(-time.Minute), To: f.now}
	ws, _ := f.store.Waveforms(ctx, q)
	if len(ws) != 2 || len(ws[0].Samples) != 10 || len(ws[1].Samples) != 1 || ws[1].Period != ws[0].Period {
		t.Fatalf("segments %+v, want 10 samples and 1 with their period", ws)
	}

	one := ecgPack(f.now.Add(-time.Second), 1)
	hr := 72.0
	one = append(one, senml.Record{Name: "hr", Unit: "/min", Value: &hr})
	data, _ = senml.EncodeJSON(one)
	res, err := f.in.Ingest(ctx, f.dev, data, "test")
	if err != nil {
		t.Fatalf("one sample and a heart rate: %v", err)
	}
	if len(res.Refused) != 1 || res.Refused[0].Record != 0 || !strings.Contains(res.Refused[0].Reason, "lone MDC_ECG_ELEC_POTL_II sample") {
		t.Fatalf("refused %+v, want the lone sample", res.Refused)
	}
	if obs, _ := f.store.Latest(ctx, "p1"); len(obs) != 1 || obs[0].Value != 72 {
		t.Errorf("the heart rate of that pack: %+v", obs)
	}
	if ws2, _ := f.store.Waveforms(ctx, q); len(ws2) != len(ws) {
		t.Errorf("the lone sample was stored: %d segments", len(ws2))
	}
}

func TestRefusals(t *testing.T) {
	f := setup(t)
	cases := []struct {
		pack string
		want string
	}{
		{`[{"n":"hr","v":70,"u":"kg"}]`, `unit "kg"`},
		{`[{"n":"nonsense","v":1}]`, `unknown code "nonsense"`},
		{`[{"n":"spo2","v":101}]`, "outside the possible range"},
		{`[{"n":"hr","vs":"fast"}]`, "no numeric value"},
		{`[{"n":"hr","v":70,"t":1893456000}]`, "ahead of server time"},
		{`[{"n":"hr","v":70,"t":9e8}]`, "before 2000"},
		{`[{"n":"hr","v":70,"t":-1},{"n":"hr","v":71,"t":-1}]`, "duplicate: another record of this pack"},
		{`[{"n":"85354-9","v":120}]`, "panel"},
	}
	for _, c := range cases {
		res, err := f.in.Ingest(context.Background(), f.dev, []byte(c.pack), "test")
		if err != nil {
			t.Fatalf("%s: %v", c.pack, err)
		}
		if len(res.Refused) != 1 || !strings.Contains(res.Refused[0].Reason, c.want) {
			t.Errorf("%s: refused %+v, want one with %q", c.pack, res.Refused, c.want)
		}
	}
	if _, err := f.in.Ingest(context.Background(), f.dev, []byte(`{"n":"hr"}`), "test"); err == nil || !strings.Contains(err.Error(), "malformed") {
		t.Errorf("malformed pack: %v", err)
	}
	unbound := f.dev
	unbound.Patient = ""
	if _, err := f.in.Ingest(context.Background(), unbound, []byte(`[{"n":"hr","v":70}]`), "test"); err == nil || !strings.Contains(err.Error(), "not bound") {
		t.Errorf("unbound device: %v", err)
	}
}

// Duplicates are found among the records of one millisecond whatever their order and the
// codes between them; the same code a millisecond apart, and units, are kept as they are.
func TestDuplicatesAndUnitsInOnePack(t *testing.T) {
	f := setup(t)
	pack := `[{"n":"hr","v":70,"t":-1},{"n":"rr","v":12,"t":-1},{"n":"spo2","v":97,"t":-1},` +
		`{"n":"hr","v":71,"t":-1},{"n":"hr","v":72,"t":-0.999},{"n":"rr","v":13,"t":-0.999},` +
		`{"n":"8310-5","v":98.6,"u":"[degF]","t":-0.5},{"n":"8310-5","v":37,"u":"Cel","t":-0.5}]`
	res, err := f.in.Ingest(context.Background(), f.dev, []byte(pack), "test")
	if err != nil {
		t.Fatal(err)
	}
	if res.Accepted != 6 || len(res.Refused) != 2 || res.Refused[0].Record != 3 || res.Refused[1].Record != 7 ||
		!strings.Contains(res.Refused[0].Reason, "duplicate") || !strings.Contains(res.Refused[1].Reason, "duplicate") {
		t.Fatalf("result %+v", res)
	}
	obs, err := f.store.Observations(context.Background(), iomt.ObservationQuery{Patient: "p1", Code: "8310-5", From: f.now.Add(-time.Minute), To: f.now})
	if err != nil || len(obs) != 1 || math.Abs(obs[0].Value-37) > 1e-9 {
		t.Fatalf("temperature %+v %v", obs, err)
	}
}

func TestSummary(t *testing.T) {
	r := ingest.Result{Accepted: 3, Refused: make([]ingest.Refusal, 100)}
	for i := range r.Refused {
		r.Refused[i] = ingest.Refusal{Record: i, Reason: fmt.Sprintf("reason number %d", i)}
	}
	s := r.Summary(200)
	if len(s) > 240 || !strings.Contains(s, "more") || !strings.HasPrefix(s, "accepted 3, duplicates 0, refused 100; record 0: reason number 0") {
		t.Fatalf("summary %q", s)
	}
}

// BenchmarkIngestECG measures the whole ingest path for one second of 250 Hz ECG: decode,
// resolve, validate, segment, store (without fsync) and publish. cpu-µs/op is the process's
// CPU time per pack, steadier than wall time on a shared machine.
func BenchmarkIngestECG(b *testing.B) {
	for _, format := range []string{"json", "cbor"} {
		b.Run(format, func(b *testing.B) {
			f := setup(b)
			start := f.now.Add(-24 * time.Hour)
			pack := ecgPack(start, 250)
			encode := senml.EncodeJSON
			if format == "cbor" {
				encode = senml.EncodeCBOR
			}
			cpu0 := cpuTime()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				pack[0].BaseTime = float64(start.Add(time.Duration(i)*time.Second).UnixMilli()) / 1000
				data, _ := encode(pack)
				b.StartTimer()
				res, err := f.in.Ingest(context.Background(), f.dev, data, "bench")
				if err != nil || res.Accepted != 250 {
					b.Fatal(err, res)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N*250)/b.Elapsed().Seconds(), "samples/s")
			// Encoding the packs is outside the timer but inside the process's CPU time:
			// measure it alone and take it off.
			enc0 := cpuTime()
			for i := 0; i < b.N; i++ {
				pack[0].BaseTime = float64(start.Add(time.Duration(i)*time.Second).UnixMilli()) / 1000
				_, _ = encode(pack)
			}
			enc := cpuTime() - enc0
			b.ReportMetric(float64(enc0-cpu0-enc)/float64(time.Microsecond)/float64(b.N), "cpu-µs/op")
		})
	}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// gatedStore holds Append after staging until release is closed, as a slow fsync would.
type gatedStore struct {
	*embedded.Store
	release chan struct{}
}

func (g gatedStore) AppendStaged(ctx context.Context, b []iomt.Batch, staged func([]int)) ([]int, error) {
	return g.Store.AppendStaged(ctx, b, func(dups []int) {
		staged(dups)
		<-g.release
	})
}

// Live consumers get a reading while its fsync is under way, and a duplicate is not published
// again; the device's answer still waits for the store.
func TestPublishedBeforeDurable(t *testing.T) {
	f := setup(t)
	bus := memory.New(memory.Options{})
	defer bus.Close()
	got := make(chan iomt.Batch, 4)
	if err := bus.Subscribe(t.Context(), "test", func(_ context.Context, b iomt.Batch) error { got <- b; return nil }); err != nil {
		t.Fatal(err)
	}
	gs := gatedStore{Store: f.store, release: make(chan struct{})}
	in := ingest.New(codes.New(), gs, f.store, bus, nil, nil, ingest.Options{Now: func() time.Time { return f.now }})
	pack := []byte(fmt.Sprintf(`[{"bn":"urn:dev:id:d1:","bt":%d,"n":"8867-4","u":"/min","v":72}]`, f.now.Add(-time.Second).Unix()))
	answered := make(chan error, 1)
	go func() {
		_, err := in.Ingest(context.Background(), f.dev, pack, "test")
		answered <- err
	}()
	select {
	case b := <-got:
		if len(b.Observations) != 1 || b.Observations[0].Value != 72 {
			t.Fatalf("published %+v", b)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the batch was not published while the store was still writing it")
	}
	select {
	case err := <-answered:
		t.Fatalf("Ingest returned (%v) before the store had finished", err)
	default:
	}
	close(gs.release)
	if err := <-answered; err != nil {
		t.Fatal(err)
	}
	res, err := in.Ingest(context.Background(), f.dev, pack, "test")
	if err != nil || res.Duplicates != 1 || res.Accepted != 0 {
		t.Fatalf("resent pack: %+v %v; want one duplicate", res, err)
	}
	select {
	case b := <-got:
		t.Fatalf("a duplicate was published: %+v", b)
	case <-time.After(200 * time.Millisecond):
	}
}

// refusingStore is a store that refuses every batch as invalid, as a store's own checks would
// a batch ingest should never have passed on.
type refusingStore struct{ *embedded.Store }

func (refusingStore) Append(context.Context, []iomt.Batch) ([]int, error) {
	return nil, fmt.Errorf("%w: batch 0 waveform 0: needs code, start, period > 0 and samples", iomt.ErrInvalid)
}

func (s refusingStore) AppendStaged(ctx context.Context, b []iomt.Batch, _ func([]int)) ([]int, error) {
	return s.Append(ctx, b)
}

// A batch the store refuses as invalid is refused to the device as malformed (400 / 0x99),
// not answered "retry later": sent again, it would be refused again for ever.
func TestStoreRefusalIsNotRetried(t *testing.T) {
	f := setup(t)
	in := ingest.New(codes.New(), refusingStore{f.store}, f.store, memory.New(memory.Options{}), nil, nil,
		ingest.Options{Now: func() time.Time { return f.now }})
	_, err := in.Ingest(context.Background(), f.dev, []byte(`[{"n":"hr","u":"/min","v":70}]`), "test")
	if !errors.Is(err, ingest.ErrMalformed) || !strings.Contains(err.Error(), "the store refused it") || !strings.Contains(err.Error(), "period > 0") {
		t.Errorf("err %v, want ErrMalformed naming the store's reason", err)
	}
}
