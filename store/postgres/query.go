package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/iomt/iomt"
)

// window converts a query's [From, To) to timestamptz bounds; zero times are unbounded.
func window(from, to time.Time) (lo, hi pgtype.Timestamptz) {
	lo = pgtype.Timestamptz{Valid: true, InfinityModifier: pgtype.NegativeInfinity}
	hi = pgtype.Timestamptz{Valid: true, InfinityModifier: pgtype.Infinity}
	if !from.IsZero() {
		lo = pgtype.Timestamptz{Valid: true, Time: iomt.FromMillis(iomt.Millis(from))}
	}
	if !to.IsZero() {
		hi = pgtype.Timestamptz{Valid: true, Time: iomt.FromMillis(iomt.Millis(to))}
	}
	return lo, hi
}

// empty reports an empty window.
func empty(from, to time.Time) bool {
	return !from.IsZero() && !to.IsZero() && iomt.Millis(from) >= iomt.Millis(to)
}

// limit is LIMIT's argument: NULL for none.
func limit(n int) *int64 {
	if n <= 0 {
		return nil
	}
	l := int64(n)
	return &l
}

func validateQuery(q iomt.ObservationQuery) error {
	if q.Patient == "" || q.Code == "" {
		return fmt.Errorf("%w: query needs patient and code", iomt.ErrInvalid)
	}
	if q.Limit < 0 {
		return fmt.Errorf("%w: negative limit", iomt.ErrInvalid)
	}
	return checkFields("patient", q.Patient, "code", q.Code)
}

// Observations implements iomt.SeriesStore: readings in time order (then by device), zero
// From or To leaving that end open; Step is ignored.
func (s *Store) Observations(ctx context.Context, q iomt.ObservationQuery) ([]iomt.Observation, error) {
	if err := ctxErr(ctx, "observations"); err != nil {
		return nil, err
	}
	if err := validateQuery(q); err != nil {
		return nil, fmt.Errorf("postgres: observations: %w", err)
	}
	if empty(q.From, q.To) {
		return []iomt.Observation{}, nil
	}
	if !s.enter() {
		return nil, fmt.Errorf("postgres: observations: %w", errClosed)
	}
	defer s.leave()
	lo, hi := window(q.From, q.To)
	rows, _ := s.pool.Query(ctx, `
		SELECT device, time, value, unit FROM observations
		WHERE patient = $1 AND code = $2 AND time >= $3 AND time < $4
		ORDER BY time, device LIMIT $5`, q.Patient, q.Code, lo, hi, limit(q.Limit))
	out := []iomt.Observation{}
	var o iomt.Observation
	_, err := pgx.ForEachRow(rows, []any{&o.Device, &o.Time, &o.Value, &o.Unit}, func() error {
		o.Patient, o.Code, o.Time = q.Patient, q.Code, o.Time.UTC()
		out = append(out, o)
		return nil
	})
	if err != nil {
		return nil, wrap(ctx, "observations", err)
	}
	return out, nil
}

// Aggregates implements iomt.SeriesStore: buckets of q.Step aligned to the Unix epoch, over
// every device's readings of the code, computed by the server.
func (s *Store) Aggregates(ctx context.Context, q iomt.ObservationQuery) ([]iomt.Aggregate, error) {
	if err := ctxErr(ctx, "aggregates"); err != nil {
		return nil, err
	}
	if err := validateQuery(q); err != nil {
		return nil, fmt.Errorf("postgres: aggregates: %w", err)
	}
	if q.Step <= 0 || q.Step%time.Millisecond != 0 {
		return nil, fmt.Errorf("postgres: aggregates: %w: step must be a positive whole number of milliseconds", iomt.ErrInvalid)
	}
	if empty(q.From, q.To) {
		return []iomt.Aggregate{}, nil
	}
	if !s.enter() {
		return nil, fmt.Errorf("postgres: aggregates: %w", errClosed)
	}
	defer s.leave()
	lo, hi := window(q.From, q.To)
	// Floor arithmetic on epoch milliseconds rather than date_bin, whose stride is an
	// interval (no month-free guarantee from a Duration, and older 14.x releases rounded
	// times before the origin the wrong way).
	rows, _ := s.pool.Query(ctx, `
		SELECT (floor(extract(epoch FROM time) * 1000 / $5::int8) * $5::int8)::int8 AS bucket,
			min(value), max(value), avg(value), count(*)
		FROM observations
		WHERE patient = $1 AND code = $2 AND time >= $3 AND time < $4
		GROUP BY bucket ORDER BY bucket LIMIT $6`, q.Patient, q.Code, lo, hi, q.Step.Milliseconds(), limit(q.Limit))
	out := []iomt.Aggregate{}
	var a iomt.Aggregate
	var bucket, n int64
	_, err := pgx.ForEachRow(rows, []any{&bucket, &a.Min, &a.Max, &a.Mean, &n}, func() error {
		a.Time, a.Count = iomt.FromMillis(bucket), int(n)
		out = append(out, a)
		return nil
	})
	if err != nil {
		return nil, wrap(ctx, "aggregates", err)
	}
	return out, nil
}

