package embedded

import (
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/iomt/iomt"
	"github.com/iomt/iomt/store/storetest"
)

// walRecordEnds returns the end offset of every record in a segment.
func walRecordEnds(t *testing.T, name string) []int {
	t.Helper()
	data, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	var ends []int
	_, err = readRecords(data, func(off int, p []byte) error {
		ends = append(ends, off+recHeader+len(p))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return ends
}

func copyDir(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.Walk(src, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		if info.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		in, err := os.Open(p)
		if err != nil {
			return err
		}
		defer in.Close()
		out, err := os.Create(target)
		if err != nil {
			return err
		}
		defer out.Close()
		_, err = io.Copy(out, in)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// crashedStore appends n one-reading batches (one WAL record each) and abandons the store
// without a checkpoint. It returns the directory and the only WAL segment.
func crashedStore(t *testing.T, n int) (string, string) {
	dir := t.TempDir()
	s, err := Open(dir, Options{Logger: quiet, CheckpointInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		if _, err := s.Append(context.Background(), []iomt.Batch{storetest.Vitals("p", "d", storetest.T0.Add(time.Duration(i)*time.Second), 1, storetest.HR)}); err != nil {
			t.Fatal(err)
		}
	}
	s.abandon()
	segs, _ := filepath.Glob(filepath.Join(dir, "wal", "*.wal"))
	if len(segs) != 1 {
		t.Fatalf("want one wal segment, have %v", segs)
	}
	return dir, segs[0]
}

func countHR(t *testing.T, s *Store) int {
	t.Helper()
	got, err := s.Observations(context.Background(), iomt.ObservationQuery{Patient: "p", Code: storetest.HR})
	if err != nil {
		t.Fatal(err)
	}
	return len(got)
}

func TestTornTail(t *testing.T) {
	const n = 50
	dir, seg := crashedStore(t, n)
	ends := walRecordEnds(t, seg)
	if len(ends) != n {
		t.Fatalf("%d records, want %d", len(ends), n)
	}
	// Replay of the intact log restores everything.
	full := t.TempDir()
	copyDir(t, dir, full)
	s := openTest(t, full)
	if c := countHR(t, s); c != n {
		t.Fatalf("intact wal: %d readings, want %d", c, n)
	}
	s.Close()

	r := rand.New(rand.NewPCG(7, 7))
	cuts := []int{0, 1, 7, 8, ends[0] - 1, ends[0], ends[len(ends)-1] - 1}
	for i := 0; i < 20; i++ {
		cuts = append(cuts, r.IntN(ends[len(ends)-1]))
	}
	for _, cut := range cuts {
		want := 0
		for _, e := range ends {
			if e <= cut {
				want++
			}
		}
		d := t.TempDir()
		copyDir(t, dir, d)
		name := filepath.Join(d, "wal", filepath.Base(seg))
		if err := os.Truncate(name, int64(cut)); err != nil {
			t.Fatal(err)
		}
		s, err := Open(d, Options{Logger: quiet})
		if err != nil {
			t.Fatalf("cut at %d: %v", cut, err)
		}
		if c := countHR(t, s); c != want {
			t.Fatalf("cut at %d: %d readings, want %d", cut, c, want)
		}
		// Appending after recovery works and survives another reopen.
		if _, err := s.Append(context.Background(), []iomt.Batch{storetest.Vitals("p", "d", storetest.T0.Add(time.Hour), 1, storetest.HR)}); err != nil {
			t.Fatal(err)
		}
		s.abandon()
		s = openTest(t, d)
		if c := countHR(t, s); c != want+1 {
			t.Fatalf("cut at %d, after append and reopen: %d readings, want %d", cut, c, want+1)
		}
		s.Close()
	}
}

func TestTornTailZeroFilled(t *testing.T) {
	// A file system may leave the end of the file zero-filled after a crash.
	dir, seg := crashedStore(t, 10)
	ends := walRecordEnds(t, seg)
	f, err := os.OpenFile(seg, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	zeros := make([]byte, 4096)
	if _, err := f.WriteAt(zeros, int64(ends[7]+3)); err != nil {
		t.Fatal(err)
	}
	f.Close()
	s := openTest(t, dir)
	defer s.Close()
	if c := countHR(t, s); c != 8 {
		t.Fatalf("%d readings, want 8", c)
	}
}

func TestCorruptRecordInTheMiddle(t *testing.T) {
	dir, seg := crashedStore(t, 10)
	ends := walRecordEnds(t, seg)
	data, err := os.ReadFile(seg)
	if err != nil {
		t.Fatal(err)
	}
	off := ends[3] // record 4 starts here
	data[off+recHeader+2] ^= 0x40
	if err := os.WriteFile(seg, data, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = Open(dir, Options{Logger: quiet})
	if err == nil {
		t.Fatal("opened a store whose WAL is corrupt in the middle")
	}
	msg := err.Error()
	if !strings.Contains(msg, filepath.Base(seg)) || !strings.Contains(msg, "offset "+itoa(off)) {
		t.Fatalf("error %q does not name the file and offset %d", msg, off)
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

func TestLockedDirectory(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir)
	defer s.Close()
	_, err := Open(dir, Options{Logger: quiet})
	if err == nil || !strings.Contains(err.Error(), dir) || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("second Open: %v, want an error naming %s as in use", err, dir)
	}
}

func TestClosedStore(t *testing.T) {
	s := openTest(t, t.TempDir())
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := s.Append(context.Background(), []iomt.Batch{storetest.Vitals("p", "d", storetest.T0, 1, storetest.HR)}); !errors.Is(err, errClosed) {
		t.Fatalf("Append after Close: %v", err)
	}
	if _, err := s.Latest(context.Background(), "p"); !errors.Is(err, errClosed) {
		t.Fatalf("Latest after Close: %v", err)
	}
}

func TestReopenKeepsEverything(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	s := openTest(t, dir)
	b := storetest.Vitals("p", "d", storetest.T0, 3*3600, storetest.HR, storetest.SpO2) // spans two chunk windows
	b.Waveforms = []iomt.Waveform{storetest.Wave("p", "d", storetest.ECGII, storetest.T0, 4*time.Millisecond, 250, 1)}
	if _, err := s.Append(ctx, []iomt.Batch{b}); err != nil {
		t.Fatal(err)
	}
	late := storetest.Vitals("p", "d", storetest.T0.Add(-time.Minute), 1, storetest.HR)
	if _, err := s.Append(ctx, []iomt.Batch{late}); err != nil {
		t.Fatal(err)
	}
	if err := s.CreatePatient(ctx, iomt.Patient{ID: "p", Tenant: "t", MRN: "1"}); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateDevice(ctx, iomt.Device{ID: "d", Tenant: "t", Patient: "p", TokenHash: []byte{9}}); err != nil {
		t.Fatal(err)
	}
	batt := 42.0
	if err := s.UpdateDeviceStatus(ctx, []iomt.DeviceStatus{{Device: "d", LastSeen: storetest.T0, Battery: &batt}}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if segs, _ := filepath.Glob(filepath.Join(dir, "wal", "*.wal")); len(segs) != 1 {
		t.Fatalf("after Close %d wal segments remain, want 1 (empty)", len(segs))
	}
	s = openTest(t, dir)
	defer s.Close()
	got, err := s.Observations(ctx, iomt.ObservationQuery{Patient: "p", Code: storetest.HR})
	if err != nil || len(got) != 3*3600+1 || !got[0].Time.Equal(late.Observations[0].Time) {
		t.Fatalf("HR after reopen: %d readings, %v", len(got), err)
	}
	lat, err := s.Latest(ctx, "p")
	if err != nil || len(lat) != 2 || !lat[0].Time.Equal(storetest.T0.Add((3*3600-1)*time.Second)) {
		t.Fatalf("Latest after reopen: %+v, %v", lat, err)
	}
	w, err := s.Waveforms(ctx, iomt.WaveformQuery{Patient: "p", Code: storetest.ECGII})
	if err != nil || len(w) != 1 || w[0].Samples[10] != b.Waveforms[0].Samples[10] {
		t.Fatalf("waveforms after reopen: %v", err)
	}
	d, err := s.Device(ctx, "d")
	if err != nil || d.Battery == nil || *d.Battery != 42 || !d.LastSeen.Equal(storetest.T0) || len(d.TokenHash) != 1 {
		t.Fatalf("device after reopen: %+v, %v", d, err)
	}
	// Appending continues the reloaded head chunk; duplicates are still found.
	if dd, err := s.Append(ctx, []iomt.Batch{b}); err != nil || dd[0] != b.Samples() {
		t.Fatalf("replayed batch after reopen: %v, %v", dd, err)
	}
	next := storetest.Vitals("p", "d", storetest.T0.Add(3*time.Hour), 10, storetest.HR)
	if dd, err := s.Append(ctx, []iomt.Batch{next}); err != nil || dd[0] != 0 {
		t.Fatalf("next batch after reopen: %v, %v", dd, err)
	}
}

func TestDecodeEntriesRejectsGarbage(t *testing.T) {
	var b []byte
	b = appendSeriesEntry(b, kindObs, 1, "p", "c", "d", "u")
	b = encodeSamples(b, []pendSample{{1, 1000, 1}, {1, 2000, 2}})
	b = appendWaveEntry(b, 2, 5, 4e6, 1, 3, encodeWave(nil, []int32{1, 2, 3}))
	if err := decodeEntries(b, nopHandler{}); err != nil {
		t.Fatalf("valid entries: %v", err)
	}
	for cut := 1; cut < len(b); cut++ {
		// Every strict prefix that ends inside an entry is an error, never a panic.
		_ = decodeEntries(b[:cut], nopHandler{})
	}
	if err := decodeEntries([]byte{99}, nopHandler{}); err == nil {
		t.Fatal("unknown entry type accepted")
	}
}

type nopHandler struct{}

func (nopHandler) walSeries(byte, uint64, string, string, string, string) error { return nil }
func (nopHandler) walSamples(uint64, []int64, []float64) error                  { return nil }
func (nopHandler) walWave(uint64, int64, int64, float64, int, []byte) error     { return nil }

func FuzzWALRecords(f *testing.F) {
	var p []byte
	p = appendSeriesEntry(p, kindObs, 1, "p", "c", "d", "u")
	p = encodeSamples(p, []pendSample{{1, 1000, 1}, {1, 2000, 2}})
	p = appendWaveEntry(p, 2, 5, 4e6, 1, 3, encodeWave(nil, []int32{1, 2, 3}))
	frame := append(make([]byte, recHeader), p...)
	rec := frameRecord(frame)
	f.Add(rec)
	f.Add(append(rec, rec...))
	f.Add([]byte{})
	f.Add(make([]byte, 20))
	f.Fuzz(func(t *testing.T, data []byte) {
		_, _ = readRecords(data, func(_ int, payload []byte) error {
			return decodeEntries(payload, nopHandler{})
		})
	})
}
