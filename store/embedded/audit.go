package embedded

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/iomt/iomt"
)

// The audit trail lives under its own first byte, 0x02, so that it can never share a prefix
// with the registry's one-letter keys:
//
//	\x01 "audithead"                 Seq (uint64 BE) and Hash of the last record appended
//	\x02 'r' seq                     audit record (JSON of storedAudit: the record without Seq)
//	\x02 'p' patient 0 seq           index: the record names the patient
//	\x02 'a' actor 0 seq             index: the record's actor
//	\x02 'k' seq keyID               signed checkpoint (JSON of iomt.AuditCheckpoint)
//
// Seq is kept in the key only, so a record's position is stated once: moving a record's bytes
// to another key changes the Seq its hash is checked against.
var keyAuditHead = []byte("\x01audithead")

const (
	auditPrefix     = 0x02
	auditRecord     = 'r'
	auditByPatient  = 'p'
	auditByActor    = 'a'
	auditCheckpoint = 'k'
)

// storedAudit is an AuditEvent as stored: everything but Seq, which the key holds.
type storedAudit struct {
	Time      time.Time         `json:"time"`
	Tenant    string            `json:"tenant"`
	Actor     string            `json:"actor"`
	ActorName string            `json:"actorName,omitempty"`
	Action    string            `json:"action"`
	Outcome   string            `json:"outcome"`
	Status    int               `json:"status,omitempty"`
	Patients  []string          `json:"patients,omitempty"`
	Resource  string            `json:"resource,omitempty"`
	Source    string            `json:"source,omitempty"`
	Reason    string            `json:"reason,omitempty"`
	Purpose   string            `json:"purpose,omitempty"`
	Detail    map[string]string `json:"detail,omitempty"`
	Prev      []byte            `json:"prev"`
	Hash      []byte            `json:"hash"`
}

func auditRecordKey(seq uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte{auditPrefix, auditRecord}, seq)
}

// auditIndexKey is prefix kind, value, 0, seq.
func auditIndexKey(kind byte, v string, seq uint64) []byte {
	k := make([]byte, 0, 2+len(v)+1+8)
	k = append(k, auditPrefix, kind)
	k = append(k, v...)
	k = append(k, 0)
	return binary.BigEndian.AppendUint64(k, seq)
}

func auditCheckpointKey(c iomt.AuditCheckpoint) []byte {
	k := binary.BigEndian.AppendUint64([]byte{auditPrefix, auditCheckpoint}, c.Seq)
	return append(k, c.KeyID...)
}

// AppendAudit implements iomt.AuditStore. Appends are serialised by auditMu; each is one
// Pebble batch (records, indexes and the new head) committed with a sync, so a trail read
// after a crash ends at or after the last append that returned.
func (s *Store) AppendAudit(ctx context.Context, events []iomt.AuditEvent) ([]iomt.AuditEvent, error) {
	if err := ctxErr(ctx, "append audit"); err != nil {
		return nil, err
	}
	for i, e := range events {
		if err := iomt.CheckAuditEvent(e); err != nil {
			return nil, fmt.Errorf("embedded: append audit: record %d of %d: %w", i+1, len(events), err)
		}
	}
	if len(events) == 0 {
		return []iomt.AuditEvent{}, nil
	}
	if !s.enter() {
		return nil, fmt.Errorf("embedded: append audit: %w", errClosed)
	}
	defer s.leave()
	b := s.db.NewBatch()
	defer b.Close()
	s.auditMu.Lock()
	if !s.auditLoaded {
		if err := s.loadAuditHead(); err != nil {
			s.auditMu.Unlock()
			return nil, fmt.Errorf("embedded: append audit: %w", err)
		}
		s.auditLoaded = true
	}
	seq, prev := s.auditSeq, s.auditHash
	out := make([]iomt.AuditEvent, len(events))
	var patients []string
	for i, e := range events {
		e = e.Normal()
		seq++
		e.Seq, e.Prev = seq, prev
		e.Hash = e.ChainHash(prev)
		prev = e.Hash
		v, err := json.Marshal(storedAudit{e.Time, e.Tenant, e.Actor, e.ActorName, e.Action, e.Outcome, e.Status,
			e.Patients, e.Resource, e.Source, e.Reason, e.Purpose, e.Detail, e.Prev, e.Hash})
		if err != nil {
			s.auditMu.Unlock()
			return nil, fmt.Errorf("embedded: append audit: encode: %w", err)
		}
		_ = b.Set(auditRecordKey(seq), v, nil)
		_ = b.Set(auditIndexKey(auditByActor, e.Actor, seq), nil, nil)
		patients = append(patients[:0], e.Patients...)
		slices.Sort(patients)
		for _, p := range slices.Compact(patients) {
			_ = b.Set(auditIndexKey(auditByPatient, p, seq), nil, nil)
		}
		out[i] = e
	}
	_ = b.Set(keyAuditHead, append(u64(seq), prev...), nil)
	// Applied in the lock, in chain order; the fsync is waited for outside it, so the next
	// append is applied meanwhile and Pebble syncs both at once. The WAL is written in
	// order, so no record becomes durable without those before it: a crash cannot leave a
	// gap.
	if err := s.db.ApplyNoSyncWait(b, pebble.Sync); err != nil {
		s.auditMu.Unlock()
		return nil, fmt.Errorf("embedded: append audit: %w", err)
	}
	s.auditSeq, s.auditHash = seq, prev
	s.auditMu.Unlock()
	if err := b.SyncWait(); err != nil {
		return nil, fmt.Errorf("embedded: append audit: %w", err)
	}
	return out, nil
}

