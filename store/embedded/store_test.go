package embedded

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/iomt/iomt"
	"github.com/iomt/iomt/store/storetest"
)

// Queries running while appends and checkpoints move data from memory to Pebble never miss
// a reading that was acknowledged before the query started, and never return one twice.
func TestQueriesDuringCheckpoints(t *testing.T) {
	s := openTest(t, t.TempDir())
	defer s.Close()
	ctx := context.Background()
	var acked atomic.Int64 // seconds acknowledged, in order
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { // writer: one reading per second, a late one every 10th, a waveform segment
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			b := storetest.Vitals("p", "d", storetest.T0.Add(time.Duration(i)*time.Second), 1, storetest.HR)
			if i%10 == 9 {
				b.Observations = append(b.Observations, iomt.Observation{Code: storetest.HR, Time: storetest.T0.Add(time.Duration(i-5)*time.Second + 500*time.Millisecond), Value: -1})
			}
			b.Waveforms = []iomt.Waveform{storetest.Wave("p", "d", storetest.ECGII, storetest.T0.Add(time.Duration(i)*time.Second), 4*time.Millisecond, 250, 0)}
			if _, err := s.Append(ctx, []iomt.Batch{b}); err != nil {
				t.Error(err)
				return
			}
			acked.Store(int64(i + 1))
		}
	}()
	go func() { // checkpointer
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			case <-time.After(3 * time.Millisecond):
			}
			if err := s.Checkpoint(); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	deadline := time.Now().Add(2 * time.Second)
	queries := 0
	for time.Now().Before(deadline) {
		n := acked.Load()
		got, err := s.Observations(ctx, iomt.ObservationQuery{Patient: "p", Code: storetest.HR})
		if err != nil {
			t.Fatal(err)
		}
		inOrder := int64(0)
		seen := map[int64]bool{}
		for i, o := range got {
			ms := o.Time.UnixMilli()
			if seen[ms] {
				t.Fatalf("reading at %v returned twice", o.Time)
			}
			seen[ms] = true
			if i > 0 && !got[i-1].Time.Before(o.Time) {
				t.Fatalf("out of order at %d", i)
			}
			if o.Value != -1 {
				inOrder++
			}
		}
		if inOrder < n {
			t.Fatalf("query saw %d in-order readings, %d were acknowledged before it", inOrder, n)
		}
		w, err := s.Waveforms(ctx, iomt.WaveformQuery{Patient: "p", Code: storetest.ECGII})
		if err != nil {
			t.Fatal(err)
		}
		if int64(len(w)) < n {
			t.Fatalf("query saw %d segments, %d were acknowledged before it", len(w), n)
		}
		for i := 1; i < len(w); i++ {
			if !w[i-1].Start.Before(w[i].Start) {
				t.Fatalf("segments out of order or repeated at %d", i)
			}
		}
		queries++
	}
	close(stop)
	wg.Wait()
	t.Logf("%d queries over %d acknowledged seconds", queries, acked.Load())
}

