package iomt

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// Audit outcomes (FHIR AuditEvent.outcome: 0 success, 4 minor failure, 8 serious failure).
const (
	OutcomeSuccess = "success"
	OutcomeDenied  = "denied" // refused by authentication or policy
	OutcomeFailure = "failure"
)

// AuditEvent is one record of the audit trail: who did what to which patients, from where,
// with what outcome and why. Records are chained: Hash covers the record's content and the
// Hash of the record before it (Prev), so an edit, deletion, insertion or reordering breaks
// the chain at the first record touched.
type AuditEvent struct {
	Seq    uint64    `json:"seq"` // 1, 2, ... per trail, assigned by the store
	Time   time.Time `json:"time"`
	Tenant string    `json:"tenant"`
	// Actor is "user:<id>", "device:<id>", "token:<id>", "node:<id>" or "anonymous"; ActorName
	// the login or display name when known.
	Actor     string `json:"actor"`
	ActorName string `json:"actorName,omitempty"`
	// Action names what was done: patient.read, observation.read, stream.open, stream.close,
	// user.create, session.signin, breakglass.open, device.credentials.rotate, ...
	Action   string   `json:"action"`
	Outcome  string   `json:"outcome"`          // OutcomeSuccess, OutcomeDenied, OutcomeFailure
	Status   int      `json:"status,omitempty"` // HTTP status, when the request was HTTP
	Patients []string `json:"patients,omitempty"`
	// Resource is what was touched besides patients: a path, "device/<id>", "user/<id>".
	Resource string `json:"resource,omitempty"`
	Source   string `json:"source,omitempty"` // network address of the caller
	Reason   string `json:"reason,omitempty"` // stated by the actor (break-the-glass) or why refused
	// Purpose is the purpose of use (HL7 v3 PurposeOfUse): ETREAT for an emergency override.
	Purpose string            `json:"purpose,omitempty"`
	Detail  map[string]string `json:"detail,omitempty"`
	Prev    []byte            `json:"prev"` // Hash of record Seq-1; 32 zero bytes before the first
	Hash    []byte            `json:"hash"`
}

// auditContent is the part of an AuditEvent the chain hash covers, in a fixed order.
type auditContent struct {
	Seq       uint64            `json:"seq"`
	Time      int64             `json:"time"` // Unix milliseconds
	Tenant    string            `json:"tenant"`
	Actor     string            `json:"actor"`
	ActorName string            `json:"actorName"`
	Action    string            `json:"action"`
	Outcome   string            `json:"outcome"`
	Status    int               `json:"status"`
	Patients  []string          `json:"patients"`
	Resource  string            `json:"resource"`
	Source    string            `json:"source"`
	Reason    string            `json:"reason"`
	Purpose   string            `json:"purpose"`
	Detail    map[string]string `json:"detail"` // encoding/json sorts map keys
}

// ChainHash is the hash the record must carry given the hash of the record before it:
// SHA-256 over prev and the canonical JSON of its content (Prev and Hash excluded, time at
// millisecond precision). Every store and the verifier use this one function.
func (e AuditEvent) ChainHash(prev []byte) []byte {
	b, err := json.Marshal(auditContent{e.Seq, e.Time.UnixMilli(), e.Tenant, e.Actor, e.ActorName, e.Action, e.Outcome,
		e.Status, e.Patients, e.Resource, e.Source, e.Reason, e.Purpose, e.Detail})
	if err != nil {
		// Strings, ints and a map of strings always marshal.
		panic(fmt.Sprintf("audit: marshal content: %v", err))
	}
	h := sha256.New()
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(prev)))
	h.Write(n[:])
	h.Write(prev)
	h.Write(b)
	return h.Sum(nil)
}

// Normal is the form of e that is stored and hashed: UTC time at millisecond precision (the
// precision ChainHash covers), and no empty lists or maps (which JSON tells apart from absent
// ones, so a record read back would not hash as written). Every store keeps records in it.
func (e AuditEvent) Normal() AuditEvent {
	e.Time = e.Time.UTC().Truncate(TimePrecision)
	if len(e.Patients) == 0 {
		e.Patients = nil
	}
	if len(e.Detail) == 0 {
		e.Detail = nil
	}
	return e
}

// GenesisHash is the Prev of the first record of a trail.
func GenesisHash() []byte { return make([]byte, sha256.Size) }

