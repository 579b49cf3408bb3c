// Package storetest is a conformance suite for iomt.Store implementations: every backend
// (store/embedded, store/postgres) runs the same tests.
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) iomt.Store { ... fresh, empty store ... })
//	}
//
// newStore must return an empty store and arrange its cleanup with t.Cleanup; the suite
// closes the store itself at the end of each test when the store is still open (a second
// Close must be harmless).
package storetest

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/iomt/iomt"
)

// Codes and units used by the suite (LOINC, UCUM).
const (
	HR    = "8867-4"
	SpO2  = "59408-5"
	RR    = "9279-1"
	ECGII = "mdc:131330" // an ECG lead; any code works for waveforms
)

// T0 is a fixed, millisecond-precise start time for suite data.
var T0 = time.Date(2026, 11, 2, 8, 0, 0, 0, time.UTC)

// Run runs the conformance suite.
func Run(t *testing.T, newStore func(t *testing.T) iomt.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s iomt.Store)
	}{
		{"AppendAndQuery", testAppendAndQuery},
		{"QueryWindowAndLimit", testWindowAndLimit},
		{"Duplicates", testDuplicates},
		{"DuplicateAcrossPatients", testDuplicateAcrossPatients},
		{"OutOfOrder", testOutOfOrder},
		{"MultipleDevices", testMultipleDevices},
		{"Aggregates", testAggregates},
		{"Latest", testLatest},
		{"Waveforms", testWaveforms},
		{"ConcurrentAppend", testConcurrentAppend},
		{"Invalid", testInvalid},
		{"Patients", testPatients},
		{"Devices", testDevices},
		{"DeviceStatus", testDeviceStatus},
		{"UpdatePatient", testUpdatePatient},
		{"PatientSpO2Scale", testPatientSpO2Scale},
		{"PatientGenderAndName", testPatientGenderAndName},
		{"PatientCGMLimits", testPatientCGMLimits},
		{"UpdateDevice", testUpdateDevice},
		{"DeviceIdentifiers", testDeviceIdentifiers},
		{"DeviceAccess", testDeviceAccess},
		{"DeleteDevice", testDeleteDevice},
		{"ContextCanceled", testContextCanceled},
		{"Alarms", testAlarms},
		{"AlarmConfigs", testAlarmConfigs},
		{"AlarmSilences", testAlarmSilences},
		{"HostileText", testHostileText},
		{"AuditAppend", testAuditAppend},
		{"AuditFilters", testAuditFilters},
		{"AuditConcurrent", testAuditConcurrent},
		{"AuditInvalid", testAuditInvalid},
		{"AuditCheckpoints", testAuditCheckpoints},
	}
	tests = append(tests, identityTests()...)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(t)
			defer s.Close()
			tc.fn(t, s)
		})
	}
}

// Vitals returns a batch of device dev for patient with one reading per code per second,
// n seconds from start; values are deterministic in (code, second).
func Vitals(patient, dev string, start time.Time, n int, codes ...string) iomt.Batch {
	b := iomt.Batch{Tenant: iomt.DefaultTenant, Device: dev, Patient: patient, Received: start}
	for i := 0; i < n; i++ {
		for _, c := range codes {
			b.Observations = append(b.Observations, iomt.Observation{
				Patient: patient, Device: dev, Code: c,
				Time: start.Add(time.Duration(i) * time.Second), Value: Value(c, i), Unit: Unit(c),
			})
		}
	}
	return b
}

// Value is the deterministic value Vitals uses.
func Value(code string, i int) float64 {
	switch code {
	case HR:
		return float64(60 + i%40)
	case SpO2:
		return float64(94 + i%6)
	case RR:
		return 12 + float64(i%8)/2
	}
	return float64(i) * 1.25
}

// Unit is the canonical UCUM unit of the suite's codes.
func Unit(code string) string {
	switch code {
	case HR, RR:
		return "/min"
	case SpO2:
		return "%"
	}
	return "1"
}

func mustAppend(t *testing.T, s iomt.Store, batches ...iomt.Batch) []int {
	t.Helper()
	d, err := s.Append(context.Background(), batches)
	if err != nil {
		t.Fatalf("Append: %v", err)
	}
	if len(d) != len(batches) {
		t.Fatalf("Append returned %d duplicate counts for %d batches", len(d), len(batches))
	}
	return d
}

func query(t *testing.T, s iomt.Store, q iomt.ObservationQuery) []iomt.Observation {
	t.Helper()
	got, err := s.Observations(context.Background(), q)
	if err != nil {
		t.Fatalf("Observations(%+v): %v", q, err)
	}
	return got
}

func checkSorted(t *testing.T, got []iomt.Observation) {
	t.Helper()
	for i := 1; i < len(got); i++ {
		if got[i].Time.Before(got[i-1].Time) {
			t.Fatalf("observations out of time order at %d: %v after %v", i, got[i].Time, got[i-1].Time)
		}
	}
}

