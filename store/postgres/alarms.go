package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/iomt/iomt"
)

// SaveAlarms implements iomt.AlarmStore: an upsert per alarm, in one transaction.
func (s *Store) SaveAlarms(ctx context.Context, alarms []iomt.Alarm) error {
	if err := ctxErr(ctx, "save alarms"); err != nil {
		return err
	}
	if len(alarms) == 0 {
		return nil
	}
	b := &pgx.Batch{}
	for _, a := range alarms {
		if a.ID == "" {
			return fmt.Errorf("postgres: save alarms: %w: alarm id is empty", iomt.ErrInvalid)
		}
		if err := checkFields("alarm id", a.ID, "tenant", a.Tenant, "patient", a.Patient, "rule", a.Rule); err != nil {
			return fmt.Errorf("postgres: save alarms: %w", err)
		}
		doc, err := json.Marshal(a)
		if err != nil {
			return fmt.Errorf("postgres: save alarm %s: %w", a.ID, err)
		}
		b.Queue(`INSERT INTO alarms (id, tenant, patient, state, priority, rule, raised_at, updated_at, doc)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
			ON CONFLICT (id) DO UPDATE SET state = EXCLUDED.state, priority = EXCLUDED.priority,
				updated_at = EXCLUDED.updated_at, doc = EXCLUDED.doc
			-- an older snapshot arriving late (fewer transitions) does not replace a newer one
			WHERE jsonb_array_length(alarms.doc->'transitions') <= jsonb_array_length(EXCLUDED.doc->'transitions')`,
			a.ID, a.Tenant, a.Patient, string(a.State), a.Priority.String(), a.Rule, a.Raised, a.Updated(), doc)
	}
	if !s.enter() {
		return fmt.Errorf("postgres: save alarms: %w", errClosed)
	}
	defer s.leave()
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error { return tx.SendBatch(ctx, b).Close() })
	if err != nil {
		return wrap(ctx, "save alarms", err)
	}
	return nil
}

// Alarm implements iomt.AlarmStore.
func (s *Store) Alarm(ctx context.Context, id string) (iomt.Alarm, error) {
	var a iomt.Alarm
	if err := ctxErr(ctx, "alarm"); err != nil {
		return a, err
	}
	if err := checkFields("alarm id", id); err != nil {
		return a, fmt.Errorf("postgres: alarm: %w", err)
	}
	if !s.enter() {
		return a, fmt.Errorf("postgres: alarm: %w", errClosed)
	}
	defer s.leave()
	var doc []byte
	err := s.pool.QueryRow(ctx, `SELECT doc FROM alarms WHERE id = $1`, id).Scan(&doc)
	if errors.Is(err, pgx.ErrNoRows) {
		return a, fmt.Errorf("postgres: alarm %q: %w", id, iomt.ErrNotFound)
	}
	if err != nil {
		return a, wrap(ctx, "alarm", err)
	}
	if err := json.Unmarshal(doc, &a); err != nil {
		return a, fmt.Errorf("postgres: alarm %q: %w", id, err)
	}
	return a, nil
}

