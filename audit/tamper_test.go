package audit_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/iomt/iomt"
	"github.com/iomt/iomt/audit"
	"github.com/iomt/iomt/audit/audittest"
	"github.com/iomt/iomt/store/embedded"
	"github.com/iomt/iomt/store/postgres"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

var t0 = time.Date(2026, 11, 2, 8, 0, 0, 0, time.UTC)

// event is the i-th record of a test trail.
func event(i int) iomt.AuditEvent {
	e := iomt.AuditEvent{Time: t0.Add(time.Duration(i) * time.Second), Actor: fmt.Sprintf("user:u%d", i%3), ActorName: "Dr Who",
		Action: "patient.read", Outcome: iomt.OutcomeSuccess, Status: 200, Patients: []string{fmt.Sprintf("p%d", i%5)},
		Resource: "/api/v1/patients", Source: "192.0.2.1:4000"}
	if i%7 == 0 {
		e.Action, e.Outcome, e.Status, e.Reason = "session.signin", iomt.OutcomeDenied, 401, "bad password"
	}
	return e
}

// buildTrail records n records one after the other with checkpoints every 20 (and at Close).
func buildTrail(t *testing.T, store iomt.AuditStore, signer *audit.Signer, n int) {
	t.Helper()
	r := audit.NewRecorder(store, audit.Options{Signer: signer, CheckpointEvery: 20, Logger: quiet, Node: "node-1"})
	for i := range n {
		if err := r.Record(context.Background(), event(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func newKey(t testing.TB) ed25519.PrivateKey {
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// trailStore is a store under test and a way to tamper with it.
type trailStore struct {
	open    func() iomt.AuditStore // the store, opened (again, for embedded, after tampering)
	closeFn func()                 // closes it before tampering (embedded)
	tamper  audittest.Tamperer
}

func embeddedTrail(t *testing.T) *trailStore {
	dir := t.TempDir()
	var s *embedded.Store
	ts := &trailStore{tamper: audittest.Pebble{Dir: dir}}
	ts.open = func() iomt.AuditStore {
		var err error
		if s, err = embedded.Open(dir, embedded.Options{Logger: quiet}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	ts.closeFn = func() {
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	return ts
}

// testDB creates a fresh database on the server named by IOMT_TEST_POSTGRES and drops it when
// the test ends.
func testDB(t testing.TB) string {
	t.Helper()
	admin := os.Getenv("IOMT_TEST_POSTGRES")
	if admin == "" {
		t.Skip("IOMT_TEST_POSTGRES is not set: set it to a PostgreSQL URL whose user may create databases, e.g. postgres://postgres@localhost:5432/postgres?sslmode=disable")
	}
	u, err := url.Parse(admin)
	if err != nil {
		t.Fatal("IOMT_TEST_POSTGRES is not a URL")
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "iomt_test_audit_" + hex.EncodeToString(b[:])
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		t.Fatalf("connecting to IOMT_TEST_POSTGRES: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatal(err)
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

func postgresTrail(t *testing.T) *trailStore {
	s, err := postgres.Open(context.Background(), testDB(t), postgres.Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return &trailStore{open: func() iomt.AuditStore { return s }, closeFn: func() {}, tamper: audittest.SQL{Pool: s.Pool()}}
}

// The tamper test: on a trail of 50 records with signed checkpoints, an edited byte,
// a deleted record, an inserted one and two swapped each make Verify fail and name the first
// bad record, on both stores; the untouched trail verifies.
func TestTamper(t *testing.T) {
	key := newKey(t)
	trusted := []ed25519.PublicKey{key.Public().(ed25519.PublicKey)}
	forged := iomt.AuditEvent{Time: t0.Add(25 * time.Second), Tenant: iomt.DefaultTenant, Actor: "user:u1", Action: "patient.read",
		Outcome: iomt.OutcomeSuccess, Patients: []string{"p9"}}
	cases := []struct {
		name   string
		tamper func(ctx context.Context, tm audittest.Tamperer) error
		seq    uint64
		kind   string
		says   string
	}{
		{"untouched", func(context.Context, audittest.Tamperer) error { return nil }, 0, "", ""},
		{"edit one byte", func(ctx context.Context, tm audittest.Tamperer) error { return tm.EditByte(ctx, 17) }, 17, audit.ProblemEdited, "edited"},
		{"delete", func(ctx context.Context, tm audittest.Tamperer) error { return tm.Delete(ctx, 25) }, 25, audit.ProblemDeleted, "record 25 is missing"},
		{"insert", func(ctx context.Context, tm audittest.Tamperer) error { return tm.Insert(ctx, 26, forged) }, 26, audit.ProblemInserted, "inserted"},
		{"swap", func(ctx context.Context, tm audittest.Tamperer) error { return tm.Swap(ctx, 10, 11) }, 10, audit.ProblemReordered, "out of order"},
		{"delete the last", func(ctx context.Context, tm audittest.Tamperer) error { return tm.Delete(ctx, 50) }, 50, audit.ProblemTruncated, "removed"},
	}
	for _, backend := range []struct {
		name string
		new  func(t *testing.T) *trailStore
	}{{"embedded", embeddedTrail}, {"postgres", postgresTrail}} {
		t.Run(backend.name, func(t *testing.T) {
			for _, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					ctx := context.Background()
					ts := backend.new(t)
					buildTrail(t, ts.open(), audit.NewSigner(key), 50)
					ts.closeFn()
					if err := tc.tamper(ctx, ts.tamper); err != nil {
						t.Fatal(err)
					}
					rep, err := audit.Verify(ctx, ts.open(), trusted)
					if err != nil {
						t.Fatal(err)
					}
					if tc.seq == 0 {
						if !rep.OK() || rep.Records != 50 || rep.LastSeq != 50 || rep.Checkpoints != 3 || rep.LastCheckpoint == nil || rep.LastCheckpoint.Seq != 50 {
							t.Fatalf("untouched trail: %+v, problem %v", rep, rep.Problem)
						}
						return
					}
					p := rep.Problem
					if p == nil {
						t.Fatalf("not detected: %+v", rep)
					}
					if p.Seq != tc.seq || p.Kind != tc.kind || !strings.Contains(p.Reason, tc.says) {
						t.Fatalf("problem %q at %d: %s; want %q at %d saying %q", p.Kind, p.Seq, p.Reason, tc.kind, tc.seq, tc.says)
					}
					if rep.Records != tc.seq-1 || rep.LastSeq != tc.seq-1 {
						t.Errorf("%d records reported good, last %d; want %d", rep.Records, rep.LastSeq, tc.seq-1)
					}
					t.Logf("%s", p)
				})
			}
		})
	}
}

// A forger who recomputes every hash after an edit keeps the chain consistent; the signed
// checkpoint after the edit tells, and names the records since the previous checkpoint.
func TestTamperRewrittenChain(t *testing.T) {
	ctx := context.Background()
	key := newKey(t)
	ts := embeddedTrail(t)
	buildTrail(t, ts.open(), audit.NewSigner(key), 50)
	ts.closeFn()
	p := ts.tamper.(audittest.Pebble)
	if err := p.Rewrite(ctx, 27, func(e *iomt.AuditEvent) { e.Actor = "user:mallory" }); err != nil {
		t.Fatal(err)
	}
	rep, err := audit.Verify(ctx, ts.open(), []ed25519.PublicKey{key.Public().(ed25519.PublicKey)})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Problem == nil || rep.Problem.Kind != audit.ProblemRewritten || rep.Problem.Seq != 21 || !strings.Contains(rep.Problem.Reason, "records 21 to 40") {
		t.Fatalf("rewritten chain: %+v %v", rep, rep.Problem)
	}
	if rep.Checkpoints != 1 || rep.LastCheckpoint.Seq != 20 {
		t.Errorf("checkpoints verified: %d, last %+v", rep.Checkpoints, rep.LastCheckpoint)
	}
}

// Bytes that no longer decode are named by the store, and Verify reports that record.
func TestTamperUnreadable(t *testing.T) {
	ctx := context.Background()
	key := newKey(t)
	ts := embeddedTrail(t)
	buildTrail(t, ts.open(), audit.NewSigner(key), 30)
	ts.closeFn()
	if err := ts.tamper.(audittest.Pebble).Corrupt(ctx, 12); err != nil {
		t.Fatal(err)
	}
	rep, err := audit.Verify(ctx, ts.open(), []ed25519.PublicKey{key.Public().(ed25519.PublicKey)})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Problem == nil || rep.Problem.Seq != 12 || rep.Problem.Kind != audit.ProblemUnreadable {
		t.Fatalf("corrupt record: %+v %v", rep, rep.Problem)
	}
}

// Checkpoints: a forged signature, a key the verifier does not trust, and a checkpoint past
// the end of the trail are each a problem; with the right key the trail verifies.
func TestCheckpointProblems(t *testing.T) {
	ctx := context.Background()
	key, other := newKey(t), newKey(t)
	pub := func(k ed25519.PrivateKey) ed25519.PublicKey { return k.Public().(ed25519.PublicKey) }
	s, err := embedded.Open(t.TempDir(), embedded.Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	buildTrail(t, s, audit.NewSigner(key), 45)

	rep, err := audit.Verify(ctx, s, []ed25519.PublicKey{pub(other)})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Problem == nil || rep.Problem.Kind != audit.ProblemCheckpoint || rep.Problem.Seq != 20 || !strings.Contains(rep.Problem.Reason, "not among the trusted") {
		t.Fatalf("unknown key: %v", rep.Problem)
	}
	rep, err = audit.Verify(ctx, s, []ed25519.PublicKey{pub(other), pub(key)})
	if err != nil || !rep.OK() || rep.Checkpoints != 3 {
		t.Fatalf("with both keys: %+v %v %v", rep, rep.Problem, err)
	}

	cps, _ := s.AuditCheckpoints(ctx)
	bad := cps[1]
	bad.Signature = append([]byte(nil), bad.Signature...)
	bad.Signature[0] ^= 1
	if err := s.SaveAuditCheckpoint(ctx, bad); err != nil {
		t.Fatal(err)
	}
	rep, _ = audit.Verify(ctx, s, []ed25519.PublicKey{pub(key)})
	if rep.Problem == nil || rep.Problem.Kind != audit.ProblemCheckpoint || rep.Problem.Seq != 40 || !strings.Contains(rep.Problem.Reason, "bad signature") {
		t.Fatalf("bad signature: %v", rep.Problem)
	}
	if err := s.SaveAuditCheckpoint(ctx, cps[1]); err != nil { // restored
		t.Fatal(err)
	}
	// A checkpoint signed by the other key over a record that does not exist: a truncation,
	// once that key is trusted.
	if err := s.SaveAuditCheckpoint(ctx, audit.NewSigner(other).Sign(60, cps[2].Hash, t0)); err != nil {
		t.Fatal(err)
	}
	rep, _ = audit.Verify(ctx, s, []ed25519.PublicKey{pub(key), pub(other)})
	if rep.Problem == nil || rep.Problem.Kind != audit.ProblemTruncated || rep.Problem.Seq != 46 || !strings.Contains(rep.Problem.Reason, "records 46 to 60 were removed") {
		t.Fatalf("checkpoint past the end: %v", rep.Problem)
	}
}
