package identity_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/iomt/iomt"
	"github.com/iomt/iomt/identity"
	"github.com/iomt/iomt/policy"
	"github.com/iomt/iomt/store/embedded"
)

type clock struct{ t time.Time }

func (c *clock) now() time.Time      { return c.t }
func (c *clock) add(d time.Duration) { c.t = c.t.Add(d) }
func newClock() *clock               { return &clock{t: time.Date(2026, 12, 8, 8, 0, 0, 0, time.UTC)} }
func signIn(login, pw string) identity.SignInRequest {
	return identity.SignInRequest{Login: login, Password: pw, Source: "192.0.2.1:5000"}
}

func newService(t *testing.T, c *clock, mfa ...iomt.Role) (*identity.Service, *embedded.Store) {
	t.Helper()
	st, err := embedded.Open(t.TempDir(), embedded.Options{NoSync: true, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	s, err := identity.New(identity.Config{Store: st, Now: c.now, MFARoles: mfa, CacheTTL: time.Nanosecond})
	if err != nil {
		t.Fatal(err)
	}
	return s, st
}

const pw = "correct horse battery"

func TestSignInSessionsAndIdleLogoff(t *testing.T) {
	ctx := context.Background()
	c := newClock()
	s, st := newService(t, c)
	u, err := s.CreateUser(ctx, identity.NewUser{Login: "Ann", Name: "Ann Nurse", Roles: []iomt.Role{iomt.RoleClinician}, Password: pw})
	if err != nil {
		t.Fatal(err)
	}
	if u.PasswordHash == "" || strings.Contains(u.PasswordHash, pw) || !strings.HasPrefix(u.PasswordHash, "$argon2id$") {
		t.Fatalf("password kept as %q", u.PasswordHash)
	}
	if _, err := s.CreateUser(ctx, identity.NewUser{Login: "short", Roles: []iomt.Role{iomt.RoleCarer}, Password: "abc"}); !errors.Is(err, iomt.ErrInvalid) {
		t.Fatalf("short password: %v", err)
	}
	in, err := s.SignIn(ctx, signIn("ann", pw)) // logins are case-insensitive
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := st.Session(ctx, in.Session.ID); got.User != u.ID || strings.Contains(got.ID, in.Token) {
		t.Fatalf("stored session %+v", got)
	}
	c.add(14 * time.Minute)
	if _, _, err := s.Authenticate(ctx, in.Token); err != nil {
		t.Fatalf("14 minutes idle: %v", err)
	}
	c.add(14 * time.Minute) // active 14 minutes ago: still in
	if _, _, err := s.Authenticate(ctx, in.Token); err != nil {
		t.Fatalf("used 14 minutes ago: %v", err)
	}
	c.add(16 * time.Minute)
	if _, _, err := s.Authenticate(ctx, in.Token); !errors.Is(err, identity.ErrExpired) {
		t.Fatalf("16 minutes idle: %v, want ErrExpired", err)
	}
	// The absolute lifetime ends a busy session too.
	in, _ = s.SignIn(ctx, signIn("ann", pw))
	for range 12 * 6 {
		c.add(10 * time.Minute)
		if _, _, err := s.Authenticate(ctx, in.Token); err != nil {
			if !errors.Is(err, identity.ErrExpired) || c.t.Sub(in.Session.Created) < 12*time.Hour {
				t.Fatalf("after %s: %v", c.t.Sub(in.Session.Created), err)
			}
			break
		}
	}
	if _, _, err := s.Authenticate(ctx, in.Token); !errors.Is(err, identity.ErrExpired) {
		t.Fatal("a session outlived its lifetime")
	}
	// Sign-out ends the session in the store, for every node.
	in, _ = s.SignIn(ctx, signIn("ann", pw))
	if err := s.SignOut(ctx, in.Token); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Session(ctx, in.Session.ID); !errors.Is(err, iomt.ErrNotFound) {
		t.Fatalf("session after sign-out: %v", err)
	}
	if _, _, err := s.Authenticate(ctx, in.Token); !errors.Is(err, identity.ErrExpired) {
		t.Fatalf("signed-out token: %v", err)
	}
}

func TestLockoutAndThrottle(t *testing.T) {
	ctx := context.Background()
	c := newClock()
	s, _ := newService(t, c)
	if _, err := s.CreateUser(ctx, identity.NewUser{Login: "bob", Roles: []iomt.Role{iomt.RoleClinician}, Password: pw}); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		_, err := s.SignIn(ctx, signIn("bob", "guess "+string(rune('a'+i))))
		if !errors.Is(err, identity.ErrBadCredentials) {
			t.Fatalf("guess %d: %v", i, err)
		}
		if i == 4 && !errors.Is(err, identity.ErrLocked) {
			t.Fatalf("fifth wrong password: %v, want the account locked", err)
		}
	}
	if _, err := s.SignIn(ctx, signIn("bob", pw)); !errors.Is(err, identity.ErrLocked) {
		t.Fatalf("right password while locked: %v", err)
	}
	c.add(16 * time.Minute)
	if _, err := s.SignIn(ctx, signIn("bob", pw)); err != nil {
		t.Fatalf("after the lockout: %v", err)
	}
	// Guessing across logins from one address is throttled; another address carries on.
	for i := range 20 {
		if _, err := s.SignIn(ctx, identity.SignInRequest{Login: "nobody" + string(rune('a'+i)), Password: "x", Source: "198.51.100.7:1"}); errors.Is(err, identity.ErrThrottled) {
			t.Fatalf("throttled after %d failures", i)
		}
	}
	if _, err := s.SignIn(ctx, identity.SignInRequest{Login: "bob", Password: pw, Source: "198.51.100.7:2"}); !errors.Is(err, identity.ErrThrottled) {
		t.Fatalf("21st attempt from the guessing address: %v, want throttled", err)
	}
	if _, err := s.SignIn(ctx, signIn("bob", pw)); err != nil {
		t.Fatalf("another address: %v", err)
	}
}

func TestTOTP(t *testing.T) {
	ctx := context.Background()
	c := newClock()
	s, st := newService(t, c, iomt.RoleAdmin)
	admin, err := s.CreateUser(ctx, identity.NewUser{Login: "root", Roles: []iomt.Role{iomt.RoleAdmin}, Password: pw})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.SignIn(ctx, signIn("root", pw)); !errors.Is(err, identity.ErrMFASetup) {
		t.Fatalf("admin without a second factor: %v", err)
	}
	secret, url, err := s.EnrollTOTP(ctx, admin.ID)
	if err != nil || !strings.HasPrefix(url, "otpauth://totp/") {
		t.Fatalf("enroll: %q %v", url, err)
	}
	if _, err := s.SignIn(ctx, signIn("root", pw)); !errors.Is(err, identity.ErrCodeRequired) {
		t.Fatalf("no code: %v", err)
	}
	code, _ := identity.TOTPCode(secret, c.t)
	req := signIn("root", pw)
	req.Code = code
	if _, err := s.SignIn(ctx, req); err != nil {
		t.Fatalf("right code: %v", err)
	}
	if _, err := s.SignIn(ctx, req); !errors.Is(err, identity.ErrBadCode) {
		t.Fatalf("the same code again: %v, want refused", err)
	}
	// Another node (or this one after a restart) refuses it too: the store remembers it.
	other, err := identity.New(identity.Config{Store: st, Now: c.now, MFARoles: []iomt.Role{iomt.RoleAdmin}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := other.SignIn(ctx, req); !errors.Is(err, identity.ErrBadCode) {
		t.Fatalf("the same code on another node: %v, want refused", err)
	}
	c.add(30 * time.Second)
	req.Code, _ = identity.TOTPCode(secret, c.t.Add(-10*time.Minute))
	if _, err := s.SignIn(ctx, req); !errors.Is(err, identity.ErrBadCode) {
		t.Fatalf("an old code: %v", err)
	}
}

func TestAPITokens(t *testing.T) {
	ctx := context.Background()
	c := newClock()
	s, _ := newService(t, c)
	svc, _ := s.CreateUser(ctx, identity.NewUser{Login: "ehr-bridge", Roles: []iomt.Role{iomt.RoleService}})
	nurse, _ := s.CreateUser(ctx, identity.NewUser{Login: "nurse", Roles: []iomt.Role{iomt.RoleClinician}, Password: pw})
	if _, _, err := s.IssueToken(ctx, nurse.ID, "x", []string{"system/Observation.rs"}, time.Hour); !errors.Is(err, iomt.ErrInvalid) {
		t.Fatalf("token for a person: %v", err)
	}
	if _, _, err := s.IssueToken(ctx, svc.ID, "x", []string{"system/Observation.xyz"}, time.Hour); !errors.Is(err, iomt.ErrInvalid) {
		t.Fatalf("bad scope: %v", err)
	}
	secret, tok, err := s.IssueToken(ctx, svc.ID, "EHR bridge", []string{"system/Observation.rs"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	p, err := s.AuthenticateToken(ctx, secret)
	if err != nil || p.Kind != policy.KindToken || p.TokenID != tok.ID || len(p.Scopes) != 1 || p.Scopes[0].Resource != "Observation" {
		t.Fatalf("principal %+v, %v", p, err)
	}
	if _, err := s.AuthenticateToken(ctx, secret+"x"); !errors.Is(err, identity.ErrBadToken) {
		t.Fatalf("altered secret: %v", err)
	}
	if _, err := s.RevokeToken(ctx, tok.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AuthenticateToken(ctx, secret); !errors.Is(err, identity.ErrBadToken) {
		t.Fatalf("revoked token: %v", err)
	}
	secret, _, _ = s.IssueToken(ctx, svc.ID, "short", []string{"system/Observation.rs"}, time.Minute)
	c.add(2 * time.Minute)
	if _, err := s.AuthenticateToken(ctx, secret); !errors.Is(err, identity.ErrBadToken) {
		t.Fatalf("expired token: %v", err)
	}
}

func TestPasswordHash(t *testing.T) {
	h, err := identity.HashPassword(pw)
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := identity.VerifyPassword(h, pw); !ok || err != nil {
		t.Fatalf("verify: %v %v", ok, err)
	}
	if ok, _ := identity.VerifyPassword(h, pw+"!"); ok {
		t.Fatal("a wrong password verified")
	}
	for _, bad := range []string{"", "$argon2id$v=19$m=1,t=1$x$y", "$bcrypt$...", "$argon2id$v=19$m=99999999,t=1,p=1$AAAA$AAAA"} {
		if _, err := identity.VerifyPassword(bad, pw); err == nil {
			t.Errorf("hash %q accepted", bad)
		}
	}
}

func BenchmarkVerifyPassword(b *testing.B) {
	h, _ := identity.HashPassword(pw)
	for b.Loop() {
		_, _ = identity.VerifyPassword(h, pw)
	}
}

// BenchmarkAuthenticate measures what every request of a signed-in browser costs before the
// policy: the session and user as this node cached them (no store round trip within CacheTTL).
func BenchmarkAuthenticate(b *testing.B) {
	ctx := context.Background()
	st, err := embedded.Open(b.TempDir(), embedded.Options{NoSync: true, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	s, err := identity.New(identity.Config{Store: st})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := s.CreateUser(ctx, identity.NewUser{Login: "ann", Roles: []iomt.Role{iomt.RoleClinician}, Password: pw}); err != nil {
		b.Fatal(err)
	}
	in, err := s.SignIn(ctx, signIn("ann", pw))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := s.Authenticate(ctx, in.Token); err != nil {
			b.Fatal(err)
		}
	}
}

// Single sign-on keeps team memberships in line with the provider's groups: it adds the user
// to the teams they name and takes them out once the groups stop naming them, but never out
// of a team an admin put them in.
func TestSyncExternalTeams(t *testing.T) {
	ctx := context.Background()
	s, st := newService(t, newClock())
	for _, id := range []string{"ward-3", "ward-4", "icu"} {
		if err := st.SaveCareTeam(ctx, iomt.CareTeam{ID: id, Tenant: iomt.DefaultTenant, Name: id}); err != nil {
			t.Fatal(err)
		}
	}
	ext := identity.External{Issuer: "https://idp", Subject: "s1", Login: "olu", Roles: []iomt.Role{iomt.RoleClinician}, Teams: []string{"ward-3", "ward-4"}}
	u, err := s.SyncExternal(ctx, ext)
	if err != nil {
		t.Fatal(err)
	}
	// An admin also puts the user in the ICU team by hand.
	icu, _ := st.CareTeams(ctx, iomt.CareTeamFilter{Tenant: iomt.DefaultTenant})
	for _, tm := range icu {
		if tm.ID == "icu" {
			tm.Members = append(tm.Members, u.ID)
			if err := st.SaveCareTeam(ctx, tm); err != nil {
				t.Fatal(err)
			}
		}
	}
	teamsOf := func() []string {
		ts, err := st.CareTeams(ctx, iomt.CareTeamFilter{Member: u.ID})
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, tm := range ts {
			out = append(out, tm.ID)
		}
		return out
	}
	if got := teamsOf(); strings.Join(got, ",") != "icu,ward-3,ward-4" {
		t.Fatalf("teams after the first sign-on: %v", got)
	}
	ext.Teams = []string{"ward-4"} // moved off ward 3 at the provider
	if _, err := s.SyncExternal(ctx, ext); err != nil {
		t.Fatal(err)
	}
	if got := teamsOf(); strings.Join(got, ",") != "icu,ward-4" {
		t.Fatalf("teams after leaving ward 3's group: %v, want icu (by hand) and ward-4", got)
	}
	ext.Teams = nil
	if _, err := s.SyncExternal(ctx, ext); err != nil {
		t.Fatal(err)
	}
	if got := teamsOf(); strings.Join(got, ",") != "icu" {
		t.Fatalf("teams with no groups: %v, want only the one given by hand", got)
	}
}
