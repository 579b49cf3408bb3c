package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
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

var auditT0 = time.Date(2026, 11, 2, 8, 0, 0, 0, time.UTC)

// auditTrail writes 50 records to the embedded store of data directory dir, signed with the
// node's key (dir/audit.key, created), as a node would, and closes the store.
func auditTrail(t *testing.T, dir string) {
	t.Helper()
	s, err := embedded.Open(filepath.Join(dir, "store"), embedded.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	signer, err := audit.LoadSigner(filepath.Join(dir, audit.KeyFile))
	if err != nil {
		t.Fatal(err)
	}
	r := audit.NewRecorder(s, audit.Options{Signer: signer, CheckpointEvery: 20, Logger: slog.New(slog.DiscardHandler)})
	for i := range 50 {
		e := iomt.AuditEvent{Time: auditT0.Add(time.Duration(i) * time.Minute), Actor: fmt.Sprintf("user:u%d", i%3), Action: "patient.read",
			Outcome: iomt.OutcomeSuccess, Patients: []string{fmt.Sprintf("p%d", i%5)}}
		if err := r.Record(context.Background(), e); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

func runIomt(args []string, env map[string]string) (int, string, string) {
	var out, errOut bytes.Buffer
	code := run(context.Background(), args, &out, &errOut, func(k string) string { return env[k] })
	return code, out.String(), errOut.String()
}

// `iomt audit verify` on an embedded data directory: OK on the trail as written, and after
// each tampering the issue names — one byte edited, a record deleted, one inserted, two
// swapped — exit status 1 and the first bad record named.
func TestAuditVerifyCommand(t *testing.T) {
	forged := iomt.AuditEvent{Time: auditT0.Add(25 * time.Minute), Tenant: iomt.DefaultTenant, Actor: "user:u1", Action: "patient.read", Outcome: iomt.OutcomeSuccess}
	for _, tc := range []struct {
		name   string
		tamper func(audittest.Tamperer) error
		want   string
	}{
		{"untouched", func(audittest.Tamperer) error { return nil }, ""},
		{"edit", func(tm audittest.Tamperer) error { return tm.EditByte(context.Background(), 17) }, "FAILED at record 17 (edited)"},
		{"delete", func(tm audittest.Tamperer) error { return tm.Delete(context.Background(), 25) }, "FAILED at record 25 (deleted)"},
		{"insert", func(tm audittest.Tamperer) error { return tm.Insert(context.Background(), 26, forged) }, "FAILED at record 26 (inserted)"},
		{"swap", func(tm audittest.Tamperer) error { return tm.Swap(context.Background(), 10, 11) }, "FAILED at record 10 (reordered)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			auditTrail(t, dir)
			if err := tc.tamper(audittest.Pebble{Dir: filepath.Join(dir, "store")}); err != nil {
				t.Fatal(err)
			}
			code, out, errOut := runIomt([]string{"audit", "verify", "--data-dir", dir}, nil)
			if tc.want == "" {
				if code != 0 || !strings.Contains(out, "OK: 50 records") || !strings.Contains(out, "3 signed checkpoints; the last at record 50") {
					t.Fatalf("exit %d\n%s%s", code, out, errOut)
				}
				return
			}
			if code != 1 || !strings.Contains(out, tc.want) {
				t.Fatalf("exit %d, want 1 and %q:\n%s%s", code, tc.want, out, errOut)
			}
			t.Log(strings.TrimSpace(out))
		})
	}
}

// The key is found from the environment's data directory; a wrong --pubkey makes the
// checkpoints untrusted; usage errors exit 2 with the reason.
func TestAuditVerifyCommandKeysAndUsage(t *testing.T) {
	dir := t.TempDir()
	auditTrail(t, dir)
	if code, out, errOut := runIomt([]string{"audit", "verify"}, map[string]string{"IOMT_DATA_DIR": dir}); code != 0 {
		t.Fatalf("IOMT_DATA_DIR: exit %d\n%s%s", code, out, errOut)
	}
	other := filepath.Join(t.TempDir(), "other.key")
	if _, err := audit.LoadKey(other); err != nil {
		t.Fatal(err)
	}
	code, out, _ := runIomt([]string{"audit", "verify", "--data-dir", dir, "--pubkey", audit.PublicKeyPath(other)}, nil)
	if code != 1 || !strings.Contains(out, "(checkpoint)") || !strings.Contains(out, "not among the trusted public keys") {
		t.Fatalf("untrusted key: exit %d\n%s", code, out)
	}
	if code, out, _ := runIomt([]string{"audit", "verify", "--data-dir", dir, "--pubkey", audit.PublicKeyPath(other), "--pubkey", filepath.Join(dir, audit.PublicKeyFile)}, nil); code != 0 {
		t.Fatalf("both keys: exit %d\n%s", code, out)
	}
	for _, tc := range []struct {
		args []string
		code int
		says string
	}{
		{[]string{"audit"}, 2, "Usage"},
		{[]string{"audit", "check"}, 2, `unknown subcommand "check"`},
		{[]string{"audit", "verify", "extra"}, 2, `unexpected argument "extra"`},
		{[]string{"audit", "verify", "--data-dir", t.TempDir()}, 1, "no embedded store"},
		{[]string{"audit", "export", "--data-dir", dir, "--since", "yesterday"}, 2, `"yesterday" is not a time`},
		{[]string{"audit", "verify", "--data-dir", dir, "--pubkey", "/nonexistent.pub"}, 1, "no such file"},
	} {
		code, out, errOut := runIomt(tc.args, nil)
		if code != tc.code || !strings.Contains(out+errOut, tc.says) {
			t.Errorf("%v: exit %d, want %d and %q:\n%s%s", tc.args, code, tc.code, tc.says, out, errOut)
		}
	}
}

// `iomt audit export` writes the selected records as JSON lines that keep seq and hash.
func TestAuditExportCommand(t *testing.T) {
	dir := t.TempDir()
	auditTrail(t, dir)
	code, out, errOut := runIomt([]string{"audit", "export", "--data-dir", dir, "--patient", "p2", "--since", "2026-11-02T08:20:00Z"}, nil)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var seqs []uint64
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var e iomt.AuditEvent
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		if len(e.Hash) != 32 || e.Patients[0] != "p2" || e.Time.Before(auditT0.Add(20*time.Minute)) {
			t.Fatalf("exported %+v", e)
		}
		seqs = append(seqs, e.Seq)
	}
	if fmt.Sprint(seqs) != "[23 28 33 38 43 48]" {
		t.Fatalf("exported records %v", seqs)
	}
	file := filepath.Join(t.TempDir(), "trail.jsonl")
	if code, _, errOut := runIomt([]string{"audit", "export", "--data-dir", dir, "--out", file}, nil); code != 0 || !strings.Contains(errOut, "50 records") {
		t.Fatalf("export to a file: exit %d %s", code, errOut)
	}
	fi, err := os.Stat(file)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("export file: %v %v", fi.Mode(), err)
	}
	b, _ := os.ReadFile(file)
	if n := bytes.Count(b, []byte("\n")); n != 50 {
		t.Fatalf("%d lines in the export", n)
	}
}