// Alarms implements iomt.AlarmStore.
func (s *Store) Alarms(ctx context.Context, f iomt.AlarmFilter) ([]iomt.Alarm, error) {
	if err := ctxErr(ctx, "alarms"); err != nil {
		return nil, err
	}
	if err := checkFields("tenant", f.Tenant, "patient", f.Patient); err != nil {
		return nil, fmt.Errorf("postgres: alarms: %w", err)
	}
	var w filter
	if f.Tenant != "" {
		w.add("tenant = ", f.Tenant, "")
	}
	if f.Patient != "" {
		w.add("patient = ", f.Patient, "")
	}
	if f.Patients != nil {
		w.add("patient = ANY(", f.Patients, "::text[])")
	}
	if len(f.States) > 0 {
		states := make([]string, len(f.States))
		for i, st := range f.States {
			states[i] = string(st)
		}
		w.add("state = ANY(", states, "::text[])")
	}
	if !f.Since.IsZero() {
		w.add("raised_at >= ", f.Since, "")
	}
	if !f.Until.IsZero() {
		w.add("raised_at < ", f.Until, "")
	}
	q := "SELECT doc FROM alarms" + w.sql()
	q += " ORDER BY raised_at DESC, id"
	if f.Limit > 0 {
		q += " LIMIT " + w.param(f.Limit)
	}
	if !s.enter() {
		return nil, fmt.Errorf("postgres: alarms: %w", errClosed)
	}
	defer s.leave()
	rows, err := s.pool.Query(ctx, q, w.args...)
	if err != nil {
		return nil, wrap(ctx, "alarms", err)
	}
	out := []iomt.Alarm{}
	for rows.Next() {
		var doc []byte
		if err := rows.Scan(&doc); err != nil {
			rows.Close()
			return nil, wrap(ctx, "alarms", err)
		}
		var a iomt.Alarm
		if err := json.Unmarshal(doc, &a); err != nil {
			rows.Close()
			return nil, fmt.Errorf("postgres: alarms: %w", err)
		}
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, wrap(ctx, "alarms", err)
	}
	return out, nil
}

// SaveAlarmConfig implements iomt.AlarmStore.
func (s *Store) SaveAlarmConfig(ctx context.Context, c iomt.AlarmConfig) error {
	if err := ctxErr(ctx, "save alarm config"); err != nil {
		return err
	}
	if err := checkFields("tenant", c.Tenant, "kind", c.Kind, "who", c.Who); err != nil {
		return fmt.Errorf("postgres: save alarm config: %w", err)
	}
	if c.Kind != "rules" && c.Kind != "routing" {
		return fmt.Errorf("postgres: save alarm config: %w: kind %q (want rules or routing)", iomt.ErrInvalid, c.Kind)
	}
	if c.Version < 1 {
		return fmt.Errorf("postgres: save alarm config: %w: version %d (must be ≥ 1)", iomt.ErrInvalid, c.Version)
	}
	if !s.enter() {
		return fmt.Errorf("postgres: save alarm config: %w", errClosed)
	}
	defer s.leave()
	_, err := s.pool.Exec(ctx, `INSERT INTO alarm_configs (tenant, kind, version, doc, who, saved_at)
		VALUES ($1, $2, $3, $4, $5, $6)`, c.Tenant, c.Kind, c.Version, c.Doc, c.Who, c.Saved)
	if err != nil {
		return wrap(ctx, "save alarm config", duplicate(err,
			fmt.Sprintf("%s version %d of tenant %q exists", c.Kind, c.Version, c.Tenant)))
	}
	return nil
}

