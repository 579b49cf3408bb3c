// Package audittest tampers with stored audit trails the way someone with access to the data
// would — raw Pebble writes to an embedded store's directory, SQL on PostgreSQL — so that
// tests can check that audit.Verify and `iomt audit verify` catch it.
package audittest

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/cockroachdb/pebble/v2"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/iomt/iomt"
)

// Tamperer changes a stored trail behind the store's back.
type Tamperer interface {
	// EditByte changes one byte of record seq's stored content (the action's first letter).
	EditByte(ctx context.Context, seq uint64) error
	// Delete removes record seq.
	Delete(ctx context.Context, seq uint64) error
	// Insert puts a forged record, correctly chained to record seq-1, at seq, and moves
	// records seq and after one place up.
	Insert(ctx context.Context, seq uint64, e iomt.AuditEvent) error
	// Swap exchanges records a and b, each keeping the other's place.
	Swap(ctx context.Context, a, b uint64) error
}

// Forge returns e as it would be stored at seq after prev: what a forger who knows the chain
// function computes.
func Forge(e iomt.AuditEvent, seq uint64, prev []byte) iomt.AuditEvent {
	e.Seq, e.Prev = seq, prev
	e.Hash = e.ChainHash(prev)
	return e
}

// Pebble tampers with the embedded store in dir (the directory given to embedded.Open),
// which must be closed. It writes Pebble's keys directly (see store/embedded/audit.go).
type Pebble struct{ Dir string }

type silent struct{}

func (silent) Infof(string, ...any)  {}
func (silent) Errorf(string, ...any) {}
func (silent) Fatalf(format string, args ...any) {
	panic(fmt.Sprintf("audittest: pebble: "+format, args...))
}

func recordKey(seq uint64) []byte { return binary.BigEndian.AppendUint64([]byte{0x02, 'r'}, seq) }

func (p Pebble) with(fn func(db *pebble.DB) error) error {
	db, err := pebble.Open(filepath.Join(p.Dir, "pebble"), &pebble.Options{Logger: silent{}})
	if err != nil {
		return fmt.Errorf("audittest: open pebble: %w", err)
	}
	return errors.Join(fn(db), db.Close())
}

func get(db *pebble.DB, key []byte) ([]byte, error) {
	v, closer, err := db.Get(key)
	if err != nil {
		return nil, fmt.Errorf("audittest: get %x: %w", key, err)
	}
	defer closer.Close()
	return append([]byte(nil), v...), nil
}

// EditByte implements Tamperer.
func (p Pebble) EditByte(_ context.Context, seq uint64) error {
	return p.with(func(db *pebble.DB) error {
		v, err := get(db, recordKey(seq))
		if err != nil {
			return err
		}
		i := strings.Index(string(v), `"action":"`)
		if i < 0 {
			return fmt.Errorf("audittest: record %d has no action: %s", seq, v)
		}
		v[i+len(`"action":"`)] ^= 0x20 // p → P: still valid JSON
		return db.Set(recordKey(seq), v, pebble.Sync)
	})
}

// Delete implements Tamperer.
func (p Pebble) Delete(_ context.Context, seq uint64) error {
	return p.with(func(db *pebble.DB) error { return db.Delete(recordKey(seq), pebble.Sync) })
}

// Insert implements Tamperer. The forged record's value is encoded as the store encodes
// one: the record's JSON without seq.
func (p Pebble) Insert(_ context.Context, seq uint64, e iomt.AuditEvent) error {
	return p.with(func(db *pebble.DB) error {
		prevVal, err := get(db, recordKey(seq-1))
		if err != nil {
			return err
		}
		var prev struct{ Hash []byte }
		if err := json.Unmarshal(prevVal, &prev); err != nil {
			return err
		}
		var last uint64
		it, err := db.NewIter(&pebble.IterOptions{LowerBound: []byte{0x02, 'r'}, UpperBound: []byte{0x02, 's'}})
		if err != nil {
			return err
		}
		if it.Last() {
			last = binary.BigEndian.Uint64(it.Key()[2:])
		}
		if err := it.Close(); err != nil {
			return err
		}
		b := db.NewBatch()
		for s := last; s >= seq; s-- {
			v, err := get(db, recordKey(s))
			if err != nil {
				return err
			}
			_ = b.Set(recordKey(s+1), v, nil)
		}
		f := Forge(e, seq, prev.Hash)
		m, err := json.Marshal(f)
		if err != nil {
			return err
		}
		var obj map[string]any
		_ = json.Unmarshal(m, &obj)
		delete(obj, "seq")
		m, _ = json.Marshal(obj)
		_ = b.Set(recordKey(seq), m, nil)
		return b.Commit(pebble.Sync)
	})
}

// Swap implements Tamperer.
func (p Pebble) Swap(_ context.Context, a, b uint64) error {
	return p.with(func(db *pebble.DB) error {
		va, err := get(db, recordKey(a))
		if err != nil {
			return err
		}
		vb, err := get(db, recordKey(b))
		if err != nil {
			return err
		}
		bt := db.NewBatch()
		_ = bt.Set(recordKey(a), vb, nil)
		_ = bt.Set(recordKey(b), va, nil)
		return bt.Commit(pebble.Sync)
	})
}