// loadAuditHead reads where the chain ends. Without a head key the last record says (a head
// key lost to tampering must not make the next append overwrite record 1).
func (s *Store) loadAuditHead() error {
	v, closer, err := s.db.Get(keyAuditHead)
	switch {
	case err == nil:
		defer closer.Close()
		if len(v) != 8+32 {
			return fmt.Errorf("corrupt audit head (%d bytes)", len(v))
		}
		s.auditSeq, s.auditHash = binary.BigEndian.Uint64(v), bytes.Clone(v[8:])
		return nil
	case !errors.Is(err, pebble.ErrNotFound):
		return fmt.Errorf("read audit head: %w", err)
	}
	s.auditSeq, s.auditHash = 0, iomt.GenesisHash()
	lo := []byte{auditPrefix, auditRecord}
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: prefixEnd(lo)})
	if err != nil {
		return err
	}
	defer it.Close()
	if !it.Last() {
		return it.Error()
	}
	seq := binary.BigEndian.Uint64(it.Key()[2:])
	val, err := it.ValueAndErr()
	if err != nil {
		return err
	}
	var r storedAudit
	if err := json.Unmarshal(val, &r); err != nil || len(r.Hash) == 0 {
		return fmt.Errorf("audit head missing and last record %d unreadable: repair by hand", seq)
	}
	s.auditSeq, s.auditHash = seq, r.Hash
	return nil
}

// AuditEvents implements iomt.AuditStore. A patient or actor filter walks that index; other
// filters scan the records from AfterSeq on.
func (s *Store) AuditEvents(ctx context.Context, f iomt.AuditFilter) ([]iomt.AuditEvent, error) {
	if err := ctxErr(ctx, "audit events"); err != nil {
		return nil, err
	}
	if !s.enter() {
		return nil, fmt.Errorf("embedded: audit events: %w", errClosed)
	}
	defer s.leave()
	out := []iomt.AuditEvent{}
	if f.AfterSeq == ^uint64(0) {
		return out, nil
	}
	var it *pebble.Iterator
	var err error
	index := byte(0)
	switch {
	case f.Patient != "":
		index = auditByPatient
		it, err = s.auditIndexIter(auditByPatient, f.Patient, f.AfterSeq)
	case f.Actor != "":
		index = auditByActor
		it, err = s.auditIndexIter(auditByActor, f.Actor, f.AfterSeq)
	default:
		lo := []byte{auditPrefix, auditRecord}
		it, err = s.db.NewIter(&pebble.IterOptions{LowerBound: auditRecordKey(f.AfterSeq + 1), UpperBound: prefixEnd(lo)})
	}
	if err != nil {
		return nil, fmt.Errorf("embedded: audit events: %w", err)
	}
	defer it.Close()
	for valid := it.First(); valid; valid = it.Next() {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("embedded: audit events: %w", err)
		}
		k := it.Key()
		seq := binary.BigEndian.Uint64(k[len(k)-8:])
		var val []byte
		if index == 0 {
			if val, err = it.ValueAndErr(); err != nil {
				return nil, fmt.Errorf("embedded: audit events: %w", err)
			}
		} else {
			v, closer, err := s.db.Get(auditRecordKey(seq))
			if errors.Is(err, pebble.ErrNotFound) {
				continue // an index entry of a record that is gone: the verifier reports the gap
			}
			if err != nil {
				return nil, fmt.Errorf("embedded: audit events: %w", err)
			}
			val = bytes.Clone(v)
			closer.Close()
		}
		var r storedAudit
		if err := json.Unmarshal(val, &r); err != nil {
			return nil, fmt.Errorf("embedded: audit events: %w", &iomt.AuditRecordError{Seq: seq, Err: fmt.Errorf("undecodable: %w", err)})
		}
		e := iomt.AuditEvent{Seq: seq, Time: r.Time.UTC(), Tenant: r.Tenant, Actor: r.Actor, ActorName: r.ActorName, Action: r.Action,
			Outcome: r.Outcome, Status: r.Status, Patients: r.Patients, Resource: r.Resource, Source: r.Source, Reason: r.Reason,
			Purpose: r.Purpose, Detail: r.Detail, Prev: r.Prev, Hash: r.Hash}
		if !matchAudit(f, &e) {
			continue
		}
		out = append(out, e)
		if f.Limit > 0 && len(out) >= f.Limit {
			break
		}
	}
	if err := it.Error(); err != nil {
		return nil, fmt.Errorf("embedded: audit events: %w", err)
	}
	return out, nil
}

