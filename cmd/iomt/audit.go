package main

import (
	"context"
	"crypto/ed25519"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/iomt/iomt"
	"github.com/iomt/iomt/audit"
	"github.com/iomt/iomt/store/embedded"
	"github.com/iomt/iomt/store/postgres"
)

const auditUsage = `Usage: iomt audit verify [flags]
       iomt audit export [flags]

verify walks the whole audit trail: it recomputes every record's hash and link, checks the
signed checkpoints against the nodes' public keys and that each is in the chain, and prints OK
with the number of records and the last checkpoint, or the first bad record and what is wrong
with it (edited, deleted, inserted, reordered, rewritten, truncated). Exit status 1 if the
trail is not intact.

export writes the records as JSON lines (seq, time, actor, action, outcome, patients, ...,
prev and hash) to standard output or --out, in order, filtered by the flags.

The trail is read from the embedded store in --data-dir (stop the node first: it holds the
directory) or from PostgreSQL with --postgres (IOMT_POSTGRES; IOMT_DATA_DIR for --data-dir).
verify trusts the public keys given by --pubkey (repeatable: one per node of a cluster), by
default DATA-DIR/audit.pub, written by the node beside its signing key audit.key.

Flags of verify: --data-dir, --postgres, --pubkey FILE
Flags of export: --data-dir, --postgres, --patient ID, --actor ACTOR (user:ID, device:ID, ...),
  --action A (exact, or a prefix ending in '.' such as patient.), --since T, --until T
  (RFC 3339, YYYY-MM-DD or YYYY-MM-DDThh:mm in UTC, or a duration back from now such as 24h),
  --limit N, --out FILE

Exit status: 0 OK, 1 the trail is not intact or cannot be read, 2 usage.
`

// auditCommand runs `iomt audit`.
func auditCommand(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stdout, auditUsage)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	switch args[0] {
	case "verify":
		return auditVerify(ctx, args[1:], stdout, stderr, getenv)
	case "export":
		return auditExport(ctx, args[1:], stdout, stderr, getenv)
	}
	fmt.Fprintf(stderr, "iomt audit: unknown subcommand %q (verify or export)\n\n%s", args[0], auditUsage)
	return 2
}

// trailFlags are the flags that say where the trail is.
type trailFlags struct {
	dataDir  *string
	postgres *string
}

func addTrailFlags(flags *flag.FlagSet) trailFlags {
	return trailFlags{
		dataDir:  flags.String("data-dir", "iomt-data", "the node's data directory (embedded store in DATA-DIR/store, audit.pub)"),
		postgres: flags.String("postgres", "", "PostgreSQL URL: read the trail there instead of the data directory"),
	}
}

// resolve fills the flags not given from the environment.
func (f trailFlags) resolve(flags *flag.FlagSet, getenv func(string) string) {
	given := map[string]bool{}
	flags.Visit(func(fl *flag.Flag) { given[fl.Name] = true })
	if v := getenv("IOMT_DATA_DIR"); v != "" && !given["data-dir"] {
		*f.dataDir = v
	}
	if v := getenv("IOMT_POSTGRES"); v != "" && !given["postgres"] {
		*f.postgres = v
	}
}

// open opens the store holding the trail; the caller closes it.
func (f trailFlags) open(ctx context.Context, log *slog.Logger) (iomt.AuditStore, func() error, error) {
	if *f.postgres != "" {
		s, err := postgres.Open(ctx, *f.postgres, postgres.Options{Logger: log})
		if err != nil {
			return nil, nil, err
		}
		return s, s.Close, nil
	}
	dir := filepath.Join(*f.dataDir, "store")
	if _, err := os.Stat(dir); err != nil {
		return nil, nil, fmt.Errorf("no embedded store in %s (%v): give the node's --data-dir, or --postgres", *f.dataDir, err)
	}
	s, err := embedded.Open(dir, embedded.Options{Logger: log})
	if err != nil {
		return nil, nil, fmt.Errorf("%w (a running node holds its data directory: stop it, or verify a copy)", err)
	}
	return s, s.Close, nil
}

// pubkeyFlags collects repeated --pubkey flags.
type pubkeyFlags []string

func (p *pubkeyFlags) String() string     { return strings.Join(*p, ",") }
func (p *pubkeyFlags) Set(v string) error { *p = append(*p, v); return nil }

