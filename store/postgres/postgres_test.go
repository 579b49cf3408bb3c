package postgres

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/iomt/iomt"
	"github.com/iomt/iomt/store/storetest"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// testDB creates a fresh database on the server named by IOMT_TEST_POSTGRES, drops it when
// the test ends, and returns its URL.
func testDB(t testing.TB) string {
	t.Helper()
	admin := os.Getenv("IOMT_TEST_POSTGRES")
	if admin == "" {
		t.Skip("IOMT_TEST_POSTGRES is not set: set it to a PostgreSQL URL whose user may create databases, e.g. postgres://postgres@localhost:5432/postgres?sslmode=disable")
	}
	u, err := url.Parse(admin)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		t.Fatalf("IOMT_TEST_POSTGRES must be a postgres:// URL")
	}
	var b [6]byte
	rand.Read(b[:])
	name := "iomt_test_" + hex.EncodeToString(b[:])
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		t.Fatalf("connecting to IOMT_TEST_POSTGRES: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("create database: %v", err)
	}
	t.Cleanup(func() {
		conn, err := pgx.Connect(ctx, admin)
		if err != nil {
			t.Errorf("drop database %s: %v", name, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("drop database %s: %v", name, err)
		}
	})
	u.Path = "/" + name
	return u.String()
}

func openTest(t testing.TB, dbURL string, o Options) *Store {
	t.Helper()
	if o.Logger == nil {
		o.Logger = quiet
	}
	s, err := Open(context.Background(), dbURL, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T) iomt.Store {
		return openTest(t, testDB(t), Options{})
	})
}

// TestConformanceCopy runs the suite with every group written through COPY and the staging
// tables, however small.
func TestConformanceCopy(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T) iomt.Store {
		return openTest(t, testDB(t), Options{CopyMinRows: 1, CopyMinSamples: 1})
	})
}

// twoNodes writes through one Store and reads through another on the same database, as two
// nodes behind a load balancer would: nothing may be served from one Store's memory.
type twoNodes struct {
	*Store // writes
	r      *Store
}

func (n twoNodes) UpdateDeviceStatus(ctx context.Context, s []iomt.DeviceStatus) error {
	if err := n.Store.UpdateDeviceStatus(ctx, s); err != nil {
		return err
	}
	return n.Store.flushStatus(ctx)
}

func (n twoNodes) Observations(ctx context.Context, q iomt.ObservationQuery) ([]iomt.Observation, error) {
	return n.r.Observations(ctx, q)
}

func (n twoNodes) Aggregates(ctx context.Context, q iomt.ObservationQuery) ([]iomt.Aggregate, error) {
	return n.r.Aggregates(ctx, q)
}

func (n twoNodes) Latest(ctx context.Context, p string) ([]iomt.Observation, error) {
	return n.r.Latest(ctx, p)
}

func (n twoNodes) Waveforms(ctx context.Context, q iomt.WaveformQuery) ([]iomt.Waveform, error) {
	return n.r.Waveforms(ctx, q)
}

func (n twoNodes) Patient(ctx context.Context, id string) (iomt.Patient, error) {
	return n.r.Patient(ctx, id)
}

func (n twoNodes) Patients(ctx context.Context, f iomt.PatientFilter) ([]iomt.Patient, error) {
	return n.r.Patients(ctx, f)
}

func (n twoNodes) Device(ctx context.Context, id string) (iomt.Device, error) {
	return n.r.Device(ctx, id)
}

func (n twoNodes) Devices(ctx context.Context, f iomt.DeviceFilter) ([]iomt.Device, error) {
	return n.r.Devices(ctx, f)
}

func (n twoNodes) User(ctx context.Context, id string) (iomt.User, error) { return n.r.User(ctx, id) }

func (n twoNodes) Users(ctx context.Context, f iomt.UserFilter) ([]iomt.User, error) {
	return n.r.Users(ctx, f)
}

func (n twoNodes) CareTeams(ctx context.Context, f iomt.CareTeamFilter) ([]iomt.CareTeam, error) {
	return n.r.CareTeams(ctx, f)
}

func (n twoNodes) Session(ctx context.Context, id string) (iomt.Session, error) {
	return n.r.Session(ctx, id)
}

func (n twoNodes) APIToken(ctx context.Context, id string) (iomt.APIToken, error) {
	return n.r.APIToken(ctx, id)
}

func (n twoNodes) APITokens(ctx context.Context, f iomt.APITokenFilter) ([]iomt.APIToken, error) {
	return n.r.APITokens(ctx, f)
}

func (n twoNodes) BreakGlasses(ctx context.Context, f iomt.BreakGlassFilter) ([]iomt.BreakGlass, error) {
	return n.r.BreakGlasses(ctx, f)
}

func TestConformanceTwoNodes(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T) iomt.Store {
		u := testDB(t)
		return twoNodes{openTest(t, u, Options{}), openTest(t, u, Options{})}
	})
}