func (s *Store) auditIndexIter(kind byte, v string, after uint64) (*pebble.Iterator, error) {
	if strings.IndexByte(v, 0) >= 0 {
		return nil, fmt.Errorf("%w: filter value contains a NUL byte", iomt.ErrInvalid)
	}
	prefix := append([]byte{auditPrefix, kind}, v...)
	prefix = append(prefix, 0)
	lo := auditIndexKey(kind, v, after+1)
	return s.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: prefixEnd(prefix)})
}

// matchAudit reports whether e passes every filter of f but Limit; AfterSeq included.
func matchAudit(f iomt.AuditFilter, e *iomt.AuditEvent) bool {
	return e.Seq > f.AfterSeq &&
		(f.Tenant == "" || e.Tenant == f.Tenant) &&
		(f.Patient == "" || slices.Contains(e.Patients, f.Patient)) &&
		(f.Actor == "" || e.Actor == f.Actor) &&
		(f.Action == "" || e.Action == f.Action || strings.HasSuffix(f.Action, ".") && strings.HasPrefix(e.Action, f.Action)) &&
		(f.Since.IsZero() || !e.Time.Before(f.Since)) &&
		(f.Until.IsZero() || e.Time.Before(f.Until))
}

// SaveAuditCheckpoint implements iomt.AuditStore.
func (s *Store) SaveAuditCheckpoint(ctx context.Context, c iomt.AuditCheckpoint) error {
	if err := ctxErr(ctx, "save audit checkpoint"); err != nil {
		return err
	}
	if err := checkCheckpoint(c); err != nil {
		return fmt.Errorf("embedded: save audit checkpoint: %w", err)
	}
	c.Time = c.Time.UTC().Truncate(time.Millisecond)
	v, err := json.Marshal(c)
	if err != nil {
		return fmt.Errorf("embedded: save audit checkpoint: %w", err)
	}
	if !s.enter() {
		return fmt.Errorf("embedded: save audit checkpoint: %w", errClosed)
	}
	defer s.leave()
	if err := s.db.Set(auditCheckpointKey(c), v, pebble.Sync); err != nil {
		return fmt.Errorf("embedded: save audit checkpoint: %w", err)
	}
	return nil
}

func checkCheckpoint(c iomt.AuditCheckpoint) error {
	switch {
	case c.Seq == 0:
		return fmt.Errorf("%w: checkpoint seq 0 (a checkpoint covers at least one record)", iomt.ErrInvalid)
	case len(c.Hash) != 32:
		return fmt.Errorf("%w: checkpoint hash has %d bytes, want 32", iomt.ErrInvalid, len(c.Hash))
	case c.KeyID == "" || strings.IndexByte(c.KeyID, 0) >= 0:
		return fmt.Errorf("%w: checkpoint key id %q", iomt.ErrInvalid, c.KeyID)
	case len(c.Signature) == 0:
		return fmt.Errorf("%w: checkpoint has no signature", iomt.ErrInvalid)
	case c.Time.IsZero():
		return fmt.Errorf("%w: checkpoint has no time", iomt.ErrInvalid)
	}
	return nil
}

// AuditCheckpoints implements iomt.AuditStore: every checkpoint, by Seq.
func (s *Store) AuditCheckpoints(ctx context.Context) ([]iomt.AuditCheckpoint, error) {
	if err := ctxErr(ctx, "audit checkpoints"); err != nil {
		return nil, err
	}
	if !s.enter() {
		return nil, fmt.Errorf("embedded: audit checkpoints: %w", errClosed)
	}
	defer s.leave()
	lo := []byte{auditPrefix, auditCheckpoint}
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: prefixEnd(lo)})
	if err != nil {
		return nil, fmt.Errorf("embedded: audit checkpoints: %w", err)
	}
	defer it.Close()
	out := []iomt.AuditCheckpoint{}
	for it.First(); it.Valid(); it.Next() {
		v, err := it.ValueAndErr()
		if err != nil {
			return nil, fmt.Errorf("embedded: audit checkpoints: %w", err)
		}
		var c iomt.AuditCheckpoint
		if err := json.Unmarshal(v, &c); err != nil {
			return nil, fmt.Errorf("embedded: audit checkpoints: checkpoint at %x undecodable: %w", it.Key()[2:], err)
		}
		c.Time = c.Time.UTC()
		out = append(out, c)
	}
	return out, it.Error()
}