// SQL tampers with the audit_events table of a PostgreSQL store.
type SQL struct{ Pool *pgxpool.Pool }

// EditByte implements Tamperer.
func (s SQL) EditByte(ctx context.Context, seq uint64) error {
	return s.exec(ctx, "UPDATE audit_events SET action = upper(left(action, 1)) || substr(action, 2) WHERE seq = $1", int64(seq))
}

// Delete implements Tamperer.
func (s SQL) Delete(ctx context.Context, seq uint64) error {
	return s.exec(ctx, "DELETE FROM audit_events WHERE seq = $1", int64(seq))
}

// Insert implements Tamperer.
func (s SQL) Insert(ctx context.Context, seq uint64, e iomt.AuditEvent) error {
	var prev []byte
	if err := s.Pool.QueryRow(ctx, "SELECT hash FROM audit_events WHERE seq = $1", int64(seq-1)).Scan(&prev); err != nil {
		return fmt.Errorf("audittest: %w", err)
	}
	f := Forge(e, seq, prev)
	// Two steps: seq is the primary key, checked row by row.
	if err := s.exec(ctx, "UPDATE audit_events SET seq = -(seq + 1) WHERE seq >= $1", int64(seq)); err != nil {
		return err
	}
	if err := s.exec(ctx, "UPDATE audit_events SET seq = -seq WHERE seq < 0"); err != nil {
		return err
	}
	return s.exec(ctx, `INSERT INTO audit_events (seq, at, tenant, actor, actor_name, action, outcome, status, patients, resource, source, reason, purpose, detail, prev, hash)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, NULL, $14, $15)`,
		int64(f.Seq), f.Time, f.Tenant, f.Actor, f.ActorName, f.Action, f.Outcome, f.Status, f.Patients, f.Resource, f.Source, f.Reason, f.Purpose, f.Prev, f.Hash)
}

// Swap implements Tamperer.
func (s SQL) Swap(ctx context.Context, a, b uint64) error {
	if err := s.exec(ctx, "UPDATE audit_events SET seq = -1 WHERE seq = $1", int64(a)); err != nil {
		return err
	}
	if err := s.exec(ctx, "UPDATE audit_events SET seq = $1 WHERE seq = $2", int64(a), int64(b)); err != nil {
		return err
	}
	return s.exec(ctx, "UPDATE audit_events SET seq = $1 WHERE seq = -1", int64(b))
}

func (s SQL) exec(ctx context.Context, q string, args ...any) error {
	if _, err := s.Pool.Exec(ctx, q, args...); err != nil {
		return fmt.Errorf("audittest: %s: %w", q, err)
	}
	return nil
}

// Rewrite applies change to record from and recomputes the hash of every record from there
// on, as a forger who knows the chain function would: the chain stays consistent, and only a
// signed checkpoint tells.
func (p Pebble) Rewrite(_ context.Context, from uint64, change func(e *iomt.AuditEvent)) error {
	return p.with(func(db *pebble.DB) error {
		prevVal, err := get(db, recordKey(from-1))
		if err != nil && from > 1 {
			return err
		}
		prev := iomt.GenesisHash()
		if from > 1 {
			var r struct{ Hash []byte }
			if err := json.Unmarshal(prevVal, &r); err != nil {
				return err
			}
			prev = r.Hash
		}
		it, err := db.NewIter(&pebble.IterOptions{LowerBound: recordKey(from), UpperBound: []byte{0x02, 's'}})
		if err != nil {
			return err
		}
		b := db.NewBatch()
		for it.First(); it.Valid(); it.Next() {
			seq := binary.BigEndian.Uint64(it.Key()[2:])
			var obj map[string]any
			if err := json.Unmarshal(it.Value(), &obj); err != nil {
				return errors.Join(err, it.Close())
			}
			obj["seq"] = seq
			m, _ := json.Marshal(obj)
			var e iomt.AuditEvent
			if err := json.Unmarshal(m, &e); err != nil {
				return errors.Join(err, it.Close())
			}
			if seq == from {
				change(&e)
			}
			e = Forge(e, seq, prev)
			prev = e.Hash
			m, _ = json.Marshal(e)
			obj = nil
			_ = json.Unmarshal(m, &obj)
			delete(obj, "seq")
			m, _ = json.Marshal(obj)
			_ = b.Set(recordKey(seq), m, nil)
		}
		if err := it.Close(); err != nil {
			return err
		}
		return b.Commit(pebble.Sync)
	})
}

// Corrupt overwrites the first byte of record seq's stored value, so that it no longer
// decodes.
func (p Pebble) Corrupt(_ context.Context, seq uint64) error {
	return p.with(func(db *pebble.DB) error {
		v, err := get(db, recordKey(seq))
		if err != nil {
			return err
		}
		v[0] = 'X'
		return db.Set(recordKey(seq), v, pebble.Sync)
	})
}