// AuditCheckpoint is a signed statement that the trail held Seq records ending in Hash: an
// Ed25519 signature by the node's audit key over CheckpointMessage. With it, even a rewrite
// of the whole chain from the start is detected, and a truncation back past it.
type AuditCheckpoint struct {
	Seq       uint64    `json:"seq"`
	Hash      []byte    `json:"hash"`
	Time      time.Time `json:"time"`
	KeyID     string    `json:"keyId"` // hex SHA-256 of the public key, first 16 characters
	Signature []byte    `json:"signature"`
}

// CheckpointMessage is what a checkpoint's signature covers.
func (c AuditCheckpoint) CheckpointMessage() []byte {
	return fmt.Appendf(nil, "iomt-audit-checkpoint\nseq=%d\nhash=%x\ntime=%d\n", c.Seq, c.Hash, c.Time.UnixMilli())
}

// AuditFilter selects audit records; zero fields match everything. Records come in Seq
// order.
type AuditFilter struct {
	Tenant  string
	Patient string // records naming this patient
	Actor   string
	Action  string // exact, or a prefix ending in "." (such as "patient.")
	Since   time.Time
	Until   time.Time // before
	// AfterSeq keeps records with Seq greater than it (paging, verification).
	AfterSeq uint64
	Limit    int
}

// AuditStore keeps the audit trail, one for the whole deployment (every node of a cluster
// appends to the same chain).
type AuditStore interface {
	// AppendAudit assigns each event the next Seq, its Prev and its Hash (ChainHash), stores
	// them durably in that order, and returns them as stored. Appends from many goroutines or
	// nodes are serialised so the chain stays one line.
	AppendAudit(ctx context.Context, events []AuditEvent) ([]AuditEvent, error)
	AuditEvents(ctx context.Context, f AuditFilter) ([]AuditEvent, error)
	SaveAuditCheckpoint(ctx context.Context, c AuditCheckpoint) error
	AuditCheckpoints(ctx context.Context) ([]AuditCheckpoint, error)
}

// CheckAuditEvent refuses what no store can keep faithfully: a record without a time, an
// actor or an action, an outcome other than the three, and text that is not valid UTF-8 or
// holds a NUL byte (PostgreSQL refuses both; JSON would silently rewrite the first).
func CheckAuditEvent(e AuditEvent) error {
	switch {
	case e.Time.IsZero():
		return fmt.Errorf("%w: audit record has no time", ErrInvalid)
	case e.Actor == "":
		return fmt.Errorf("%w: audit record has no actor", ErrInvalid)
	case e.Action == "":
		return fmt.Errorf("%w: audit record has no action", ErrInvalid)
	case e.Outcome != OutcomeSuccess && e.Outcome != OutcomeDenied && e.Outcome != OutcomeFailure:
		return fmt.Errorf("%w: audit outcome %q (want %s, %s or %s)", ErrInvalid, e.Outcome, OutcomeSuccess, OutcomeDenied, OutcomeFailure)
	case e.Time.Year() < 1 || e.Time.Year() > 9999:
		return fmt.Errorf("%w: audit time %v out of range (years 1 to 9999)", ErrInvalid, e.Time)
	}
	check := func(what, v string) error {
		if !utf8.ValidString(v) {
			return fmt.Errorf("%w: audit %s is not valid UTF-8", ErrInvalid, what)
		}
		if strings.IndexByte(v, 0) >= 0 {
			return fmt.Errorf("%w: audit %s contains a NUL byte", ErrInvalid, what)
		}
		return nil
	}
	for _, f := range [...]struct{ what, v string }{{"tenant", e.Tenant}, {"actor", e.Actor}, {"actor name", e.ActorName},
		{"action", e.Action}, {"resource", e.Resource}, {"source", e.Source}, {"reason", e.Reason}, {"purpose", e.Purpose}} {
		if err := check(f.what, f.v); err != nil {
			return err
		}
	}
	for _, p := range e.Patients {
		if p == "" {
			return fmt.Errorf("%w: audit record names an empty patient id", ErrInvalid)
		}
		if err := check("patient", p); err != nil {
			return err
		}
	}
	for k, v := range e.Detail {
		if err := check("detail key", k); err != nil {
			return err
		}
		if err := check("detail "+k, v); err != nil {
			return err
		}
	}
	return nil
}

// AuditRecordError is what an AuditStore returns when a stored record cannot be read back
// (its bytes were damaged or edited into something undecodable), so that the verifier can
// name the record.
type AuditRecordError struct {
	Seq uint64
	Err error
}

func (e *AuditRecordError) Error() string { return fmt.Sprintf("audit record %d: %v", e.Seq, e.Err) }
func (e *AuditRecordError) Unwrap() error { return e.Err }