// pgTestDB creates a fresh database on IOMT_TEST_POSTGRES, dropped when the test ends.
func pgTestDB(t *testing.T) string {
	t.Helper()
	admin := os.Getenv("IOMT_TEST_POSTGRES")
	if admin == "" {
		t.Skip("IOMT_TEST_POSTGRES is not set: set it to a PostgreSQL URL whose user may create databases")
	}
	u, err := url.Parse(admin)
	if err != nil {
		t.Fatal("IOMT_TEST_POSTGRES is not a URL")
	}
	name := fmt.Sprintf("iomt_test_cmd_audit_%d", time.Now().UnixNano())
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if conn, err := pgx.Connect(ctx, admin); err == nil {
			_, _ = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
			conn.Close(ctx)
		}
	})
	u.Path = "/" + name
	return u.String()
}

// `iomt audit verify --postgres` (or IOMT_POSTGRES) reads the cluster's trail, with the key
// from the data directory; a row deleted by SQL is named.
func TestAuditVerifyCommandPostgres(t *testing.T) {
	dbURL := pgTestDB(t)
	dir := t.TempDir()
	s, err := postgres.Open(context.Background(), dbURL, postgres.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	signer, err := audit.LoadSigner(filepath.Join(dir, audit.KeyFile))
	if err != nil {
		t.Fatal(err)
	}
	r := audit.NewRecorder(s, audit.Options{Signer: signer, CheckpointEvery: 20, Logger: slog.New(slog.DiscardHandler)})
	for i := range 30 {
		if err := r.Record(context.Background(), iomt.AuditEvent{Actor: "user:u1", Action: "patient.read", Outcome: iomt.OutcomeSuccess, Patients: []string{"p1"}}); err != nil {
			t.Fatal(i, err)
		}
	}
	if err := r.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if code, out, errOut := runIomt([]string{"audit", "verify", "--data-dir", dir}, map[string]string{"IOMT_POSTGRES": dbURL}); code != 0 || !strings.Contains(out, "OK: 30 records") {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	if err := (audittest.SQL{Pool: s.Pool()}).Delete(context.Background(), 12); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runIomt([]string{"audit", "verify", "--data-dir", dir, "--postgres", dbURL}, nil)
	if code != 1 || !strings.Contains(out, "FAILED at record 12 (deleted)") {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	if strings.Contains(out+errOut, dbURL) {
		t.Errorf("the database URL was printed")
	}
}
