package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/iomt/iomt"
)

const auditColumns = "seq, at, tenant, actor, actor_name, action, outcome, status, patients, resource, source, reason, purpose, detail, prev, hash"

// AppendAudit implements iomt.AuditStore. One transaction locks the chain head (the single
// row of audit_head), so appends from every node of a cluster take turns and the chain stays
// one line; the records are copied in and the head moved before the commit. A failed or
// cancelled append leaves no trace, so no gap.
func (s *Store) AppendAudit(ctx context.Context, events []iomt.AuditEvent) ([]iomt.AuditEvent, error) {
	if err := ctxErr(ctx, "append audit"); err != nil {
		return nil, err
	}
	for i, e := range events {
		if err := iomt.CheckAuditEvent(e); err != nil {
			return nil, fmt.Errorf("postgres: append audit: record %d of %d: %w", i+1, len(events), err)
		}
	}
	if len(events) == 0 {
		return []iomt.AuditEvent{}, nil
	}
	if !s.enter() {
		return nil, fmt.Errorf("postgres: append audit: %w", errClosed)
	}
	defer s.leave()
	out := make([]iomt.AuditEvent, len(events))
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var head int64
		var prev []byte
		if err := tx.QueryRow(ctx, "SELECT seq, hash FROM audit_head FOR UPDATE").Scan(&head, &prev); err != nil {
			return fmt.Errorf("lock the chain head: %w", err)
		}
		seq := uint64(head)
		rows := make([][]any, len(events))
		for i, e := range events {
			e = e.Normal()
			seq++
			e.Seq, e.Prev = seq, prev
			e.Hash = e.ChainHash(prev)
			prev = e.Hash
			var patients, detail any // NULL unless there are some
			if e.Patients != nil {
				patients = e.Patients
			}
			if e.Detail != nil {
				b, err := json.Marshal(e.Detail)
				if err != nil {
					return err
				}
				detail = string(b)
			}
			rows[i] = []any{int64(seq), e.Time, e.Tenant, e.Actor, e.ActorName, e.Action, e.Outcome, int32(e.Status),
				patients, e.Resource, e.Source, e.Reason, e.Purpose, detail, e.Prev, e.Hash}
			out[i] = e
		}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"audit_events"}, []string{"seq", "at", "tenant", "actor", "actor_name",
			"action", "outcome", "status", "patients", "resource", "source", "reason", "purpose", "detail", "prev", "hash"},
			pgx.CopyFromRows(rows)); err != nil {
			return fmt.Errorf("insert records: %w", err)
		}
		if _, err := tx.Exec(ctx, "UPDATE audit_head SET seq = $1, hash = $2", int64(seq), prev); err != nil {
			return fmt.Errorf("move the chain head: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, wrap(ctx, "append audit", err)
	}
	return out, nil
}