func testAppendAndQuery(t *testing.T, s iomt.Store) {
	b := Vitals("p1", "d1", T0, 60, HR, SpO2)
	if d := mustAppend(t, s, b); d[0] != 0 {
		t.Fatalf("fresh batch reported %d duplicates", d[0])
	}
	got := query(t, s, iomt.ObservationQuery{Patient: "p1", Code: HR, From: T0, To: T0.Add(time.Hour)})
	if len(got) != 60 {
		t.Fatalf("got %d HR readings, want 60", len(got))
	}
	for i, o := range got {
		want := iomt.Observation{Patient: "p1", Device: "d1", Code: HR, Time: T0.Add(time.Duration(i) * time.Second), Value: Value(HR, i), Unit: "/min"}
		if o.Patient != want.Patient || o.Device != want.Device || o.Code != want.Code || !o.Time.Equal(want.Time) || o.Value != want.Value || o.Unit != want.Unit {
			t.Fatalf("reading %d = %+v, want %+v", i, o, want)
		}
		if o.Time.Location() != time.UTC {
			t.Fatalf("reading %d time %v is not UTC", i, o.Time)
		}
	}
	if got := query(t, s, iomt.ObservationQuery{Patient: "p1", Code: SpO2, From: T0, To: T0.Add(time.Hour)}); len(got) != 60 || got[5].Value != Value(SpO2, 5) || got[5].Unit != "%" {
		t.Fatalf("SpO2: %d readings, [5]=%+v", len(got), got[5])
	}
	if got := query(t, s, iomt.ObservationQuery{Patient: "p1", Code: RR, From: T0, To: T0.Add(time.Hour)}); len(got) != 0 {
		t.Fatalf("code never sent returned %d readings", len(got))
	}
	if got := query(t, s, iomt.ObservationQuery{Patient: "nobody", Code: HR, From: T0, To: T0.Add(time.Hour)}); len(got) != 0 {
		t.Fatalf("unknown patient returned %d readings", len(got))
	}
	// Batch-level Patient and Device stand in for empty observation fields.
	nb := iomt.Batch{Device: "d9", Patient: "p9", Observations: []iomt.Observation{{Code: HR, Time: T0, Value: 70, Unit: "/min"}}}
	mustAppend(t, s, nb)
	got = query(t, s, iomt.ObservationQuery{Patient: "p9", Code: HR, From: T0, To: T0.Add(time.Second)})
	if len(got) != 1 || got[0].Device != "d9" || got[0].Patient != "p9" {
		t.Fatalf("batch-level ids: %+v", got)
	}
	// Sub-millisecond parts are dropped: time is millisecond precision end to end.
	mustAppend(t, s, iomt.Batch{Device: "d8", Patient: "p8", Observations: []iomt.Observation{{Code: HR, Time: T0.Add(1500 * time.Microsecond), Value: 1}}})
	got = query(t, s, iomt.ObservationQuery{Patient: "p8", Code: HR, From: T0, To: T0.Add(time.Second)})
	if len(got) != 1 || !got[0].Time.Equal(T0.Add(time.Millisecond)) {
		t.Fatalf("sub-millisecond time: %+v", got)
	}
}

func testWindowAndLimit(t *testing.T, s iomt.Store) {
	mustAppend(t, s, Vitals("p1", "d1", T0, 100, HR))
	// [From, To) is half open.
	got := query(t, s, iomt.ObservationQuery{Patient: "p1", Code: HR, From: T0.Add(10 * time.Second), To: T0.Add(20 * time.Second)})
	if len(got) != 10 || !got[0].Time.Equal(T0.Add(10*time.Second)) || !got[9].Time.Equal(T0.Add(19*time.Second)) {
		t.Fatalf("window [10s, 20s): %d readings from %v", len(got), got)
	}
	got = query(t, s, iomt.ObservationQuery{Patient: "p1", Code: HR, From: T0, To: T0.Add(time.Hour), Limit: 7})
	if len(got) != 7 || !got[0].Time.Equal(T0) || !got[6].Time.Equal(T0.Add(6*time.Second)) {
		t.Fatalf("limit 7: %d readings %v", len(got), got)
	}
	got = query(t, s, iomt.ObservationQuery{Patient: "p1", Code: HR, From: T0.Add(time.Hour), To: T0.Add(2 * time.Hour)})
	if len(got) != 0 {
		t.Fatalf("empty window returned %d", len(got))
	}
	got = query(t, s, iomt.ObservationQuery{Patient: "p1", Code: HR, From: T0.Add(20 * time.Second), To: T0.Add(10 * time.Second)})
	if len(got) != 0 {
		t.Fatalf("inverted window returned %d", len(got))
	}
}

func testDuplicates(t *testing.T, s iomt.Store) {
	b := Vitals("p1", "d1", T0, 10, HR, SpO2)
	mustAppend(t, s, b)
	// A redelivered batch is skipped entirely.
	if d := mustAppend(t, s, b); d[0] != 20 {
		t.Fatalf("redelivered batch: %d duplicates, want 20", d[0])
	}
	// A gateway replay overlapping the stored readings: 5 old + 5 new seconds per code.
	r := Vitals("p1", "d1", T0.Add(5*time.Second), 10, HR, SpO2)
	if d := mustAppend(t, s, r); d[0] != 10 {
		t.Fatalf("overlapping replay: %d duplicates, want 10", d[0])
	}
	// The same reading twice within one call: counted in the batch that carries the copy.
	x := Vitals("p1", "d1", T0.Add(15*time.Second), 1, HR)
	if d := mustAppend(t, s, x, x, Vitals("p1", "d1", T0.Add(16*time.Second), 1, HR)); !slices.Equal(d, []int{0, 1, 0}) {
		t.Fatalf("duplicates within one call: %v, want [0 1 0]", d)
	}
	// A reading is identified by (device, code, time): the value does not matter.
	y := Vitals("p1", "d1", T0, 1, HR)
	y.Observations[0].Value = 1000
	if d := mustAppend(t, s, y); d[0] != 1 {
		t.Fatalf("same reading with another value: %d duplicates, want 1", d[0])
	}
	got := query(t, s, iomt.ObservationQuery{Patient: "p1", Code: HR, From: T0, To: T0.Add(time.Hour)})
	if len(got) != 17 {
		t.Fatalf("stored %d HR readings, want 17", len(got))
	}
	for i, o := range got {
		if !o.Time.Equal(T0.Add(time.Duration(i) * time.Second)) {
			t.Fatalf("reading %d at %v, want %v", i, o.Time, T0.Add(time.Duration(i)*time.Second))
		}
	}
	if got[0].Value != Value(HR, 0) {
		t.Fatalf("duplicate overwrote the first reading: %v", got[0].Value)
	}
	// Another device's reading at the same time and code is not a duplicate.
	if d := mustAppend(t, s, Vitals("p1", "d2", T0, 1, HR)); d[0] != 0 {
		t.Fatalf("other device at same time: %d duplicates", d[0])
	}
}

func testDuplicateAcrossPatients(t *testing.T, s iomt.Store) {
	// A device rebound from one patient to another replays a reading it sent for the first:
	// (device, code, time) identifies it, so it is still a duplicate.
	mustAppend(t, s, Vitals("pa", "dx", T0, 5, HR))
	mustAppend(t, s, Vitals("pb", "dx", T0.Add(time.Minute), 5, HR))
	if d := mustAppend(t, s, Vitals("pb", "dx", T0, 5, HR)); d[0] != 5 {
		t.Fatalf("replay under another patient: %d duplicates, want 5", d[0])
	}
	if got := query(t, s, iomt.ObservationQuery{Patient: "pb", Code: HR, From: T0, To: T0.Add(time.Hour)}); len(got) != 5 {
		t.Fatalf("patient pb has %d readings, want 5", len(got))
	}
}