func TestLateSamplesAcrossCheckpoints(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir)
	ctx := context.Background()
	mustAppend := func(b iomt.Batch, wantDups int) {
		t.Helper()
		d, err := s.Append(ctx, []iomt.Batch{b})
		if err != nil || d[0] != wantDups {
			t.Fatalf("append: %v dups, %v (want %d)", d, err, wantDups)
		}
	}
	mustAppend(storetest.Vitals("p", "d", storetest.T0.Add(time.Hour), 10, storetest.HR), 0)
	late := func(sec int) iomt.Batch {
		return storetest.Vitals("p", "d", storetest.T0.Add(time.Duration(sec)*time.Second), 1, storetest.HR)
	}
	for round := 0; round < 3; round++ {
		for sec := round; sec < 30; sec += 3 {
			mustAppend(late(sec), 0)
		}
		if err := s.Checkpoint(); err != nil {
			t.Fatal(err)
		}
		for sec := round; sec < 30; sec += 3 {
			mustAppend(late(sec), 1) // now in Pebble's late chunk
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openTest(t, dir)
	defer s.Close()
	got, err := s.Observations(ctx, iomt.ObservationQuery{Patient: "p", Code: storetest.HR})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 40 {
		t.Fatalf("%d readings, want 40", len(got))
	}
	for i := 0; i < 30; i++ {
		if !got[i].Time.Equal(storetest.T0.Add(time.Duration(i) * time.Second)) {
			t.Fatalf("reading %d at %v", i, got[i].Time)
		}
	}
	for sec := 0; sec < 30; sec++ {
		mustAppend(late(sec), 1)
	}
}

func TestHighRateNumericsSealByCount(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir)
	ctx := context.Background()
	// 10 Hz for 40 minutes: 24,000 samples in one 2-hour window, more than one chunk holds.
	const n = 24000
	b := iomt.Batch{Device: "d", Patient: "p"}
	for i := 0; i < n; i++ {
		b.Observations = append(b.Observations, iomt.Observation{Code: "x", Time: storetest.T0.Add(time.Duration(i) * 100 * time.Millisecond), Value: float64(i)})
	}
	if _, err := s.Append(ctx, []iomt.Batch{b}); err != nil {
		t.Fatal(err)
	}
	check := func(when string) {
		t.Helper()
		got, err := s.Observations(ctx, iomt.ObservationQuery{Patient: "p", Code: "x", From: storetest.T0.Add(time.Minute), To: storetest.T0.Add(39 * time.Minute)})
		if err != nil || len(got) != 38*600 || got[0].Value != 600 || got[len(got)-1].Value != 39*600-1 {
			t.Fatalf("%s: %d readings, %v", when, len(got), err)
		}
	}
	check("in memory")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openTest(t, dir)
	defer s.Close()
	check("after reopen")
	if d, err := s.Append(ctx, []iomt.Batch{b}); err != nil || d[0] != n {
		t.Fatalf("again: %v, %v", d, err)
	}
}

func TestManyRotationsAndCrash(t *testing.T) {
	// Tiny segments: many rotations onto preallocated segments; then a crash and a replay.
	dir := t.TempDir()
	s, err := Open(dir, Options{Logger: quiet, SegmentBytes: 8 << 10, CheckpointInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i := 0; i < 500; i++ {
		b := storetest.Vitals("p", fmt.Sprintf("d%d", i%3), storetest.T0.Add(time.Duration(i)*time.Second), 1, storetest.HR, storetest.SpO2)
		if _, err := s.Append(ctx, []iomt.Batch{b}); err != nil {
			t.Fatal(err)
		}
		if i == 250 {
			if err := s.Checkpoint(); err != nil {
				t.Fatal(err)
			}
		}
	}
	s.abandon()
	s = openTest(t, dir)
	defer s.Close()
	got, err := s.Observations(ctx, iomt.ObservationQuery{Patient: "p", Code: storetest.SpO2})
	if err != nil || len(got) != 500 {
		t.Fatalf("%d readings after crash, %v", len(got), err)
	}
}

// AppendStaged reports the duplicates Append returns, before the write is durable, and says
// nothing about batches it refuses.
func TestAppendStaged(t *testing.T) {
	s := openTest(t, t.TempDir())
	defer s.Close()
	ctx := context.Background()
	b := storetest.Vitals("p", "d", storetest.T0, 3, storetest.HR)
	var calls [][]int
	staged := func(d []int) { calls = append(calls, append([]int(nil), d...)) }
	for range 2 {
		dups, err := s.AppendStaged(ctx, []iomt.Batch{b}, staged)
		if err != nil {
			t.Fatal(err)
		}
		if want := calls[len(calls)-1]; fmt.Sprint(dups) != fmt.Sprint(want) {
			t.Fatalf("staged %v, Append returned %v", want, dups)
		}
	}
	if fmt.Sprint(calls) != "[[0] [3]]" {
		t.Fatalf("staged calls %v, want [[0] [3]]", calls)
	}
	bad := storetest.Vitals("", "d", storetest.T0, 1, storetest.HR) // no patient
	if _, err := s.AppendStaged(ctx, []iomt.Batch{bad}, staged); err == nil || len(calls) != 2 {
		t.Fatalf("refused batch: err %v, staged calls %v", err, calls)
	}
}