// AuditEvents implements iomt.AuditStore.
func (s *Store) AuditEvents(ctx context.Context, f iomt.AuditFilter) ([]iomt.AuditEvent, error) {
	if err := ctxErr(ctx, "audit events"); err != nil {
		return nil, err
	}
	if err := checkFields("tenant", f.Tenant, "patient", f.Patient, "actor", f.Actor, "action", f.Action); err != nil {
		return nil, fmt.Errorf("postgres: audit events: %w", err)
	}
	out := []iomt.AuditEvent{}
	if f.AfterSeq >= math.MaxInt64 {
		return out, nil
	}
	var w filter
	if f.AfterSeq > 0 {
		w.add("seq > ", int64(f.AfterSeq), "")
	}
	if f.Tenant != "" {
		w.add("tenant = ", f.Tenant, "")
	}
	if f.Patient != "" {
		w.add("patients @> ARRAY[", f.Patient, "]::text[]")
	}
	if f.Actor != "" {
		w.add("actor = ", f.Actor, "")
	}
	switch n := len(f.Action); {
	case n > 0 && f.Action[n-1] == '.':
		w.add("starts_with(action, ", f.Action, ")")
	case n > 0:
		w.add("action = ", f.Action, "")
	}
	if !f.Since.IsZero() {
		w.add("at >= ", f.Since, "")
	}
	if !f.Until.IsZero() {
		w.add("at < ", f.Until, "")
	}
	q := "SELECT " + auditColumns + " FROM audit_events" + w.sql() + " ORDER BY seq"
	if f.Limit > 0 {
		q += " LIMIT " + w.param(f.Limit)
	}
	if !s.enter() {
		return nil, fmt.Errorf("postgres: audit events: %w", errClosed)
	}
	defer s.leave()
	rows, err := s.pool.Query(ctx, q, w.args...)
	if err != nil {
		return nil, wrap(ctx, "audit events", err)
	}
	defer rows.Close()
	for rows.Next() {
		var e iomt.AuditEvent
		var seq int64
		var status int32
		var detail []byte
		if err := rows.Scan(&seq, &e.Time, &e.Tenant, &e.Actor, &e.ActorName, &e.Action, &e.Outcome, &status, &e.Patients,
			&e.Resource, &e.Source, &e.Reason, &e.Purpose, &detail, &e.Prev, &e.Hash); err != nil {
			return nil, wrap(ctx, "audit events", err)
		}
		e.Seq, e.Status, e.Time = uint64(seq), int(status), e.Time.UTC()
		if detail != nil {
			if err := json.Unmarshal(detail, &e.Detail); err != nil {
				return nil, fmt.Errorf("postgres: audit events: %w", &iomt.AuditRecordError{Seq: e.Seq, Err: fmt.Errorf("detail is not an object of strings: %w", err)})
			}
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, wrap(ctx, "audit events", err)
	}
	return out, nil
}

// SaveAuditCheckpoint implements iomt.AuditStore. Saving the same checkpoint again is
// harmless.
func (s *Store) SaveAuditCheckpoint(ctx context.Context, c iomt.AuditCheckpoint) error {
	if err := ctxErr(ctx, "save audit checkpoint"); err != nil {
		return err
	}
	switch {
	case c.Seq == 0 || c.Seq > math.MaxInt64:
		return fmt.Errorf("postgres: save audit checkpoint: %w: seq %d", iomt.ErrInvalid, c.Seq)
	case len(c.Hash) != 32:
		return fmt.Errorf("postgres: save audit checkpoint: %w: hash has %d bytes, want 32", iomt.ErrInvalid, len(c.Hash))
	case c.KeyID == "":
		return fmt.Errorf("postgres: save audit checkpoint: %w: no key id", iomt.ErrInvalid)
	case len(c.Signature) == 0:
		return fmt.Errorf("postgres: save audit checkpoint: %w: no signature", iomt.ErrInvalid)
	case c.Time.IsZero():
		return fmt.Errorf("postgres: save audit checkpoint: %w: no time", iomt.ErrInvalid)
	}
	if err := checkFields("key id", c.KeyID); err != nil {
		return fmt.Errorf("postgres: save audit checkpoint: %w", err)
	}
	if !s.enter() {
		return fmt.Errorf("postgres: save audit checkpoint: %w", errClosed)
	}
	defer s.leave()
	_, err := s.pool.Exec(ctx, `INSERT INTO audit_checkpoints (seq, key_id, hash, at, signature) VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (seq, key_id) DO UPDATE SET hash = EXCLUDED.hash, at = EXCLUDED.at, signature = EXCLUDED.signature`,
		int64(c.Seq), c.KeyID, c.Hash, c.Time.UTC().Truncate(time.Millisecond), c.Signature)
	if err != nil {
		return wrap(ctx, "save audit checkpoint", err)
	}
	return nil
}

// AuditCheckpoints implements iomt.AuditStore: every checkpoint, by seq.
func (s *Store) AuditCheckpoints(ctx context.Context) ([]iomt.AuditCheckpoint, error) {
	if err := ctxErr(ctx, "audit checkpoints"); err != nil {
		return nil, err
	}
	if !s.enter() {
		return nil, fmt.Errorf("postgres: audit checkpoints: %w", errClosed)
	}
	defer s.leave()
	rows, err := s.pool.Query(ctx, "SELECT seq, key_id, hash, at, signature FROM audit_checkpoints ORDER BY seq, key_id")
	if err != nil {
		return nil, wrap(ctx, "audit checkpoints", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (iomt.AuditCheckpoint, error) {
		var c iomt.AuditCheckpoint
		var seq int64
		err := r.Scan(&seq, &c.KeyID, &c.Hash, &c.Time, &c.Signature)
		c.Seq, c.Time = uint64(seq), c.Time.UTC()
		return c, err
	})
	if err != nil {
		return nil, wrap(ctx, "audit checkpoints", err)
	}
	if out == nil {
		out = []iomt.AuditCheckpoint{}
	}
	return out, nil
}