func testOutOfOrder(t *testing.T, s iomt.Store) {
	mustAppend(t, s, Vitals("p1", "d1", T0.Add(10*time.Second), 10, HR))
	// Late readings, older than everything stored, some interleaved.
	late := iomt.Batch{Device: "d1", Patient: "p1"}
	for _, sec := range []int{5, 3, 12, 25, 4, 3, 0} { // 12 is stored, 3 repeats
		late.Observations = append(late.Observations, iomt.Observation{Code: HR, Time: T0.Add(time.Duration(sec) * time.Second), Value: float64(100 + sec), Unit: "/min"})
	}
	// 25 is in order (after 19); 12 and the second 3 are duplicates.
	if d := mustAppend(t, s, late); d[0] != 2 {
		t.Fatalf("late batch: %d duplicates, want 2", d[0])
	}
	if d := mustAppend(t, s, late); d[0] != 7 {
		t.Fatalf("late batch again: %d duplicates, want 7", d[0])
	}
	got := query(t, s, iomt.ObservationQuery{Patient: "p1", Code: HR, From: T0, To: T0.Add(time.Hour)})
	checkSorted(t, got)
	var secs []int
	for _, o := range got {
		secs = append(secs, int(o.Time.Sub(T0)/time.Second))
	}
	want := []int{0, 3, 4, 5, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 25}
	if !slices.Equal(secs, want) {
		t.Fatalf("seconds %v, want %v", secs, want)
	}
	if got[1].Value != 103 || got[6].Value != Value(HR, 2) {
		t.Fatalf("values: late %v, in-order %v", got[1].Value, got[6].Value)
	}
	// A late reading in the middle of a window, with a limit.
	got = query(t, s, iomt.ObservationQuery{Patient: "p1", Code: HR, From: T0.Add(4 * time.Second), To: T0.Add(time.Hour), Limit: 3})
	if len(got) != 3 || got[0].Value != 104 || got[1].Value != 105 || !got[2].Time.Equal(T0.Add(10*time.Second)) {
		t.Fatalf("window with late readings: %+v", got)
	}
	// Late readings are latest-neutral.
	lat, err := s.Latest(context.Background(), "p1")
	if err != nil || len(lat) != 1 || !lat[0].Time.Equal(T0.Add(25*time.Second)) {
		t.Fatalf("Latest: %+v, %v", lat, err)
	}
}

func testMultipleDevices(t *testing.T, s iomt.Store) {
	a := Vitals("p1", "d-a", T0, 10, SpO2)
	b := Vitals("p1", "d-b", T0.Add(500*time.Millisecond), 10, SpO2)
	mustAppend(t, s, a, b)
	got := query(t, s, iomt.ObservationQuery{Patient: "p1", Code: SpO2, From: T0, To: T0.Add(time.Hour)})
	if len(got) != 20 {
		t.Fatalf("got %d, want 20", len(got))
	}
	checkSorted(t, got)
	for i, o := range got {
		want := "d-a"
		if i%2 == 1 {
			want = "d-b"
		}
		if o.Device != want {
			t.Fatalf("reading %d from %s, want %s", i, o.Device, want)
		}
	}
}