func migrationCounts(t *testing.T, s *Store) map[int]int {
	t.Helper()
	rows, _ := s.Pool().Query(context.Background(), "SELECT version, count(*) FROM schema_migrations GROUP BY version")
	out := map[int]int{}
	var v int32
	var n int64
	if _, err := pgx.ForEachRow(rows, []any{&v, &n}, func() error { out[int(v)] = int(n); return nil }); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestMigrationsIdempotent(t *testing.T) {
	t.Parallel()
	u := testDB(t)
	ms, err := migrations()
	if err != nil || len(ms) == 0 {
		t.Fatalf("embedded migrations: %d, %v", len(ms), err)
	}
	var logs bytes.Buffer
	s := openTest(t, u, Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if !strings.Contains(logs.String(), "applied migration") {
		t.Fatalf("first Open logged no migration: %s", logs.String())
	}
	s.Close()
	logs.Reset()
	s = openTest(t, u, Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if strings.Contains(logs.String(), "applied migration") {
		t.Fatalf("second Open applied migrations again: %s", logs.String())
	}
	if err := Migrate(context.Background(), u); err != nil {
		t.Fatal(err)
	}
	got := migrationCounts(t, s)
	if len(got) != len(ms) {
		t.Fatalf("schema_migrations has %v, want %d versions", got, len(ms))
	}
	for _, m := range ms {
		if got[m.version] != 1 {
			t.Fatalf("migration %d recorded %d times", m.version, got[m.version])
		}
	}
}

func TestConcurrentOpen(t *testing.T) {
	t.Parallel()
	u := testDB(t)
	const nodes = 4
	stores := make([]*Store, nodes)
	errs := make([]error, nodes)
	var wg sync.WaitGroup
	for i := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			stores[i], errs[i] = Open(context.Background(), u, Options{Logger: quiet})
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("node %d: %v", i, err)
		}
		t.Cleanup(func() { stores[i].Close() })
	}
	ms, _ := migrations()
	if got := migrationCounts(t, stores[0]); len(got) != len(ms) || got[1] != 1 {
		t.Fatalf("schema_migrations %v", got)
	}
	// Every node writes the same readings, for a day no node has a partition for yet.
	day := time.Date(2011, 3, 4, 10, 0, 0, 0, time.UTC)
	for i := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = stores[i].Append(context.Background(), []iomt.Batch{storetest.Vitals("p1", "d1", day, 30, storetest.HR)})
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("node %d append: %v", i, err)
		}
	}
	got, err := stores[1].Observations(context.Background(), iomt.ObservationQuery{Patient: "p1", Code: storetest.HR})
	if err != nil || len(got) != 30 {
		t.Fatalf("%d readings, %v", len(got), err)
	}
}

func partitionNames(t *testing.T, s *Store) []string {
	t.Helper()
	ps, err := s.partitions(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, p := range ps {
		out = append(out, p.name)
	}
	slices.Sort(out)
	return out
}

func TestPartitionsOutOfOrder(t *testing.T) {
	t.Parallel()
	s := openTest(t, testDB(t), Options{})
	ctx := context.Background()
	times := []time.Time{
		storetest.T0,
		time.Date(2003, 5, 1, 23, 59, 59, 999e6, time.UTC),
		time.Date(2003, 5, 2, 0, 0, 0, 0, time.UTC),
		time.Date(1999, 12, 31, 23, 0, 0, 0, time.UTC),
		time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(2150, 6, 7, 1, 2, 3, 0, time.UTC),
		time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC),
	}
	b := iomt.Batch{Device: "d1", Patient: "p1"}
	for i, at := range times {
		b.Observations = append(b.Observations, iomt.Observation{Code: storetest.HR, Time: at, Value: float64(i), Unit: "/min"})
		b.Waveforms = append(b.Waveforms, storetest.Wave("p1", "d1", storetest.ECGII, at, 4*time.Millisecond, 10, int32(i)))
	}
	if d, err := s.Append(ctx, []iomt.Batch{b}); err != nil || d[0] != 0 {
		t.Fatalf("Append: %v, %v", d, err)
	}
	names := partitionNames(t, s)
	for _, want := range []string{"observations_p20030501", "observations_p20030502", "observations_ppre2000",
		"observations_p21500607", "observations_p20000101", "observations_p20261102", "waveforms_p20030501", "waveforms_ppre2000", "waveforms_p21500607"} {
		if !slices.Contains(names, want) {
			t.Errorf("partition %s missing from %v", want, names)
		}
	}
	got, err := s.Observations(ctx, iomt.ObservationQuery{Patient: "p1", Code: storetest.HR})
	if err != nil || len(got) != len(times) {
		t.Fatalf("%d readings, %v", len(got), err)
	}
	sorted := slices.Clone(times)
	slices.SortFunc(sorted, func(a, b time.Time) int { return a.Compare(b) })
	for i, o := range got {
		if !o.Time.Equal(sorted[i]) {
			t.Fatalf("reading %d at %v, want %v", i, o.Time, sorted[i])
		}
	}
	w, err := s.Waveforms(ctx, iomt.WaveformQuery{Patient: "p1", Code: storetest.ECGII})
	if err != nil || len(w) != len(times) {
		t.Fatalf("%d segments, %v", len(w), err)
	}
	// Each row sits in the partition of its day.
	var misplaced int
	if err := s.Pool().QueryRow(ctx, `SELECT count(*) FROM observations
		WHERE tableoid::regclass::text <> 'observations_p' || to_char(time AT TIME ZONE 'UTC', 'YYYYMMDD')
		  AND time >= '2000-01-01+00'`).Scan(&misplaced); err != nil || misplaced != 0 {
		t.Fatalf("%d rows outside their day's partition, %v", misplaced, err)
	}
	// Years past 9999 and before 1 are refused, not stored.
	for _, at := range []time.Time{time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(-5, 1, 1, 0, 0, 0, 0, time.UTC)} {
		if _, err := s.Append(ctx, []iomt.Batch{storetest.Vitals("p1", "d1", at, 1, storetest.HR)}); !errors.Is(err, iomt.ErrInvalid) {
			t.Errorf("time %v: %v, want ErrInvalid", at, err)
		}
	}
}

