package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/term"

	"github.com/iomt/iomt"
	"github.com/iomt/iomt/identity"
	"github.com/iomt/iomt/node"
)

const userUsage = `Usage: iomt user create --login L --role R[,R] [--name N] [--password-file F | --password-stdin | --no-password]
       iomt user totp --login L        (a new second factor: prints its secret and otpauth URL once)

Works on the store directly: --data-dir DIR (the embedded store; stop the node first) or
--postgres URL (IOMT_POSTGRES). The password is read from a prompt, a file or standard input,
never from the command line. Roles: admin, clinician, carer, auditor, service.
`

// userCommand manages accounts offline: the first administrator, or a recovery.
func userCommand(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) int {
	if len(args) == 0 || (args[0] != "create" && args[0] != "totp") {
		fmt.Fprint(stderr, userUsage)
		return 2
	}
	fs := flag.NewFlagSet("user "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, userUsage) }
	dataDir := fs.String("data-dir", "iomt-data", "the node's data directory (embedded store)")
	pg := fs.String("postgres", "", "PostgreSQL URL (default $IOMT_POSTGRES)")
	login := fs.String("login", "", "login name")
	name := fs.String("name", "", "display name (default: the login)")
	roles := fs.String("role", "", "roles, comma-separated")
	pwFile := fs.String("password-file", "", "read the password from this file's first line")
	pwStdin := fs.Bool("password-stdin", false, "read the password from standard input's first line")
	noPassword := fs.Bool("no-password", false, "no password: a service account or a single sign-on user")
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	fail := func(code int, err error) int { fmt.Fprintf(stderr, "iomt user %s: %v\n", args[0], err); return code }
	if *login == "" {
		return fail(2, errors.New("--login is required"))
	}
	if *pg == "" {
		*pg = getenv("IOMT_POSTGRES")
	}
	st, err := node.OpenStore(ctx, node.Config{DataDir: *dataDir, Postgres: *pg})
	if err != nil {
		return fail(1, err)
	}
	defer st.Close()
	svc, err := identity.New(identity.Config{Store: st})
	if err != nil {
		return fail(1, err)
	}
	if args[0] == "totp" {
		us, err := st.Users(ctx, iomt.UserFilter{Tenant: iomt.DefaultTenant, Login: *login, Limit: 1})
		if err != nil || len(us) == 0 {
			return fail(1, fmt.Errorf("no user %q (%v)", *login, err))
		}
		secret, url, err := svc.EnrollTOTP(ctx, us[0].ID)
		if err != nil {
			return fail(1, err)
		}
		fmt.Fprintf(stdout, "second factor of %s (shown once; add it to an authenticator app):\n  secret  %s\n  url     %s\n", *login, secret, url)
		return 0
	}
	var rs []iomt.Role
	for _, r := range splitList(*roles) {
		rs = append(rs, iomt.Role(r))
	}
	if len(rs) == 0 {
		return fail(2, errors.New("--role is required (admin, clinician, carer, auditor, service)"))
	}
	pw := ""
	if !*noPassword {
		if pw, err = readPassword(*pwFile, *pwStdin, stdin, stderr); err != nil {
			return fail(2, err)
		}
	}
	u, err := svc.CreateUser(ctx, identity.NewUser{Login: *login, Name: *name, Roles: rs, Password: pw})
	if err != nil {
		return fail(1, err)
	}
	fmt.Fprintf(stdout, "user %s created (id %s, roles %s)\n", u.Login, u.ID, strings.Trim(fmt.Sprint(u.Roles), "[]"))
	return 0
}

// readPassword reads a new password from a file, standard input, or a prompt on the
// terminal (asked twice, not echoed).
func readPassword(file string, fromStdin bool, stdin io.Reader, stderr io.Writer) (string, error) {
	switch {
	case file != "":
		return readSecret(file, "", func(string) string { return "" })
	case fromStdin:
		line, err := bufio.NewReader(stdin).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return "", fmt.Errorf("read password: %w", err)
		}
		return strings.TrimRight(line, "\r\n"), nil
	}
	f, ok := stdin.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return "", errors.New("no terminal to ask for the password on: use --password-file or --password-stdin")
	}
	fmt.Fprint(stderr, "password: ")
	a, err := term.ReadPassword(int(f.Fd()))
	fmt.Fprintln(stderr)
	if err != nil {
		return "", fmt.Errorf("read password: %w", err)
	}
	fmt.Fprint(stderr, "again: ")
	b, err := term.ReadPassword(int(f.Fd()))
	fmt.Fprintln(stderr)
	if err != nil {
		return "", fmt.Errorf("read password: %w", err)
	}
	if string(a) != string(b) {
		return "", errors.New("the passwords differ")
	}
	return string(a), nil
}
