package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	"github.com/iomt/iomt/store/postgres"
)

const migrateUsage = `Usage: iomt migrate --postgres URL

Applies the PostgreSQL schema migrations built into this binary that the database lacks, each
in its own transaction, recorded in the schema_migrations table. Several nodes may run it (or
start 'iomt serve') at once: an advisory lock makes them take turns. Running it again is
harmless.

URL is postgres://user:password@host:5432/database?sslmode=verify-full; the IOMT_POSTGRES
environment variable is used when --postgres is not given. The password is never printed.

Exit status: 0 migrated (or nothing to do), 1 failed, 2 usage.
`

// runMigrate runs `iomt migrate`.
func runMigrate(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	fs := flag.NewFlagSet("migrate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, migrateUsage) }
	url := fs.String("postgres", "", "PostgreSQL URL (default $IOMT_POSTGRES)")
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "iomt migrate: unexpected argument %q\n\n%s", fs.Arg(0), migrateUsage)
		return 2
	}
	if *url == "" {
		*url = getenv("IOMT_POSTGRES")
	}
	if *url == "" {
		fmt.Fprintf(stderr, "iomt migrate: --postgres is required\n\n%s", migrateUsage)
		return 2
	}
	if err := postgres.Migrate(ctx, *url); err != nil {
		fmt.Fprintf(stderr, "iomt migrate: %v\n", err)
		return 1
	}
	fmt.Fprintln(stdout, "iomt migrate: the schema is up to date")
	return 0
}