func TestDropBefore(t *testing.T) {
	t.Parallel()
	u := testDB(t)
	s := openTest(t, u, Options{})
	ctx := context.Background()
	d1 := time.Date(2024, 1, 10, 0, 0, 0, 0, time.UTC)
	d2, d3 := d1.AddDate(0, 0, 1), d1.AddDate(0, 0, 2)
	for _, at := range []time.Time{time.Date(1990, 1, 1, 0, 0, 0, 0, time.UTC), d1, d1.Add(23 * time.Hour), d2.Add(time.Hour), d3.Add(time.Hour)} {
		b := storetest.Vitals("p1", "d1", at, 3, storetest.HR)
		b.Waveforms = []iomt.Waveform{storetest.Wave("p1", "d1", storetest.ECGII, at, 4*time.Millisecond, 250, 0)}
		if _, err := s.Append(ctx, []iomt.Batch{b}); err != nil {
			t.Fatal(err)
		}
	}
	// Only latest readings in dropped partitions go: p2's newest reading is on day 1.
	if _, err := s.Append(ctx, []iomt.Batch{storetest.Vitals("p2", "d2", d1.Add(time.Hour), 1, storetest.RR)}); err != nil {
		t.Fatal(err)
	}
	before := partitionNames(t, s)
	// Noon of day 2: day 1 (and before 2000) are entirely older, day 2 is not.
	dropped, err := s.DropBefore(ctx, d2.Add(12*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(dropped)
	want := []string{"observations_p20240110", "observations_ppre2000", "waveforms_p20240110", "waveforms_ppre2000"}
	if !slices.Equal(dropped, want) {
		t.Fatalf("dropped %v, want %v", dropped, want)
	}
	after := partitionNames(t, s)
	for _, n := range before {
		if slices.Contains(after, n) == slices.Contains(want, n) {
			t.Fatalf("partition %s: before %v, after %v", n, before, after)
		}
	}
	got, err := s.Observations(ctx, iomt.ObservationQuery{Patient: "p1", Code: storetest.HR})
	if err != nil || len(got) != 6 || !got[0].Time.Equal(d2.Add(time.Hour)) {
		t.Fatalf("after drop: %d readings from %v, %v", len(got), got, err)
	}
	w, err := s.Waveforms(ctx, iomt.WaveformQuery{Patient: "p1", Code: storetest.ECGII})
	if err != nil || len(w) != 2 {
		t.Fatalf("after drop: %d segments, %v", len(w), err)
	}
	if l, err := s.Latest(ctx, "p2"); err != nil || len(l) != 0 {
		t.Fatalf("latest of p2 after its readings were dropped: %+v, %v", l, err)
	}
	if l, err := s.Latest(ctx, "p1"); err != nil || len(l) != 1 {
		t.Fatalf("latest of p1: %+v, %v", l, err)
	}
	// Nothing more to drop at the same time.
	if dropped, err := s.DropBefore(ctx, d2.Add(12*time.Hour)); err != nil || len(dropped) != 0 {
		t.Fatalf("second drop: %v, %v", dropped, err)
	}
	// Late data for a dropped day is accepted again, also by a node that still believes in
	// the partition.
	other := openTest(t, u, Options{})
	if _, err := other.Append(ctx, []iomt.Batch{storetest.Vitals("p3", "d3", d2, 1, storetest.HR)}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.DropBefore(ctx, d3); err != nil {
		t.Fatal(err)
	}
	if d, err := other.Append(ctx, []iomt.Batch{storetest.Vitals("p3", "d3", d2, 2, storetest.HR)}); err != nil || d[0] != 0 {
		t.Fatalf("append into a partition dropped by another node: %v, %v", d, err)
	}
	// The same through COPY: the failure comes from the INSERT out of the staging table.
	viaCopy := openTest(t, u, Options{CopyMinRows: 1, CopyMinSamples: 1})
	if _, err := viaCopy.Append(ctx, []iomt.Batch{storetest.Vitals("p4", "d4", d2, 1, storetest.HR)}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.DropBefore(ctx, d3); err != nil {
		t.Fatal(err)
	}
	if d, err := viaCopy.Append(ctx, []iomt.Batch{storetest.Vitals("p4", "d4", d2, 2, storetest.HR)}); err != nil || d[0] != 0 {
		t.Fatalf("append by COPY into a partition dropped by another node: %v, %v", d, err)
	}
	if got, err := s.Observations(ctx, iomt.ObservationQuery{Patient: "p4", Code: storetest.HR}); err != nil || len(got) != 2 {
		t.Fatalf("p4 after the second drop: %d readings, %v", len(got), err)
	}
}

func TestPlainSQL(t *testing.T) {
	t.Parallel()
	s := openTest(t, testDB(t), Options{})
	ctx := context.Background()
	b := storetest.Vitals("p1", "d1", storetest.T0, 3, storetest.HR)
	b.Tenant = "ward-7"
	b.Waveforms = []iomt.Waveform{storetest.Wave("p1", "d1", storetest.ECGII, storetest.T0, 4*time.Millisecond, 250, 5)}
	if _, err := s.Append(ctx, []iomt.Batch{b}); err != nil {
		t.Fatal(err)
	}
	var tenant, patient, device, code, unit string
	var at time.Time
	var value float64
	err := s.Pool().QueryRow(ctx, `SELECT tenant, patient, device, code, time, value, unit FROM observations
		WHERE patient = 'p1' AND code = '8867-4' ORDER BY time DESC LIMIT 1`).Scan(&tenant, &patient, &device, &code, &at, &value, &unit)
	if err != nil || tenant != "ward-7" || patient != "p1" || device != "d1" || code != storetest.HR || !at.Equal(storetest.T0.Add(2*time.Second)) || value != storetest.Value(storetest.HR, 2) || unit != "/min" {
		t.Fatalf("plain SQL: %s %s %s %s %v %v %s, %v", tenant, patient, device, code, at, value, unit, err)
	}
	// A sample's time and value from the README's query.
	var sampleAt time.Time
	var mv float64
	err = s.Pool().QueryRow(ctx, `SELECT w.start + (i - 1) * w.period_ns / 1000 * interval '1 microsecond', w.samples[i] * w.scale
		FROM waveforms w, generate_subscripts(w.samples, 1) AS i
		WHERE w.patient = 'p1' AND w.code = 'mdc:131330' ORDER BY 1 OFFSET 10 LIMIT 1`).Scan(&sampleAt, &mv)
	if err != nil || !sampleAt.Equal(storetest.T0.Add(40*time.Millisecond)) || mv != float64(b.Waveforms[0].Samples[10])*0.005 {
		t.Fatalf("waveform sample: %v %v, %v", sampleAt, mv, err)
	}
	// The README's Grafana query runs.
	rows, _ := s.Pool().Query(ctx, `SELECT to_timestamp(floor(extract(epoch FROM time) / 60) * 60) AS time, avg(value) AS "heart rate"
		FROM observations WHERE patient = 'p1' AND code = '8867-4'
		AND time BETWEEN '2026-11-02T00:00:00Z' AND '2026-11-03T00:00:00Z' GROUP BY 1 ORDER BY 1`)
	n := 0
	for rows.Next() {
		n++
	}
	if rows.Err() != nil || n != 1 {
		t.Fatalf("grafana query: %d rows, %v", n, rows.Err())
	}
	// Partition pruning: a one-hour query touches one partition.
	var plan string
	if err := s.Pool().QueryRow(ctx, `EXPLAIN (COSTS OFF) SELECT * FROM observations WHERE patient = 'p1' AND code = '8867-4'
		AND time >= '2026-11-02 08:00+00' AND time < '2026-11-02 09:00+00'`).Scan(&plan); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(plan, "Append") {
		t.Errorf("one-hour query scans several partitions: %s", plan)
	}
}

// The table itself refuses an SpO2 scale NEWS2 does not have, so that a write by plain SQL
// cannot leave a patient the pipeline would have to guess about.
func TestSpO2ScaleChecked(t *testing.T) {
	t.Parallel()
	s := openTest(t, testDB(t), Options{})
	ctx := context.Background()
	if err := s.CreatePatient(ctx, iomt.Patient{ID: "p1", Tenant: "t1", Name: "Ada", SpO2Scale: 2, CreatedAt: storetest.T0}); err != nil {
		t.Fatal(err)
	}
	_, err := s.Pool().Exec(ctx, `UPDATE patients SET spo2_scale = 3 WHERE id = 'p1'`)
	if constraint(err) != "patients_spo2_scale_check" {
		t.Fatalf("spo2_scale 3 by SQL: %v, want the check constraint", err)
	}
	if p, err := s.Patient(ctx, "p1"); err != nil || p.SpO2Scale != 2 {
		t.Fatalf("after the refused SQL: %+v, %v", p, err)
	}
	// Half-set CGM limits by SQL: refused by the table, as by the store.
	_, err = s.Pool().Exec(ctx, `UPDATE patients SET cgm_low = 80 WHERE id = 'p1'`)
	if constraint(err) != "patients_cgm_limits_check" {
		t.Fatalf("cgm_low alone by SQL: %v, want the check constraint", err)
	}
}

// A device written by plain SQL without identifiers (as every device before migration 0004)
// reads as having none; the column holds an array or nothing else.
func TestDeviceIdentifiersColumn(t *testing.T) {
	t.Parallel()
	s := openTest(t, testDB(t), Options{})
	ctx := context.Background()
	if _, err := s.Pool().Exec(ctx, `INSERT INTO devices (id, tenant, kind, created_at) VALUES ('d1', 't1', 'scale', now())`); err != nil {
		t.Fatal(err)
	}
	if d, err := s.Device(ctx, "d1"); err != nil || d.Identifiers != nil {
		t.Fatalf("device without identifiers: %+v, %v", d, err)
	}
	_, err := s.Pool().Exec(ctx, `UPDATE devices SET identifiers = '{"system":"urn:x","value":"1"}' WHERE id = 'd1'`)
	if constraint(err) != "devices_identifiers_check" {
		t.Fatalf("an object for identifiers by SQL: %v, want the check constraint", err)
	}
}

func TestConcurrentDuplicates(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name string
		o    Options
	}{
		{"arrays", Options{CopyMinRows: -1, CopyMinSamples: -1}},
		{"copy", Options{CopyMinRows: 1, CopyMinSamples: 1}},
		// A call has 4 readings and 500 samples: readings always by COPY, segments by COPY
		// when the group holds two calls or more.
		{"mixed", Options{CopyMinRows: 4, CopyMinSamples: 750}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			testConcurrentDuplicates(t, c.o)
		})
	}
}

// testConcurrentDuplicates has two nodes write the same readings at once, with groups
// written through arrays, COPY, or both.
func testConcurrentDuplicates(t *testing.T, o Options) {
	u := testDB(t)
	o.Writers = 3
	// Two Stores (two nodes) with several writers each, all sending the same readings.
	stores := []*Store{openTest(t, u, o), openTest(t, u, o)}
	const callers, seconds = 12, 40
	var mu sync.Mutex
	dups := 0
	var wg sync.WaitGroup
	for c := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := stores[c%2]
			for i := range seconds {
				// Every caller sends every second of devices dev0 and dev1, in its own order.
				sec := (i + c*7) % seconds
				var bs []iomt.Batch
				for dev := range 2 {
					b := storetest.Vitals("p", fmt.Sprintf("dev%d", dev), storetest.T0.Add(time.Duration(sec)*time.Second), 1, storetest.HR, storetest.SpO2)
					b.Waveforms = []iomt.Waveform{storetest.Wave("p", fmt.Sprintf("dev%d", dev), storetest.ECGII, storetest.T0.Add(time.Duration(sec)*time.Second), 4*time.Millisecond, 250, 0)}
					bs = append(bs, b)
				}
				d, err := s.Append(context.Background(), bs)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				dups += d[0] + d[1]
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	perCall := 2 * (2 + 250)
	if want := (callers - 1) * seconds * perCall; dups != want {
		t.Fatalf("%d duplicates, want %d", dups, want)
	}
	got, err := stores[0].Observations(context.Background(), iomt.ObservationQuery{Patient: "p", Code: storetest.HR})
	if err != nil || len(got) != 2*seconds {
		t.Fatalf("%d readings, %v", len(got), err)
	}
	w, err := stores[1].Waveforms(context.Background(), iomt.WaveformQuery{Patient: "p", Code: storetest.ECGII})
	if err != nil || len(w) != 2*seconds {
		t.Fatalf("%d segments, %v", len(w), err)
	}
}

func TestWaveformSpan(t *testing.T) {
	t.Parallel()
	u := testDB(t)
	a, b := openTest(t, u, Options{}), openTest(t, u, Options{})
	ctx := context.Background()
	// A ten-minute segment written by one node is found by the other in a window near its end.
	long := storetest.Wave("p1", "d1", storetest.ECGII, storetest.T0, 4*time.Millisecond, 150000, 0)
	if _, err := a.Append(ctx, []iomt.Batch{{Device: "d1", Patient: "p1", Waveforms: []iomt.Waveform{long}}}); err != nil {
		t.Fatal(err)
	}
	w, err := b.Waveforms(ctx, iomt.WaveformQuery{Patient: "p1", Code: storetest.ECGII, From: storetest.T0.Add(9 * time.Minute), To: storetest.T0.Add(11 * time.Minute)})
	if err != nil || len(w) != 1 || len(w[0].Samples) != 150000 || !slices.Equal(w[0].Samples, long.Samples) {
		t.Fatalf("long segment from another node: %d, %v", len(w), err)
	}
	// A period that is not a whole number of microseconds survives (360 Hz).
	odd := storetest.Wave("p1", "d1", "mdc:other", storetest.T0, time.Second/360, 360, 0)
	if _, err := a.Append(ctx, []iomt.Batch{{Device: "d1", Patient: "p1", Waveforms: []iomt.Waveform{odd}}}); err != nil {
		t.Fatal(err)
	}
	w, err = b.Waveforms(ctx, iomt.WaveformQuery{Patient: "p1", Code: "mdc:other"})
	if err != nil || len(w) != 1 || w[0].Period != time.Second/360 {
		t.Fatalf("360 Hz segment: %+v, %v", w, err)
	}
}

func TestBadInput(t *testing.T) {
	t.Parallel()
	s := openTest(t, testDB(t), Options{})
	ctx := context.Background()
	good := storetest.Vitals("p1", "d1", storetest.T0, 1, storetest.HR)
	for i, b := range []iomt.Batch{
		{Device: "d\x00", Patient: "p", Observations: []iomt.Observation{{Code: "c", Time: storetest.T0}}},
		{Device: "d", Patient: "p", Observations: []iomt.Observation{{Code: "c\xff", Time: storetest.T0}}},
		{Device: "d", Patient: "p", Observations: []iomt.Observation{{Code: "c", Unit: "\x00", Time: storetest.T0}}},
		{Device: "d", Patient: "p", Waveforms: []iomt.Waveform{{Code: "c", Start: storetest.T0, Period: time.Duration(1 << 62), Samples: make([]int32, 100)}}},
	} {
		if _, err := s.Append(ctx, []iomt.Batch{good, b}); !errors.Is(err, iomt.ErrInvalid) {
			t.Errorf("batch %d: %v, want ErrInvalid", i, err)
		}
	}
	if err := s.CreatePatient(ctx, iomt.Patient{ID: "p\x00"}); !errors.Is(err, iomt.ErrInvalid) {
		t.Errorf("NUL in patient id: %v", err)
	}
	if _, err := s.Patient(ctx, "\xff"); !errors.Is(err, iomt.ErrInvalid) {
		t.Errorf("bad UTF-8 id: %v", err)
	}
	if _, err := s.Observations(ctx, iomt.ObservationQuery{Patient: "p", Code: "c", Limit: -1}); !errors.Is(err, iomt.ErrInvalid) {
		t.Errorf("negative limit: %v", err)
	}
	if got, err := s.Observations(ctx, iomt.ObservationQuery{Patient: "p1", Code: storetest.HR}); err != nil || len(got) != 0 {
		t.Fatalf("refused calls stored %d readings, %v", len(got), err)
	}
	s.Close()
	if _, err := s.Append(ctx, []iomt.Batch{good}); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Errorf("Append after Close: %v", err)
	}
}

func TestPasswordNeverShown(t *testing.T) {
	t.Parallel()
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, u := range []string{
		"postgres://iomt:s3cr3t-pw@127.0.0.1:1/iomt?sslmode=disable&connect_timeout=2",
		"postgres://iomt:s3cr3t-pw@127.0.0.1:1/iomt?sslmode=bogus",
		"postgres://iomt:s3cr3t-pw@[::1/iomt",
	} {
		_, err := Open(ctx, u, Options{Logger: log})
		if err == nil {
			t.Fatalf("Open(%q) succeeded", u)
		}
		if strings.Contains(err.Error(), "s3cr3t") {
			t.Errorf("error shows the password: %v", err)
		}
		if err := Migrate(ctx, u); err == nil || strings.Contains(err.Error(), "s3cr3t") {
			t.Errorf("Migrate error: %v", err)
		}
	}
	if strings.Contains(logs.String(), "s3cr3t") {
		t.Errorf("log shows the password: %s", logs.String())
	}
}

func TestStatusWrittenOnClose(t *testing.T) {
	t.Parallel()
	u := testDB(t)
	s := openTest(t, u, Options{StatusInterval: time.Hour})
	ctx := context.Background()
	if err := s.CreateDevice(ctx, iomt.Device{ID: "d1", Tenant: "t", Kind: "cgm", CreatedAt: storetest.T0}); err != nil {
		t.Fatal(err)
	}
	batt := 55.5
	if err := s.UpdateDeviceStatus(ctx, []iomt.DeviceStatus{{Device: "d1", LastSeen: storetest.T0.Add(time.Hour), Battery: &batt}}); err != nil {
		t.Fatal(err)
	}
	// Another node does not see it yet; a node that starts after Close does.
	other := openTest(t, u, Options{})
	if d, err := other.Device(ctx, "d1"); err != nil || !d.LastSeen.IsZero() {
		t.Fatalf("status visible before it was written: %+v, %v", d, err)
	}
	// The other node knows the device from the database.
	if err := other.UpdateDeviceStatus(ctx, []iomt.DeviceStatus{{Device: "d1", LastSeen: storetest.T0}}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := other.Close(); err != nil {
		t.Fatal(err)
	}
	s = openTest(t, u, Options{})
	d, err := s.Device(ctx, "d1")
	if err != nil || !d.LastSeen.Equal(storetest.T0.Add(time.Hour)) || d.Battery == nil || *d.Battery != 55.5 {
		t.Fatalf("after Close: %+v, %v", d, err)
	}
}

// TestPipelineIsOneTransaction checks what send relies on: pgx runs a batch as one implicit
// transaction, so a group commit is all or nothing.
func TestPipelineIsOneTransaction(t *testing.T) {
	t.Parallel()
	s := openTest(t, testDB(t), Options{})
	ctx := context.Background()
	b := &pgx.Batch{}
	b.Queue("INSERT INTO patients (id, tenant, name, created_at) VALUES ('x', 't', 'n', now())")
	b.Queue("SELECT 1/0")
	if err := s.Pool().SendBatch(ctx, b).Close(); err == nil {
		t.Fatal("batch with a division by zero succeeded")
	}
	if _, err := s.Patient(ctx, "x"); !errors.Is(err, iomt.ErrNotFound) {
		t.Fatalf("the first statement of a failed batch was committed: %v", err)
	}
}

// stagingTables counts the staging tables that exist in the sessions of the database.
func stagingTables(t *testing.T, s *Store) int {
	t.Helper()
	var n int
	if err := s.Pool().QueryRow(context.Background(), `SELECT count(*) FROM pg_class
		WHERE relpersistence = 't' AND relname IN ($1, $2)`, stageObservations, stageWaveforms).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestCopyPath checks the choice between arrays and COPY, what the COPY path stores and
// counts, and that it survives its session's temporary tables being discarded.
func TestCopyPath(t *testing.T) {
	t.Parallel()
	// One connection: the DISCARD below reaches the session the writer uses.
	s := openTest(t, testDB(t), Options{CopyMinRows: 5, CopyMinSamples: 1000, MaxConns: 1})
	ctx := context.Background()
	small := storetest.Vitals("p1", "d1", storetest.T0, 1, storetest.HR, storetest.SpO2)
	if _, err := s.Append(ctx, []iomt.Batch{small}); err != nil {
		t.Fatal(err)
	}
	if n := stagingTables(t, s); n != 0 {
		t.Fatalf("a group of 2 readings (threshold 5) made %d staging tables", n)
	}
	// 6 readings by COPY, 2 of them already stored; 1 segment (250 samples) by arrays.
	big := storetest.Vitals("p1", "d1", storetest.T0, 3, storetest.HR, storetest.SpO2)
	big.Waveforms = []iomt.Waveform{storetest.Wave("p1", "d1", storetest.ECGII, storetest.T0, 4*time.Millisecond, 250, 1)}
	dups, err := s.Append(ctx, []iomt.Batch{big})
	if err != nil || len(dups) != 1 || dups[0] != 2 {
		t.Fatalf("COPY path: duplicates %v, %v; want [2]", dups, err)
	}
	if n := stagingTables(t, s); n != 2 {
		t.Fatalf("after a group of 6 readings: %d staging tables, want 2", n)
	}
	// The staging tables are empty once the transaction committed.
	var left int
	if err := s.Pool().QueryRow(ctx, "SELECT (SELECT count(*) FROM pg_temp."+stageObservations+") + (SELECT count(*) FROM pg_temp."+stageWaveforms+")").Scan(&left); err != nil || left != 0 {
		t.Fatalf("staging tables hold %d rows after commit, %v", left, err)
	}
	got, err := s.Observations(ctx, iomt.ObservationQuery{Patient: "p1", Code: storetest.SpO2})
	if err != nil || len(got) != 3 {
		t.Fatalf("%d SpO2 readings, %v; want 3", len(got), err)
	}
	for i, o := range got {
		if want := storetest.Value(storetest.SpO2, i); o.Value != want || !o.Time.Equal(storetest.T0.Add(time.Duration(i)*time.Second)) || o.Device != "d1" {
			t.Errorf("reading %d: %+v, want value %v", i, o, want)
		}
	}
	l, err := s.Latest(ctx, "p1")
	if err != nil || len(l) != 2 || !l[0].Time.Equal(storetest.T0.Add(2*time.Second)) {
		t.Fatalf("latest: %+v, %v", l, err)
	}
	// Waveforms alone through COPY (1,500 samples), a whole segment a duplicate.
	var ws []iomt.Batch
	for i := range 6 {
		ws = append(ws, iomt.Batch{Device: "d1", Patient: "p1", Waveforms: []iomt.Waveform{
			storetest.Wave("p1", "d1", storetest.ECGII, storetest.T0.Add(time.Duration(i)*time.Second), 4*time.Millisecond, 250, int32(i)),
		}})
	}
	dups, err = s.Append(ctx, ws)
	if err != nil || !slices.Equal(dups, []int{250, 0, 0, 0, 0, 0}) {
		t.Fatalf("waveforms by COPY: duplicates %v, %v", dups, err)
	}
	w, err := s.Waveforms(ctx, iomt.WaveformQuery{Patient: "p1", Code: storetest.ECGII})
	if err != nil || len(w) != 6 || !slices.Equal(w[5].Samples, ws[5].Waveforms[0].Samples) {
		t.Fatalf("waveforms: %d, %v", len(w), err)
	}
	// A pooler or an administrator discards the session's temporary tables: the next write
	// fails once inside, then makes them again.
	if _, err := s.Pool().Exec(ctx, "DISCARD TEMP"); err != nil {
		t.Fatal(err)
	}
	if n := stagingTables(t, s); n != 0 {
		t.Fatalf("DISCARD TEMP left %d staging tables", n)
	}
	if _, err := s.Append(ctx, []iomt.Batch{storetest.Vitals("p1", "d1", storetest.T0.Add(time.Minute), 3, storetest.HR, storetest.SpO2)}); err != nil {
		t.Fatalf("after DISCARD TEMP: %v", err)
	}
	if got, err := s.Observations(ctx, iomt.ObservationQuery{Patient: "p1", Code: storetest.HR}); err != nil || len(got) != 6 {
		t.Fatalf("%d heart rates, %v; want 6", len(got), err)
	}
}

// TestCopyRoundTrip: text the validation lets through (any valid UTF-8, quotes,
// backslashes, tabs, newlines) and extreme times and values come back unchanged through
// COPY (readings are returned in time order, as given here).
func TestCopyRoundTrip(t *testing.T) {
	t.Parallel()
	s := openTest(t, testDB(t), Options{CopyMinRows: 1, CopyMinSamples: 1})
	ctx := context.Background()
	odd := "pat\\t\t'\"\n,é😀"
	b := iomt.Batch{Tenant: "t\\N", Device: "dev\tx", Patient: odd, Observations: []iomt.Observation{
		{Code: "c\\.", Unit: "\\N", Time: time.Date(1, 1, 2, 0, 0, 0, 1e6, time.UTC), Value: math.MaxFloat64},
		{Code: "c\\.", Unit: "u", Time: storetest.T0, Value: math.SmallestNonzeroFloat64},
		{Code: "c\\.", Unit: "", Time: time.Date(9999, 12, 31, 23, 59, 59, 999e6, time.UTC), Value: math.Copysign(0, -1)},
	}}
	if _, err := s.Append(ctx, []iomt.Batch{b}); err != nil {
		t.Fatal(err)
	}
	got, err := s.Observations(ctx, iomt.ObservationQuery{Patient: odd, Code: "c\\."})
	if err != nil || len(got) != 3 {
		t.Fatalf("%d readings, %v", len(got), err)
	}
	for i, o := range got {
		want := b.Observations[i]
		if o.Device != b.Device || o.Unit != want.Unit || !o.Time.Equal(want.Time) || math.Float64bits(o.Value) != math.Float64bits(want.Value) {
			t.Errorf("reading %d: %+v, want %+v", i, o, want)
		}
	}
}

// TestStagingTruncated: the rows each COPY transaction deletes from the staging tables do
// not pile up in their files; once there are enough, a write truncates the tables.
func TestStagingTruncated(t *testing.T) {
	t.Parallel()
	// One connection, so that the size below is that of the writer's session's table.
	s := openTest(t, testDB(t), Options{CopyMinRows: 1, MaxConns: 1})
	ctx := context.Background()
	pages := func() int64 {
		var n int64
		if err := s.Pool().QueryRow(ctx, "SELECT pg_relation_size('pg_temp."+stageObservations+"') / 8192").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	const devices, groups = 500, 40 // 2,500 readings a group, 100,000 in all
	var first, most int64
	for sec := range groups {
		bs := make([]iomt.Batch, devices)
		for d := range bs {
			bs[d] = vitals(d, sec)
		}
		if _, err := s.Append(ctx, bs); err != nil {
			t.Fatal(err)
		}
		p := pages()
		if sec == 0 {
			first = p
		}
		most = max(most, p)
	}
	// Truncated after stageMaxDeadRows (8 groups), the file never holds more than about 9
	// groups; kept, it would hold all 40.
	if first == 0 || most > 10*first {
		t.Fatalf("staging table grew to %d pages; one group takes %d", most, first)
	}
	got, err := s.Observations(ctx, iomt.ObservationQuery{Patient: "pat-dev0007", Code: storetest.HR})
	if err != nil || len(got) != groups {
		t.Fatalf("%d readings, %v; want %d", len(got), err, groups)
	}
}