// Latest implements iomt.SeriesStore from the latest table: one index lookup, whatever the
// patient's history. Readings come ordered by code.
func (s *Store) Latest(ctx context.Context, patient string) ([]iomt.Observation, error) {
	if err := ctxErr(ctx, "latest"); err != nil {
		return nil, err
	}
	if err := checkText("patient", patient); err != nil {
		return nil, fmt.Errorf("postgres: latest: %w", err)
	}
	if !s.enter() {
		return nil, fmt.Errorf("postgres: latest: %w", errClosed)
	}
	defer s.leave()
	rows, _ := s.pool.Query(ctx, `SELECT code, device, time, value, unit FROM latest WHERE patient = $1 ORDER BY code`, patient)
	out := []iomt.Observation{}
	var o iomt.Observation
	_, err := pgx.ForEachRow(rows, []any{&o.Code, &o.Device, &o.Time, &o.Value, &o.Unit}, func() error {
		o.Patient, o.Time = patient, o.Time.UTC()
		out = append(out, o)
		return nil
	})
	if err != nil {
		return nil, wrap(ctx, "latest", err)
	}
	return out, nil
}

// Waveforms implements iomt.SeriesStore: segments overlapping [From, To), by start then device.
// Segments are found by start, from the window's start less the longest segment stored.
func (s *Store) Waveforms(ctx context.Context, q iomt.WaveformQuery) ([]iomt.Waveform, error) {
	if err := ctxErr(ctx, "waveforms"); err != nil {
		return nil, err
	}
	if q.Patient == "" || q.Code == "" {
		return nil, fmt.Errorf("postgres: waveforms: %w: query needs patient and code", iomt.ErrInvalid)
	}
	if err := checkFields("patient", q.Patient, "code", q.Code); err != nil {
		return nil, fmt.Errorf("postgres: waveforms: %w", err)
	}
	if empty(q.From, q.To) {
		return []iomt.Waveform{}, nil
	}
	if !s.enter() {
		return nil, fmt.Errorf("postgres: waveforms: %w", errClosed)
	}
	defer s.leave()
	lo, hi := window(q.From, q.To)
	rows, _ := s.pool.Query(ctx, `
		SELECT device, start, period_ns, scale, unit, samples FROM waveforms
		WHERE patient = $1 AND code = $2 AND start < $4 AND stop > $3
			AND start >= $3 - (SELECT max_ms FROM waveform_span) * interval '1 millisecond'
		ORDER BY start, device`, q.Patient, q.Code, lo, hi)
	out := []iomt.Waveform{}
	var w iomt.Waveform
	var period int64
	_, err := pgx.ForEachRow(rows, []any{&w.Device, &w.Start, &period, &w.Scale, &w.Unit, &w.Samples}, func() error {
		w.Patient, w.Code, w.Start, w.Period = q.Patient, q.Code, w.Start.UTC(), time.Duration(period)
		out = append(out, w)
		w.Samples = nil // the next row scans into a new slice
		return nil
	})
	if err != nil {
		return nil, wrap(ctx, "waveforms", err)
	}
	return out, nil
}