func testAggregates(t *testing.T, s iomt.Store) {
	// 10 minutes of 1 Hz HR starting 30 s into a minute, plus a gap.
	start := T0.Add(30 * time.Second)
	mustAppend(t, s, Vitals("p1", "d1", start, 600, HR))
	mustAppend(t, s, Vitals("p1", "d1", start.Add(20*time.Minute), 60, HR))
	ctx := context.Background()
	aggs, err := s.Aggregates(ctx, iomt.ObservationQuery{Patient: "p1", Code: HR, From: T0, To: T0.Add(time.Hour), Step: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	// Buckets aligned to the epoch: 08:00 (30 readings), 08:01..08:09 (60), 08:10 (30),
	// nothing for 08:11..08:19 (omitted), 08:20 (30), 08:21 (30).
	if len(aggs) != 13 {
		t.Fatalf("%d buckets, want 13: %+v", len(aggs), aggs)
	}
	var want []iomt.Aggregate
	bucket := map[int64]*iomt.Aggregate{}
	add := func(ts time.Time, v float64) {
		k := ts.Truncate(time.Minute).UnixMilli()
		a := bucket[k]
		if a == nil {
			want = append(want, iomt.Aggregate{Time: ts.Truncate(time.Minute), Min: v, Max: v})
			a = &want[len(want)-1]
			bucket[k] = a
		}
		a.Min, a.Max = math.Min(a.Min, v), math.Max(a.Max, v)
		a.Mean += v
		a.Count++
	}
	for i := 0; i < 600; i++ {
		add(start.Add(time.Duration(i)*time.Second), Value(HR, i))
	}
	for i := 0; i < 60; i++ {
		add(start.Add(20*time.Minute+time.Duration(i)*time.Second), Value(HR, i))
	}
	for i := range want {
		want[i].Mean /= float64(want[i].Count)
		g := aggs[i]
		if !g.Time.Equal(want[i].Time) || g.Count != want[i].Count || g.Min != want[i].Min || g.Max != want[i].Max || math.Abs(g.Mean-want[i].Mean) > 1e-9 {
			t.Fatalf("bucket %d = %+v, want %+v", i, g, want[i])
		}
	}
	// A step that does not divide the window still aligns to the epoch.
	aggs, err = s.Aggregates(ctx, iomt.ObservationQuery{Patient: "p1", Code: HR, From: start, To: start.Add(2 * time.Minute), Step: 7 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	for _, a := range aggs {
		if a.Time.UnixMilli()%7000 != 0 {
			t.Fatalf("bucket %v not aligned to 7 s since the epoch", a.Time)
		}
		total += a.Count
	}
	if total != 120 {
		t.Fatalf("7 s buckets hold %d readings, want 120", total)
	}
	// An hour bucket holding everything.
	aggs, err = s.Aggregates(ctx, iomt.ObservationQuery{Patient: "p1", Code: HR, From: T0, To: T0.Add(time.Hour), Step: time.Hour})
	if err != nil || len(aggs) != 1 || aggs[0].Count != 660 || aggs[0].Min != 60 || aggs[0].Max != 99 {
		t.Fatalf("hour bucket: %+v, %v", aggs, err)
	}
	if _, err := s.Aggregates(ctx, iomt.ObservationQuery{Patient: "p1", Code: HR, From: T0, To: T0.Add(time.Hour)}); !errors.Is(err, iomt.ErrInvalid) {
		t.Fatalf("Aggregates without a step: %v, want ErrInvalid", err)
	}
}

func testLatest(t *testing.T, s iomt.Store) {
	ctx := context.Background()
	if got, err := s.Latest(ctx, "p1"); err != nil || len(got) != 0 {
		t.Fatalf("Latest of unknown patient: %+v, %v", got, err)
	}
	mustAppend(t, s, Vitals("p1", "d1", T0, 30, HR, SpO2))
	mustAppend(t, s, Vitals("p1", "d2", T0.Add(time.Minute), 1, RR))
	mustAppend(t, s, Vitals("p1", "d3", T0.Add(40*time.Second), 1, SpO2))
	mustAppend(t, s, Vitals("p2", "d4", T0.Add(time.Hour), 1, HR))
	got, err := s.Latest(ctx, "p1")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 {
		t.Fatalf("Latest: %d codes, want 3: %+v", len(got), got)
	}
	by := map[string]iomt.Observation{}
	for _, o := range got {
		if o.Patient != "p1" {
			t.Fatalf("Latest returned another patient's reading: %+v", o)
		}
		by[o.Code] = o
	}
	if o := by[HR]; !o.Time.Equal(T0.Add(29*time.Second)) || o.Value != Value(HR, 29) || o.Device != "d1" || o.Unit != "/min" {
		t.Fatalf("latest HR %+v", o)
	}
	if o := by[SpO2]; !o.Time.Equal(T0.Add(40*time.Second)) || o.Device != "d3" {
		t.Fatalf("latest SpO2 %+v (newest device wins)", o)
	}
	if o := by[RR]; !o.Time.Equal(T0.Add(time.Minute)) || o.Device != "d2" {
		t.Fatalf("latest RR %+v", o)
	}
}

// Wave makes a waveform segment of n samples at period from start.
func Wave(patient, dev, code string, start time.Time, period time.Duration, n int, seed int32) iomt.Waveform {
	w := iomt.Waveform{Patient: patient, Device: dev, Code: code, Start: start, Period: period, Scale: 0.005, Unit: "mV", Samples: make([]int32, n)}
	for i := range w.Samples {
		w.Samples[i] = seed + int32(200*math.Sin(float64(i)/8)) + int32(i%5)
	}
	return w
}

func testWaveforms(t *testing.T, s iomt.Store) {
	ctx := context.Background()
	const period = 4 * time.Millisecond // 250 Hz
	b := iomt.Batch{Device: "ecg1", Patient: "p1"}
	for i := 0; i < 5; i++ {
		b.Waveforms = append(b.Waveforms, Wave("p1", "ecg1", ECGII, T0.Add(time.Duration(i)*time.Second), period, 250, int32(i*10)))
	}
	if d := mustAppend(t, s, b); d[0] != 0 {
		t.Fatalf("fresh waveforms: %d duplicates", d[0])
	}
	got, err := s.Waveforms(ctx, iomt.WaveformQuery{Patient: "p1", Code: ECGII, From: T0, To: T0.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 5 {
		t.Fatalf("got %d segments, want 5", len(got))
	}
	for i, w := range got {
		want := b.Waveforms[i]
		if !w.Start.Equal(want.Start) || w.Period != period || w.Scale != want.Scale || w.Unit != "mV" || w.Device != "ecg1" || w.Patient != "p1" || w.Code != ECGII || !slices.Equal(w.Samples, want.Samples) {
			t.Fatalf("segment %d differs: got start %v period %v scale %v unit %q device %q, %d samples", i, w.Start, w.Period, w.Scale, w.Unit, w.Device, len(w.Samples))
		}
	}
	// Overlap: a window starting inside segment 1 and ending inside segment 2.
	got, err = s.Waveforms(ctx, iomt.WaveformQuery{Patient: "p1", Code: ECGII, From: T0.Add(1500 * time.Millisecond), To: T0.Add(2500 * time.Millisecond)})
	if err != nil || len(got) != 2 || !got[0].Start.Equal(T0.Add(time.Second)) {
		t.Fatalf("overlap query: %d segments, %v", len(got), err)
	}
	// A segment ending exactly at From does not overlap.
	got, err = s.Waveforms(ctx, iomt.WaveformQuery{Patient: "p1", Code: ECGII, From: T0.Add(5 * time.Second), To: T0.Add(time.Hour)})
	if err != nil || len(got) != 0 {
		t.Fatalf("query after the last segment: %d segments, %v", len(got), err)
	}
	// Redelivery: duplicates are counted in samples.
	if d := mustAppend(t, s, b); d[0] != 5*250 {
		t.Fatalf("redelivered waveforms: %d duplicates, want 1250", d[0])
	}
	// A late segment (before the first) is stored and returned in order.
	late := iomt.Batch{Device: "ecg1", Patient: "p1", Waveforms: []iomt.Waveform{Wave("p1", "ecg1", ECGII, T0.Add(-time.Second), period, 250, 7)}}
	if d := mustAppend(t, s, late); d[0] != 0 {
		t.Fatalf("late segment: %d duplicates", d[0])
	}
	got, err = s.Waveforms(ctx, iomt.WaveformQuery{Patient: "p1", Code: ECGII, From: T0.Add(-time.Hour), To: T0.Add(time.Hour)})
	if err != nil || len(got) != 6 || !got[0].Start.Equal(T0.Add(-time.Second)) || !slices.Equal(got[0].Samples, late.Waveforms[0].Samples) {
		t.Fatalf("with late segment: %d segments, %v", len(got), err)
	}
	// Mixed batch: observations and waveforms together; other patients see nothing.
	mix := Vitals("p2", "mon", T0, 2, HR)
	mix.Waveforms = []iomt.Waveform{Wave("p2", "mon", ECGII, T0, period, 10, 0)}
	if d := mustAppend(t, s, mix); d[0] != 0 {
		t.Fatalf("mixed batch: %d duplicates", d[0])
	}
	if d := mustAppend(t, s, mix); d[0] != 12 {
		t.Fatalf("mixed batch again: %d duplicates, want 12", d[0])
	}
	got, err = s.Waveforms(ctx, iomt.WaveformQuery{Patient: "p2", Code: ECGII, From: T0, To: T0.Add(time.Hour)})
	if err != nil || len(got) != 1 || len(got[0].Samples) != 10 {
		t.Fatalf("p2 waveforms: %+v, %v", got, err)
	}
	// Extreme sample values survive.
	ext := iomt.Batch{Device: "x", Patient: "p3", Waveforms: []iomt.Waveform{{Code: ECGII, Start: T0, Period: period, Scale: 1, Unit: "mV", Samples: []int32{math.MaxInt32, math.MinInt32, 0, -1}}}}
	mustAppend(t, s, ext)
	got, err = s.Waveforms(ctx, iomt.WaveformQuery{Patient: "p3", Code: ECGII, From: T0, To: T0.Add(time.Hour)})
	if err != nil || len(got) != 1 || !slices.Equal(got[0].Samples, ext.Waveforms[0].Samples) {
		t.Fatalf("extreme samples: %+v, %v", got, err)
	}
}

func testConcurrentAppend(t *testing.T, s iomt.Store) {
	const devices, seconds = 16, 20
	var wg sync.WaitGroup
	errs := make(chan error, devices)
	for d := 0; d < devices; d++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			dev := fmt.Sprintf("dev%02d", d)
			for i := 0; i < seconds; i++ {
				b := Vitals("pat-"+dev, dev, T0.Add(time.Duration(i)*time.Second), 1, HR, SpO2)
				b.Waveforms = []iomt.Waveform{Wave("pat-"+dev, dev, ECGII, T0.Add(time.Duration(i)*time.Second), 4*time.Millisecond, 250, int32(i))}
				if _, err := s.Append(context.Background(), []iomt.Batch{b}); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for d := 0; d < devices; d++ {
		p := fmt.Sprintf("pat-dev%02d", d)
		if got := query(t, s, iomt.ObservationQuery{Patient: p, Code: HR, From: T0, To: T0.Add(time.Hour)}); len(got) != seconds {
			t.Fatalf("%s: %d readings, want %d", p, len(got), seconds)
		}
		w, err := s.Waveforms(context.Background(), iomt.WaveformQuery{Patient: p, Code: ECGII, From: T0, To: T0.Add(time.Hour)})
		if err != nil || len(w) != seconds {
			t.Fatalf("%s: %d segments, %v", p, len(w), err)
		}
	}
}

func testInvalid(t *testing.T, s iomt.Store) {
	ctx := context.Background()
	bad := []iomt.Batch{
		{Device: "d", Observations: []iomt.Observation{{Code: HR, Time: T0, Value: 1}}},                        // no patient
		{Patient: "p", Observations: []iomt.Observation{{Code: HR, Time: T0, Value: 1}}},                       // no device
		{Device: "d", Patient: "p", Observations: []iomt.Observation{{Time: T0, Value: 1}}},                    // no code
		{Device: "d", Patient: "p", Observations: []iomt.Observation{{Code: HR, Value: 1}}},                    // no time
		{Device: "d", Patient: "p", Waveforms: []iomt.Waveform{{Code: ECGII, Start: T0, Samples: []int32{1}}}}, // no period
	}
	for i, b := range bad {
		if _, err := s.Append(ctx, []iomt.Batch{Vitals("p", "d", T0.Add(time.Hour), 1, HR), b}); !errors.Is(err, iomt.ErrInvalid) {
			t.Errorf("bad batch %d: %v, want ErrInvalid", i, err)
		}
	}
	// A refused call stores nothing, not even its good batches.
	if got := query(t, s, iomt.ObservationQuery{Patient: "p", Code: HR, From: T0, To: T0.Add(2 * time.Hour)}); len(got) != 0 {
		t.Fatalf("refused Append stored %d readings", len(got))
	}
	if _, err := s.Observations(ctx, iomt.ObservationQuery{Code: HR}); !errors.Is(err, iomt.ErrInvalid) {
		t.Errorf("query without patient: %v, want ErrInvalid", err)
	}
	if _, err := s.Aggregates(ctx, iomt.ObservationQuery{Patient: "p", Code: HR, Step: -time.Second}); !errors.Is(err, iomt.ErrInvalid) {
		t.Errorf("negative step: %v, want ErrInvalid", err)
	}
	if d, err := s.Append(ctx, nil); err != nil || len(d) != 0 {
		t.Errorf("empty Append: %v, %v", d, err)
	}
}

func testPatients(t *testing.T, s iomt.Store) {
	ctx := context.Background()
	mk := func(id, tenant, mrn string) iomt.Patient {
		return iomt.Patient{ID: id, Tenant: tenant, Name: "Name " + id, BirthDate: "1950-03-04", MRN: mrn, CreatedAt: T0}
	}
	for _, p := range []iomt.Patient{mk("p1", "t1", "m1"), mk("p2", "t1", "m2"), mk("p3", "t2", "m1"), mk("p4", "t1", "")} {
		if err := s.CreatePatient(ctx, p); err != nil {
			t.Fatalf("CreatePatient(%s): %v", p.ID, err)
		}
	}
	if err := s.CreatePatient(ctx, mk("p1", "t9", "m9")); !errors.Is(err, iomt.ErrDuplicate) {
		t.Fatalf("duplicate id: %v, want ErrDuplicate", err)
	}
	if err := s.CreatePatient(ctx, mk("p5", "t1", "m1")); !errors.Is(err, iomt.ErrDuplicate) {
		t.Fatalf("duplicate (tenant, MRN): %v, want ErrDuplicate", err)
	}
	if err := s.CreatePatient(ctx, mk("p6", "t1", "")); err != nil {
		t.Fatalf("second patient without MRN: %v", err)
	}
	p, err := s.Patient(ctx, "p2")
	if err != nil {
		t.Fatal(err)
	}
	if want := mk("p2", "t1", "m2"); p.ID != want.ID || p.Tenant != want.Tenant || p.Name != want.Name || p.BirthDate != want.BirthDate || p.MRN != want.MRN || !p.CreatedAt.Equal(want.CreatedAt) {
		t.Fatalf("Patient(p2) = %+v, want %+v", p, want)
	}
	if _, err := s.Patient(ctx, "nope"); !errors.Is(err, iomt.ErrNotFound) {
		t.Fatalf("unknown patient: %v, want ErrNotFound", err)
	}
	ids := func(f iomt.PatientFilter) []string {
		ps, err := s.Patients(ctx, f)
		if err != nil {
			t.Fatalf("Patients(%+v): %v", f, err)
		}
		var out []string
		for _, p := range ps {
			out = append(out, p.ID)
		}
		return out
	}
	for _, c := range []struct {
		f    iomt.PatientFilter
		want []string
	}{
		{iomt.PatientFilter{}, []string{"p1", "p2", "p3", "p4", "p6"}},
		{iomt.PatientFilter{Tenant: "t1"}, []string{"p1", "p2", "p4", "p6"}},
		{iomt.PatientFilter{Tenant: "t2"}, []string{"p3"}},
		{iomt.PatientFilter{Tenant: "t1", MRN: "m1"}, []string{"p1"}},
		{iomt.PatientFilter{MRN: "m1"}, []string{"p1", "p3"}},
		{iomt.PatientFilter{Tenant: "t1", MRN: "zz"}, nil},
		{iomt.PatientFilter{Tenant: "t1", Limit: 2}, []string{"p1", "p2"}},
		{iomt.PatientFilter{Tenant: "none"}, nil},
	} {
		if got := ids(c.f); !slices.Equal(got, c.want) {
			t.Errorf("Patients(%+v) = %v, want %v", c.f, got, c.want)
		}
	}
	if err := s.CreatePatient(ctx, iomt.Patient{Tenant: "t1"}); !errors.Is(err, iomt.ErrInvalid) {
		t.Errorf("patient without id: %v, want ErrInvalid", err)
	}
}

func testDevices(t *testing.T, s iomt.Store) {
	ctx := context.Background()
	batt := 80.0
	d1 := iomt.Device{ID: "d1", Tenant: "t1", Kind: "pulse-oximeter", Patient: "p1", MQTTPasswordHash: []byte{1, 2, 3}, TokenHash: []byte{4, 5}, CreatedAt: T0, Battery: &batt}
	for _, d := range []iomt.Device{d1,
		{ID: "d2", Tenant: "t1", Kind: "ecg-patch", Patient: "p1", CreatedAt: T0},
		{ID: "d3", Tenant: "t1", Kind: "bp-monitor", Patient: "p2", CreatedAt: T0},
		{ID: "d4", Tenant: "t2", Kind: "cgm", CreatedAt: T0},
	} {
		if err := s.CreateDevice(ctx, d); err != nil {
			t.Fatalf("CreateDevice(%s): %v", d.ID, err)
		}
	}
	if err := s.CreateDevice(ctx, iomt.Device{ID: "d1", Tenant: "t2"}); !errors.Is(err, iomt.ErrDuplicate) {
		t.Fatalf("duplicate device: %v, want ErrDuplicate", err)
	}
	got, err := s.Device(ctx, "d1")
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != "d1" || got.Tenant != "t1" || got.Kind != d1.Kind || got.Patient != "p1" || !slices.Equal(got.MQTTPasswordHash, d1.MQTTPasswordHash) ||
		!slices.Equal(got.TokenHash, d1.TokenHash) || !got.CreatedAt.Equal(T0) || got.Battery == nil || *got.Battery != 80 {
		t.Fatalf("Device(d1) = %+v", got)
	}
	if _, err := s.Device(ctx, "nope"); !errors.Is(err, iomt.ErrNotFound) {
		t.Fatalf("unknown device: %v, want ErrNotFound", err)
	}
	ids := func(f iomt.DeviceFilter) []string {
		ds, err := s.Devices(ctx, f)
		if err != nil {
			t.Fatalf("Devices(%+v): %v", f, err)
		}
		var out []string
		for _, d := range ds {
			out = append(out, d.ID)
		}
		return out
	}
	for _, c := range []struct {
		f    iomt.DeviceFilter
		want []string
	}{
		{iomt.DeviceFilter{}, []string{"d1", "d2", "d3", "d4"}},
		{iomt.DeviceFilter{Tenant: "t1"}, []string{"d1", "d2", "d3"}},
		{iomt.DeviceFilter{Patient: "p1"}, []string{"d1", "d2"}},
		{iomt.DeviceFilter{Tenant: "t2", Patient: "p1"}, nil},
		{iomt.DeviceFilter{Tenant: "t1", Limit: 1}, []string{"d1"}},
		{iomt.DeviceFilter{Patient: "nobody"}, nil},
	} {
		if got := ids(c.f); !slices.Equal(got, c.want) {
			t.Errorf("Devices(%+v) = %v, want %v", c.f, got, c.want)
		}
	}
}

func testDeviceStatus(t *testing.T, s iomt.Store) {
	ctx := context.Background()
	if err := s.CreateDevice(ctx, iomt.Device{ID: "d1", Tenant: "t1", Kind: "pulse-oximeter", CreatedAt: T0}); err != nil {
		t.Fatal(err)
	}
	b1, b2 := 90.0, 85.0
	if err := s.UpdateDeviceStatus(ctx, []iomt.DeviceStatus{{Device: "d1", LastSeen: T0.Add(time.Minute), Battery: &b1}}); err != nil {
		t.Fatal(err)
	}
	if err := s.UpdateDeviceStatus(ctx, []iomt.DeviceStatus{{Device: "d1", LastSeen: T0.Add(2 * time.Minute), Battery: &b2}}); err != nil {
		t.Fatal(err)
	}
	d, err := s.Device(ctx, "d1")
	if err != nil {
		t.Fatal(err)
	}
	if !d.LastSeen.Equal(T0.Add(2*time.Minute)) || d.Battery == nil || *d.Battery != 85 {
		t.Fatalf("after status: last seen %v battery %v", d.LastSeen, d.Battery)
	}
	ds, err := s.Devices(ctx, iomt.DeviceFilter{Tenant: "t1"})
	if err != nil || len(ds) != 1 || !ds[0].LastSeen.Equal(T0.Add(2*time.Minute)) {
		t.Fatalf("Devices after status: %+v, %v", ds, err)
	}
	if err := s.UpdateDeviceStatus(ctx, []iomt.DeviceStatus{{Device: "ghost", LastSeen: T0}}); !errors.Is(err, iomt.ErrNotFound) {
		t.Fatalf("status of unknown device: %v, want ErrNotFound", err)
	}
}

func testContextCanceled(t *testing.T, s iomt.Store) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Append(ctx, []iomt.Batch{Vitals("p1", "d1", T0, 1, HR)}); !errors.Is(err, context.Canceled) {
		t.Errorf("Append with canceled context: %v", err)
	}
	if _, err := s.Observations(ctx, iomt.ObservationQuery{Patient: "p1", Code: HR}); !errors.Is(err, context.Canceled) {
		t.Errorf("Observations with canceled context: %v", err)
	}
	if _, err := s.Patients(ctx, iomt.PatientFilter{}); !errors.Is(err, context.Canceled) {
		t.Errorf("Patients with canceled context: %v", err)
	}
}

func testUpdatePatient(t *testing.T, s iomt.Store) {
	ctx := context.Background()
	for _, p := range []iomt.Patient{
		{ID: "p1", Tenant: "t1", Name: "Ada", MRN: "m1", CreatedAt: T0},
		{ID: "p2", Tenant: "t1", Name: "Bea", MRN: "m2", CreatedAt: T0},
		{ID: "p3", Tenant: "t2", Name: "Cy", MRN: "m3", CreatedAt: T0},
	} {
		if err := s.CreatePatient(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	// Tenant and CreatedAt are kept whatever the caller sends.
	if err := s.UpdatePatient(ctx, iomt.Patient{ID: "p1", Tenant: "other", Name: "Ada L.", BirthDate: "1815-12-10", MRN: "m9", CreatedAt: T0.Add(time.Hour)}); err != nil {
		t.Fatalf("UpdatePatient: %v", err)
	}
	p, err := s.Patient(ctx, "p1")
	if err != nil {
		t.Fatal(err)
	}
	if p.Name != "Ada L." || p.BirthDate != "1815-12-10" || p.MRN != "m9" || p.Tenant != "t1" || !p.CreatedAt.Equal(T0) {
		t.Fatalf("after update: %+v", p)
	}
	byMRN := func(tenant, mrn string) []iomt.Patient {
		ps, err := s.Patients(ctx, iomt.PatientFilter{Tenant: tenant, MRN: mrn})
		if err != nil {
			t.Fatal(err)
		}
		return ps
	}
	if ps := byMRN("t1", "m9"); len(ps) != 1 || ps[0].ID != "p1" {
		t.Fatalf("new MRN finds %+v", ps)
	}
	if ps := byMRN("t1", "m1"); len(ps) != 0 {
		t.Fatalf("old MRN still finds %+v", ps)
	}
	// The old MRN is free again; another patient's MRN is not.
	if err := s.UpdatePatient(ctx, iomt.Patient{ID: "p2", Name: "Bea", MRN: "m1"}); err != nil {
		t.Fatalf("taking a freed MRN: %v", err)
	}
	if err := s.UpdatePatient(ctx, iomt.Patient{ID: "p2", Name: "Bea", MRN: "m9"}); !errors.Is(err, iomt.ErrDuplicate) {
		t.Fatalf("taking p1's MRN: %v, want ErrDuplicate", err)
	}
	if p, _ := s.Patient(ctx, "p2"); p.MRN != "m1" {
		t.Fatalf("a refused update changed p2: %+v", p)
	}
	// MRNs are per tenant.
	if err := s.UpdatePatient(ctx, iomt.Patient{ID: "p3", Name: "Cy", MRN: "m9"}); err != nil {
		t.Fatalf("same MRN in another tenant: %v", err)
	}
	if err := s.UpdatePatient(ctx, iomt.Patient{ID: "nope", Name: "X"}); !errors.Is(err, iomt.ErrNotFound) {
		t.Fatalf("unknown patient: %v, want ErrNotFound", err)
	}
	if err := s.UpdatePatient(ctx, iomt.Patient{Name: "X"}); !errors.Is(err, iomt.ErrInvalid) {
		t.Fatalf("no id: %v, want ErrInvalid", err)
	}
}

// The NEWS2 SpO2 scale is kept by create, replaced by update, listed with the patient, and a
// scale other than 0, 1 or 2 is refused by both without changing anything.
func testPatientSpO2Scale(t *testing.T, s iomt.Store) {
	ctx := context.Background()
	get := func(id string) iomt.Patient {
		t.Helper()
		p, err := s.Patient(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	if err := s.CreatePatient(ctx, iomt.Patient{ID: "p1", Tenant: "t1", Name: "Ada", CreatedAt: T0}); err != nil {
		t.Fatal(err)
	}
	if err := s.CreatePatient(ctx, iomt.Patient{ID: "p2", Tenant: "t1", Name: "Bea", MRN: "m2", SpO2Scale: 2, CreatedAt: T0}); err != nil {
		t.Fatal(err)
	}
	if p := get("p1"); p.SpO2Scale != 0 {
		t.Fatalf("scale not set: %+v, want 0", p)
	}
	if p := get("p2"); p.SpO2Scale != 2 {
		t.Fatalf("created on scale 2: %+v", p)
	}
	ps, err := s.Patients(ctx, iomt.PatientFilter{Tenant: "t1"})
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) != 2 || ps[0].SpO2Scale != 0 || ps[1].SpO2Scale != 2 {
		t.Fatalf("Patients: %+v", ps)
	}
	if err := s.UpdatePatient(ctx, iomt.Patient{ID: "p1", Name: "Ada", SpO2Scale: 2}); err != nil {
		t.Fatalf("UpdatePatient to scale 2: %v", err)
	}
	if p := get("p1"); p.SpO2Scale != 2 || p.Name != "Ada" {
		t.Fatalf("after update to scale 2: %+v", p)
	}
	if err := s.UpdatePatient(ctx, iomt.Patient{ID: "p1", Name: "Ada", SpO2Scale: 1}); err != nil {
		t.Fatalf("UpdatePatient back to scale 1: %v", err)
	}
	if p := get("p1"); p.SpO2Scale != 1 {
		t.Fatalf("after update to scale 1: %+v", p)
	}
	for _, bad := range []int{3, -1} {
		if err := s.UpdatePatient(ctx, iomt.Patient{ID: "p2", Name: "Changed", MRN: "m9", SpO2Scale: bad}); !errors.Is(err, iomt.ErrInvalid) {
			t.Fatalf("update to scale %d: %v, want ErrInvalid", bad, err)
		}
		if p := get("p2"); p.SpO2Scale != 2 || p.Name != "Bea" || p.MRN != "m2" {
			t.Fatalf("a refused update (scale %d) changed p2: %+v", bad, p)
		}
		if err := s.CreatePatient(ctx, iomt.Patient{ID: "p3", Tenant: "t1", Name: "Cy", SpO2Scale: bad, CreatedAt: T0}); !errors.Is(err, iomt.ErrInvalid) {
			t.Fatalf("create on scale %d: %v, want ErrInvalid", bad, err)
		}
		if _, err := s.Patient(ctx, "p3"); !errors.Is(err, iomt.ErrNotFound) {
			t.Fatalf("a refused create (scale %d) left a patient: %v", bad, err)
		}
	}
}

func testUpdateDevice(t *testing.T, s iomt.Store) {
	ctx := context.Background()
	d := iomt.Device{ID: "d1", Tenant: "t1", Kind: "pulse-oximeter", Patient: "p1", MQTTPasswordHash: []byte{1}, TokenHash: []byte{2}, CreatedAt: T0}
	if err := s.CreateDevice(ctx, d); err != nil {
		t.Fatal(err)
	}
	batt := 42.0
	if err := s.UpdateDeviceStatus(ctx, []iomt.DeviceStatus{{Device: "d1", LastSeen: T0.Add(time.Minute), Battery: &batt}}); err != nil {
		t.Fatal(err)
	}
	if err := s.UpdateDevice(ctx, iomt.Device{ID: "d1", Tenant: "t9", Kind: "ecg-patch", Patient: "p2"}); err != nil {
		t.Fatalf("UpdateDevice: %v", err)
	}
	got, err := s.Device(ctx, "d1")
	if err != nil {
		t.Fatal(err)
	}
	if got.Kind != "ecg-patch" || got.Patient != "p2" || got.Tenant != "t1" || !got.CreatedAt.Equal(T0) ||
		!slices.Equal(got.MQTTPasswordHash, []byte{1}) || !slices.Equal(got.TokenHash, []byte{2}) ||
		!got.LastSeen.Equal(T0.Add(time.Minute)) || got.Battery == nil || *got.Battery != 42 {
		t.Fatalf("after update: %+v", got)
	}
	for _, c := range []struct {
		patient string
		want    int
	}{{"p1", 0}, {"p2", 1}} {
		ds, err := s.Devices(ctx, iomt.DeviceFilter{Patient: c.patient})
		if err != nil {
			t.Fatal(err)
		}
		if len(ds) != c.want {
			t.Errorf("devices of %s after rebinding: %d, want %d", c.patient, len(ds), c.want)
		}
	}
	// Unbinding.
	if err := s.UpdateDevice(ctx, iomt.Device{ID: "d1", Kind: "ecg-patch"}); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Device(ctx, "d1"); got.Patient != "" {
		t.Fatalf("unbound device still has patient %q", got.Patient)
	}
	if err := s.UpdateDevice(ctx, iomt.Device{ID: "nope", Kind: "x"}); !errors.Is(err, iomt.ErrNotFound) {
		t.Fatalf("unknown device: %v, want ErrNotFound", err)
	}
}

func testDeviceIdentifiers(t *testing.T, s iomt.Store) {
	ctx := context.Background()
	ids := []iomt.Identifier{
		{System: "http://goodcare.org/devices/id", Value: "345675"},
		{System: "urn:oid:2.16.840.1.113883.3.3719", Value: "(01)00844588003288(17)141120(10)7654321D(21)10987654d321"},
		{Value: "asset 17 — ward 3"}, // no system; spaces and non-ASCII in a value are fine
	}
	if err := s.CreateDevice(ctx, iomt.Device{ID: "d1", Tenant: "t1", Kind: "other", Identifiers: ids, CreatedAt: T0}); err != nil {
		t.Fatalf("CreateDevice with identifiers: %v", err)
	}
	if err := s.CreateDevice(ctx, iomt.Device{ID: "d2", Tenant: "t1", Kind: "scale", CreatedAt: T0}); err != nil {
		t.Fatal(err)
	}
	got, err := s.Device(ctx, "d1")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got.Identifiers, ids) {
		t.Fatalf("Device(d1).Identifiers = %+v, want %+v", got.Identifiers, ids)
	}
	if got, err := s.Device(ctx, "d2"); err != nil || got.Identifiers != nil {
		t.Fatalf("a device without identifiers reads %#v (%v), want nil", got.Identifiers, err)
	}
	ds, err := s.Devices(ctx, iomt.DeviceFilter{Tenant: "t1"})
	if err != nil || len(ds) != 2 || !slices.Equal(ds[0].Identifiers, ids) || ds[1].Identifiers != nil {
		t.Fatalf("Devices: %+v, %v", ds, err)
	}
	// Status updates keep them.
	if err := s.UpdateDeviceStatus(ctx, []iomt.DeviceStatus{{Device: "d1", LastSeen: T0.Add(time.Minute)}}); err != nil {
		t.Fatal(err)
	}
	// An update replaces them: with a new list, then with none.
	next := []iomt.Identifier{{System: "urn:example:serial", Value: "SN-1"}}
	if err := s.UpdateDevice(ctx, iomt.Device{ID: "d1", Kind: "other", Identifiers: next}); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Device(ctx, "d1"); !slices.Equal(got.Identifiers, next) || !got.LastSeen.Equal(T0.Add(time.Minute)) {
		t.Fatalf("after update: identifiers %+v, last seen %v", got.Identifiers, got.LastSeen)
	}
	if err := s.UpdateDevice(ctx, iomt.Device{ID: "d1", Kind: "other"}); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Device(ctx, "d1"); got.Identifiers != nil {
		t.Fatalf("after clearing: identifiers %+v", got.Identifiers)
	}
	// Identifiers CheckIdentifiers refuses are refused by the store too, and change nothing.
	for _, bad := range [][]iomt.Identifier{
		{{System: "urn:x", Value: ""}},
		{{System: "urn:x", Value: "a\x00b"}},
		{{System: "urn:x", Value: "1"}, {System: "urn:x", Value: "1"}},
	} {
		if err := s.CreateDevice(ctx, iomt.Device{ID: "d3", Tenant: "t1", Kind: "other", Identifiers: bad, CreatedAt: T0}); !errors.Is(err, iomt.ErrInvalid) {
			t.Errorf("CreateDevice with %q: %v, want ErrInvalid", bad, err)
		}
		if err := s.UpdateDevice(ctx, iomt.Device{ID: "d2", Kind: "scale", Identifiers: bad}); !errors.Is(err, iomt.ErrInvalid) {
			t.Errorf("UpdateDevice with %q: %v, want ErrInvalid", bad, err)
		}
	}
	if _, err := s.Device(ctx, "d3"); !errors.Is(err, iomt.ErrNotFound) {
		t.Errorf("a refused device was stored: %v", err)
	}
}