// AlarmConfigs implements iomt.AlarmStore.
func (s *Store) AlarmConfigs(ctx context.Context) ([]iomt.AlarmConfig, error) {
	if err := ctxErr(ctx, "alarm configs"); err != nil {
		return nil, err
	}
	if !s.enter() {
		return nil, fmt.Errorf("postgres: alarm configs: %w", errClosed)
	}
	defer s.leave()
	rows, err := s.pool.Query(ctx, `SELECT DISTINCT ON (tenant, kind) tenant, kind, version, doc, who, saved_at
		FROM alarm_configs ORDER BY tenant, kind, version DESC`)
	if err != nil {
		return nil, wrap(ctx, "alarm configs", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (iomt.AlarmConfig, error) {
		var c iomt.AlarmConfig
		err := r.Scan(&c.Tenant, &c.Kind, &c.Version, &c.Doc, &c.Who, &c.Saved)
		return c, err
	})
	if err != nil {
		return nil, wrap(ctx, "alarm configs", err)
	}
	return out, nil
}

// SaveAlarmSilence implements iomt.AlarmStore: an upsert by tenant, scope and end, and the
// removal of ended silences, in one transaction.
func (s *Store) SaveAlarmSilence(ctx context.Context, x iomt.AlarmSilence) error {
	if err := ctxErr(ctx, "save alarm silence"); err != nil {
		return err
	}
	if err := iomt.CheckAlarmSilence(x); err != nil {
		return fmt.Errorf("postgres: save alarm silence: %w", err)
	}
	if err := checkFields("tenant", x.Tenant, "patient", x.Patient, "rule", x.Rule, "device", x.Device, "who", x.Who, "why", x.Why); err != nil {
		return fmt.Errorf("postgres: save alarm silence: %w", err)
	}
	for _, t := range []struct {
		what string
		t    time.Time
	}{{"until", x.Until}, {"created", x.Created}} {
		if err := checkTime(t.what, t.t); err != nil {
			return fmt.Errorf("postgres: save alarm silence: %w", err)
		}
	}
	// Milliseconds, as everywhere: a silence saved twice has one identity in both stores.
	until, created := x.Until.UTC().Truncate(time.Millisecond), x.Created.UTC().Truncate(time.Millisecond)
	if !s.enter() {
		return fmt.Errorf("postgres: save alarm silence: %w", errClosed)
	}
	defer s.leave()
	b := &pgx.Batch{}
	b.Queue(`DELETE FROM alarm_silences WHERE until_at < $1`, created)
	b.Queue(`INSERT INTO alarm_silences (tenant, patient, rule, device, until_at, who, why, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
		ON CONFLICT (tenant, patient, rule, device, until_at) DO UPDATE SET who = EXCLUDED.who,
			why = EXCLUDED.why, created_at = EXCLUDED.created_at`,
		x.Tenant, x.Patient, x.Rule, x.Device, until, x.Who, x.Why, created)
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error { return tx.SendBatch(ctx, b).Close() })
	if err != nil {
		return wrap(ctx, "save alarm silence", err)
	}
	return nil
}

// AlarmSilences implements iomt.AlarmStore.
func (s *Store) AlarmSilences(ctx context.Context, f iomt.AlarmSilenceFilter) ([]iomt.AlarmSilence, error) {
	if err := ctxErr(ctx, "alarm silences"); err != nil {
		return nil, err
	}
	if err := checkFields("tenant", f.Tenant); err != nil {
		return nil, fmt.Errorf("postgres: alarm silences: %w", err)
	}
	var w filter
	if f.Tenant != "" {
		w.add("tenant = ", f.Tenant, "")
	}
	if f.Patients != nil {
		w.add("patient = ANY(", f.Patients, "::text[])")
	}
	if !f.At.IsZero() {
		w.add("until_at > ", f.At, "")
	}
	q := "SELECT tenant, patient, rule, device, until_at, who, why, created_at FROM alarm_silences" + w.sql() +
		" ORDER BY tenant, patient, rule, device, until_at"
	if !s.enter() {
		return nil, fmt.Errorf("postgres: alarm silences: %w", errClosed)
	}
	defer s.leave()
	rows, err := s.pool.Query(ctx, q, w.args...)
	if err != nil {
		return nil, wrap(ctx, "alarm silences", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (iomt.AlarmSilence, error) {
		var x iomt.AlarmSilence
		err := r.Scan(&x.Tenant, &x.Patient, &x.Rule, &x.Device, &x.Until, &x.Who, &x.Why, &x.Created)
		x.Until, x.Created = x.Until.UTC(), x.Created.UTC()
		return x, err
	})
	if err != nil {
		return nil, wrap(ctx, "alarm silences", err)
	}
	if out == nil {
		out = []iomt.AlarmSilence{}
	}
	return out, nil
}

// filter builds a WHERE clause whose values are query parameters ($1, $2, ...).
type filter struct {
	where []string
	args  []any
}

// add appends the condition before + $n + after, $n standing for v.
func (f *filter) add(before string, v any, after string) {
	f.where = append(f.where, before+f.param(v)+after)
}

// param adds v as a parameter and returns its placeholder, $n.
func (f *filter) param(v any) string {
	f.args = append(f.args, v)
	return "$" + strconv.Itoa(len(f.args))
}

// sql is the WHERE clause ("" without conditions).
func (f *filter) sql() string {
	if len(f.where) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(f.where, " AND ")
}