func auditVerify(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	flags := flag.NewFlagSet("audit verify", flag.ContinueOnError)
	flags.SetOutput(stderr)
	flags.Usage = func() { fmt.Fprint(stderr, auditUsage) }
	where := addTrailFlags(flags)
	var pubs pubkeyFlags
	flags.Var(&pubs, "pubkey", "public key file (PEM) of a node whose checkpoints to trust; repeatable (default DATA-DIR/audit.pub)")
	if code, ok := parseAuditFlags(flags, args, stderr); !ok {
		return code
	}
	where.resolve(flags, getenv)
	if len(pubs) == 0 {
		def := filepath.Join(*where.dataDir, audit.PublicKeyFile)
		if _, err := os.Stat(def); err == nil {
			pubs = append(pubs, def)
		} else if !errors.Is(err, fs.ErrNotExist) {
			fmt.Fprintf(stderr, "iomt audit verify: %v\n", err)
			return 1
		}
	}
	var keys []ed25519.PublicKey
	for _, p := range pubs {
		k, err := audit.ReadPublicKey(p)
		if err != nil {
			fmt.Fprintf(stderr, "iomt audit verify: %v\n", err)
			return 1
		}
		keys = append(keys, k)
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	store, closeStore, err := where.open(ctx, log)
	if err != nil {
		fmt.Fprintf(stderr, "iomt audit verify: %v\n", err)
		return 1
	}
	defer closeStore()
	rep, err := audit.Verify(ctx, store, keys)
	if err != nil {
		fmt.Fprintf(stderr, "iomt audit verify: %v\n", err)
		return 1
	}
	if p := rep.Problem; p != nil {
		fmt.Fprintf(stdout, "iomt audit verify: FAILED at record %d (%s): %s\n", p.Seq, p.Kind, p.Reason)
		fmt.Fprintf(stdout, "  %d records before it verified", rep.Records)
		if c := rep.LastCheckpoint; c != nil {
			fmt.Fprintf(stdout, ", %s matched, the last at record %d", checkpoints(rep.Checkpoints), c.Seq)
		}
		fmt.Fprintln(stdout)
		return 1
	}
	fmt.Fprintf(stdout, "iomt audit verify: OK: %d records", rep.Records)
	if rep.Records > 0 {
		fmt.Fprintf(stdout, ", the last %d (hash %x)", rep.LastSeq, rep.LastHash[:8])
	}
	fmt.Fprintln(stdout)
	if c := rep.LastCheckpoint; c != nil {
		fmt.Fprintf(stdout, "  %s; the last at record %d, signed %s by key %s\n", checkpoints(rep.Checkpoints), c.Seq, c.Time.UTC().Format(time.RFC3339), c.KeyID)
		if c.Seq < rep.LastSeq {
			fmt.Fprintf(stdout, "  records %d to %d come after the last checkpoint: the chain alone protects them\n", c.Seq+1, rep.LastSeq)
		}
	} else if rep.Records > 0 {
		fmt.Fprintln(stdout, "  no signed checkpoints: a rewrite of the whole trail with recomputed hashes would not be detected")
	}
	return 0
}

func checkpoints(n int) string {
	if n == 1 {
		return "1 signed checkpoint"
	}
	return fmt.Sprintf("%d signed checkpoints", n)
}

func parseAuditFlags(flags *flag.FlagSet, args []string, stderr io.Writer) (int, bool) {
	if err := flags.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0, false
		}
		return 2, false
	}
	if flags.NArg() > 0 {
		fmt.Fprintf(stderr, "iomt %s: unexpected argument %q\n", flags.Name(), flags.Arg(0))
		return 2, false
	}
	return 0, true
}

func auditExport(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	flags := flag.NewFlagSet("audit export", flag.ContinueOnError)
	flags.SetOutput(stderr)
	flags.Usage = func() { fmt.Fprint(stderr, auditUsage) }
	where := addTrailFlags(flags)
	patient := flags.String("patient", "", "only records naming this patient")
	actor := flags.String("actor", "", "only records by this actor (user:ID, device:ID, token:ID, ...)")
	action := flags.String("action", "", "only this action, or actions under a prefix ending in '.' (patient.)")
	since := flags.String("since", "", "only records at or after this time (RFC 3339, YYYY-MM-DD, or a duration back from now: 24h)")
	until := flags.String("until", "", "only records before this time (as --since)")
	limit := flags.Int("limit", 0, "at most this many records (0: all)")
	out := flags.String("out", "", "write to this file instead of standard output")
	if code, ok := parseAuditFlags(flags, args, stderr); !ok {
		return code
	}
	where.resolve(flags, getenv)
	f := iomt.AuditFilter{Patient: *patient, Actor: *actor, Action: *action, Limit: *limit}
	now := time.Now()
	var err error
	if f.Since, err = parseWhen(*since, now); err != nil {
		fmt.Fprintf(stderr, "iomt audit export: --since: %v\n", err)
		return 2
	}
	if f.Until, err = parseWhen(*until, now); err != nil {
		fmt.Fprintf(stderr, "iomt audit export: --until: %v\n", err)
		return 2
	}
	if *limit < 0 {
		fmt.Fprintf(stderr, "iomt audit export: --limit must not be negative\n")
		return 2
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	store, closeStore, err := where.open(ctx, log)
	if err != nil {
		fmt.Fprintf(stderr, "iomt audit export: %v\n", err)
		return 1
	}
	defer closeStore()
	w := stdout
	var file *os.File
	if *out != "" {
		// The export holds patient identifiers: readable by the owner only.
		if file, err = os.OpenFile(*out, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600); err != nil {
			fmt.Fprintf(stderr, "iomt audit export: %v\n", err)
			return 1
		}
		w = file
	}
	n, err := audit.Export(ctx, store, f, w)
	if file != nil {
		err = errors.Join(err, file.Close())
	}
	if err != nil {
		fmt.Fprintf(stderr, "iomt audit export: %v\n", err)
		return 1
	}
	if file != nil {
		fmt.Fprintf(stderr, "iomt audit export: %d records to %s\n", n, *out)
	}
	return 0
}

// parseWhen reads a time flag: RFC 3339, a date or a minute in UTC, or a duration back from
// now. "" is the zero time.
func parseWhen(v string, now time.Time) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04", time.DateOnly} {
		if t, err := time.Parse(layout, v); err == nil {
			return t.UTC(), nil
		}
	}
	if d, err := time.ParseDuration(v); err == nil && d > 0 {
		return now.Add(-d).UTC(), nil
	}
	return time.Time{}, fmt.Errorf("%q is not a time (2026-11-02T08:00:00Z, 2026-11-02, 2026-11-02T08:00) or a duration back from now (24h)", v)
}
