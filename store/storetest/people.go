package storetest

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/iomt/iomt"
)

// The identity tests (iomt.IdentityStore) and the patient location, run by Run.

func identityTests() []struct {
	name string
	fn   func(t *testing.T, s iomt.Store)
} {
	return []struct {
		name string
		fn   func(t *testing.T, s iomt.Store)
	}{
		{"Users", testUsers},
		{"UserInvalid", testUserInvalid},
		{"UpdateUser", testUpdateUser},
		{"ConcurrentCreateUser", testConcurrentCreateUser},
		{"CountFailedSignIn", testCountFailedSignIn},
		{"CareTeams", testCareTeams},
		{"Sessions", testSessions},
		{"APITokens", testAPITokens},
		{"BreakGlass", testBreakGlass},
		{"IdentityLookupInvalid", testIdentityLookupInvalid},
		{"PatientLocation", testPatientLocation},
	}
}

// User returns a valid user of tenant with a login, for tests; every field is set, secrets too.
func User(id, tenant, login string) iomt.User {
	return iomt.User{
		ID: id, Tenant: tenant, Login: login, Name: "Dr " + login,
		Roles:        []iomt.Role{iomt.RoleClinician},
		PasswordHash: "$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
		TOTPSecret:   "JBSWY3DPEHPK3PXP",
		CreatedAt:    T0,
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func wantErr(t *testing.T, err, want error, what string) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("%s: %v, want %v", what, err, want)
	}
}

func getUser(t *testing.T, s iomt.Store, id string) iomt.User {
	t.Helper()
	u, err := s.User(context.Background(), id)
	if err != nil {
		t.Fatalf("User(%q): %v", id, err)
	}
	return u
}

func userIDs(t *testing.T, s iomt.Store, f iomt.UserFilter) []string {
	t.Helper()
	us, err := s.Users(context.Background(), f)
	if err != nil {
		t.Fatalf("Users(%+v): %v", f, err)
	}
	ids := []string{}
	for _, u := range us {
		ids = append(ids, u.ID)
	}
	return ids
}

func sameIDs(t *testing.T, what string, got []string, want ...string) {
	t.Helper()
	if want == nil {
		want = []string{}
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%s: %q, want %q", what, got, want)
	}
}

// Users are kept whole (secrets included, times to the millisecond in UTC), unique by ID, by
// login within a tenant whatever its case, and by OpenID identity within a tenant; lists
// filter and come ordered by ID.
func testUsers(t *testing.T, s iomt.Store) {
	ctx := context.Background()
	ada := User("u2", "t1", "Ada")
	ada.Roles = []iomt.Role{iomt.RoleAdmin, iomt.RoleClinician}
	ada.FailedSignIns, ada.LockedUntil, ada.UpdatedAt = 2, T0.Add(time.Hour), T0.Add(time.Minute)
	ada.CreatedAt = T0.In(time.FixedZone("CET", 3600)).Add(1234567 * time.Nanosecond) // kept as UTC milliseconds
	must(t, s.CreateUser(ctx, ada))
	ada.CreatedAt = T0.Add(time.Millisecond)
	if got := getUser(t, s, "u2"); !reflect.DeepEqual(got, ada) {
		t.Fatalf("read\n%+v, want\n%+v", got, ada)
	}
	sso := User("u1", "t1", "bob")
	sso.PasswordHash, sso.TOTPSecret, sso.Issuer, sso.Subject, sso.Disabled = "", "", "https://idp.example", "sub-1", true
	must(t, s.CreateUser(ctx, sso))
	if got := getUser(t, s, "u1"); !reflect.DeepEqual(got, sso) {
		t.Fatalf("read\n%+v, want\n%+v", got, sso)
	}
	now := time.Now()
	noTime := User("u3", "t2", "ada") // the same login in another tenant
	noTime.CreatedAt = time.Time{}
	must(t, s.CreateUser(ctx, noTime))
	if got := getUser(t, s, "u3").CreatedAt; got.Location() != time.UTC || got.Sub(now) < -time.Second || got.Sub(now) > time.Minute {
		t.Fatalf("a zero CreatedAt became %v, want about %v in UTC", got, now)
	}

	for _, d := range []struct {
		what string
		u    iomt.User
	}{
		{"same ID", User("u2", "t9", "other")},
		{"same login", User("u9", "t1", "Ada")},
		{"same login in other case", User("u9", "t1", "ADA")},
		{"same OpenID identity", func() iomt.User {
			u := User("u9", "t1", "carol")
			u.Issuer, u.Subject = sso.Issuer, sso.Subject
			return u
		}()},
	} {
		wantErr(t, s.CreateUser(ctx, d.u), iomt.ErrDuplicate, d.what)
	}
	if _, err := s.User(ctx, "u9"); !errors.Is(err, iomt.ErrNotFound) {
		t.Fatalf("a refused create left a user: %v", err)
	}
	// The same subject of another issuer, or in another tenant, is another identity.
	other := User("u4", "t1", "dan")
	other.Issuer, other.Subject = "https://other.example", sso.Subject
	must(t, s.CreateUser(ctx, other))
	other2 := User("u5", "t2", "dan")
	other2.Issuer, other2.Subject = sso.Issuer, sso.Subject
	must(t, s.CreateUser(ctx, other2))

	if _, err := s.User(ctx, "nobody"); !errors.Is(err, iomt.ErrNotFound) {
		t.Fatalf("User(nobody): %v, want ErrNotFound", err)
	}
	sameIDs(t, "all", userIDs(t, s, iomt.UserFilter{}), "u1", "u2", "u3", "u4", "u5")
	sameIDs(t, "tenant t1", userIDs(t, s, iomt.UserFilter{Tenant: "t1"}), "u1", "u2", "u4")
	sameIDs(t, "tenant t1, limit 2", userIDs(t, s, iomt.UserFilter{Tenant: "t1", Limit: 2}), "u1", "u2")
	sameIDs(t, "limit 1", userIDs(t, s, iomt.UserFilter{Limit: 1}), "u1")
	sameIDs(t, "login aDA in t1", userIDs(t, s, iomt.UserFilter{Tenant: "t1", Login: "aDA"}), "u2")
	sameIDs(t, "login ada anywhere", userIDs(t, s, iomt.UserFilter{Login: "ada"}), "u2", "u3")
	sameIDs(t, "login nobody", userIDs(t, s, iomt.UserFilter{Tenant: "t1", Login: "nobody"}))
	sameIDs(t, "login ada in t3", userIDs(t, s, iomt.UserFilter{Tenant: "t3", Login: "ada"}))
	sameIDs(t, "OIDC in t1", userIDs(t, s, iomt.UserFilter{Tenant: "t1", Issuer: sso.Issuer, Subject: sso.Subject}), "u1")
	sameIDs(t, "OIDC anywhere", userIDs(t, s, iomt.UserFilter{Issuer: sso.Issuer, Subject: sso.Subject}), "u1", "u5")
	sameIDs(t, "OIDC other issuer", userIDs(t, s, iomt.UserFilter{Tenant: "t1", Issuer: "https://nope.example", Subject: sso.Subject}))
	sameIDs(t, "OIDC and login that disagree", userIDs(t, s, iomt.UserFilter{Tenant: "t1", Login: "ada", Issuer: sso.Issuer, Subject: sso.Subject}))
	us, err := s.Users(ctx, iomt.UserFilter{Tenant: "t1", Login: "ADA"})
	if err != nil || len(us) != 1 || !reflect.DeepEqual(us[0], ada) {
		t.Fatalf("Users by login: %+v, %v; want the whole user\n%+v", us, err, ada)
	}
	for _, f := range []iomt.UserFilter{{Issuer: sso.Issuer}, {Tenant: "t1", Subject: sso.Subject}} {
		if _, err := s.Users(ctx, f); !errors.Is(err, iomt.ErrInvalid) {
			t.Fatalf("Users(%+v), issuer or subject alone: %v, want ErrInvalid", f, err)
		}
	}
}

// A user CheckUser refuses is ErrInvalid and leaves nothing behind; so is a NUL byte
// anywhere (PostgreSQL cannot store one).
func testUserInvalid(t *testing.T, s iomt.Store) {
	ctx := context.Background()
	for _, c := range []struct {
		what string
		edit func(u *iomt.User)
	}{
		{"no id", func(u *iomt.User) { u.ID = "" }},
		{"no tenant", func(u *iomt.User) { u.Tenant = "" }},
		{"no login", func(u *iomt.User) { u.Login = " " }},
		{"no role", func(u *iomt.User) { u.Roles = nil }},
		{"unknown role", func(u *iomt.User) { u.Roles = []iomt.Role{"root"} }},
		{"role twice", func(u *iomt.User) { u.Roles = []iomt.Role{iomt.RoleCarer, iomt.RoleCarer} }},
		{"NUL in name", func(u *iomt.User) { u.Name = "Ada\x00" }},
		{"NUL in id", func(u *iomt.User) { u.ID = "u\x00" }},
		{"NUL in tenant", func(u *iomt.User) { u.Tenant = "t\x00" }},
		{"NUL in password hash", func(u *iomt.User) { u.PasswordHash = "$argon2id\x00" }},
		{"NUL in TOTP secret", func(u *iomt.User) { u.TOTPSecret = "\x00" }},
		{"NUL in subject", func(u *iomt.User) { u.Issuer, u.Subject = "https://idp.example", "s\x00" }},
		{"line break in login", func(u *iomt.User) { u.Login = "ada\nroot" }},
		{"invalid UTF-8 in login", func(u *iomt.User) { u.Login = "ada\xff" }},
		{"over-long name", func(u *iomt.User) { u.Name = string(make([]byte, iomt.MaxNameLen+1)) }},
		{"issuer without subject", func(u *iomt.User) { u.Issuer = "https://idp.example" }},
		{"subject without issuer", func(u *iomt.User) { u.Subject = "s" }},
		{"negative failed sign-ins", func(u *iomt.User) { u.FailedSignIns = -1 }},
		{"year 10000", func(u *iomt.User) { u.LockedUntil = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) }},
	} {
		u := User("u1", "t1", "ada")
		c.edit(&u)
		wantErr(t, s.CreateUser(ctx, u), iomt.ErrInvalid, "create, "+c.what)
	}
	sameIDs(t, "users after refused creates", userIDs(t, s, iomt.UserFilter{}))
	// The refusals reserved nothing.
	must(t, s.CreateUser(ctx, User("u1", "t1", "ada")))
}

// UpdateUser replaces everything but ID, Tenant and CreatedAt, moves the login and OpenID
// identity it holds, and refuses what CreateUser refuses without changing anything.
func testUpdateUser(t *testing.T, s iomt.Store) {
	ctx := context.Background()
	must(t, s.CreateUser(ctx, User("u1", "t1", "ada")))
	must(t, s.CreateUser(ctx, User("u2", "t1", "bob")))
	nw := iomt.User{
		ID: "u1", Tenant: "ignored", Login: "Ada.L", Name: "Ada Lovelace", Roles: []iomt.Role{iomt.RoleAuditor},
		Disabled: true, PasswordHash: "$argon2id$new", Issuer: "https://idp.example", Subject: "ada",
		FailedSignIns: 5, LockedUntil: T0.Add(15 * time.Minute), CreatedAt: T0.Add(time.Hour), UpdatedAt: T0.Add(2 * time.Hour),
	}
	must(t, s.UpdateUser(ctx, nw))
	want := nw
	want.Tenant, want.CreatedAt = "t1", T0
	if got := getUser(t, s, "u1"); !reflect.DeepEqual(got, want) {
		t.Fatalf("after update\n%+v, want\n%+v", got, want)
	}
	sameIDs(t, "new login", userIDs(t, s, iomt.UserFilter{Tenant: "t1", Login: "ada.l"}), "u1")
	sameIDs(t, "old login", userIDs(t, s, iomt.UserFilter{Tenant: "t1", Login: "ada"}))
	sameIDs(t, "tenant kept", userIDs(t, s, iomt.UserFilter{Tenant: "t1"}), "u1", "u2")
	sameIDs(t, "new OIDC identity", userIDs(t, s, iomt.UserFilter{Tenant: "t1", Issuer: "https://idp.example", Subject: "ada"}), "u1")
	// The old login is free again.
	must(t, s.CreateUser(ctx, User("u3", "t1", "ADA")))

	// The login or identity of another user of the tenant is refused, and nothing changes.
	bob := getUser(t, s, "u2")
	taken := bob
	taken.Login = "ada.L"
	wantErr(t, s.UpdateUser(ctx, taken), iomt.ErrDuplicate, "update to a taken login")
	taken = bob
	taken.Issuer, taken.Subject = "https://idp.example", "ada"
	wantErr(t, s.UpdateUser(ctx, taken), iomt.ErrDuplicate, "update to a taken OpenID identity")
	invalid := bob
	invalid.Roles = []iomt.Role{"superuser"}
	wantErr(t, s.UpdateUser(ctx, invalid), iomt.ErrInvalid, "update to an unknown role")
	invalid = bob
	invalid.Name = "B\x00b"
	wantErr(t, s.UpdateUser(ctx, invalid), iomt.ErrInvalid, "update to a NUL byte")
	if got := getUser(t, s, "u2"); !reflect.DeepEqual(got, bob) {
		t.Fatalf("refused updates changed the user:\n%+v, was\n%+v", got, bob)
	}
	wantErr(t, s.UpdateUser(ctx, User("nobody", "t1", "x")), iomt.ErrNotFound, "update of a missing user")

	// A user may change the case of its own login; a zero UpdatedAt becomes now; clearing the
	// OpenID identity frees it.
	self := getUser(t, s, "u1")
	self.Login, self.UpdatedAt, self.Issuer, self.Subject = "ADA.L", time.Time{}, "", ""
	before := time.Now()
	must(t, s.UpdateUser(ctx, self))
	got := getUser(t, s, "u1")
	if got.Login != "ADA.L" || got.UpdatedAt.Before(before.Add(-time.Second)) || got.Issuer != "" {
		t.Fatalf("after changing case and clearing: %+v", got)
	}
	other := bob
	other.Issuer, other.Subject = "https://idp.example", "ada"
	must(t, s.UpdateUser(ctx, other))
}

// Many callers creating the same login at once (in several cases): exactly one succeeds,
// the others get ErrDuplicate.
func testConcurrentCreateUser(t *testing.T, s iomt.Store) {
	ctx := context.Background()
	const n = 16
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			login := "nurse"
			if i%2 == 1 {
				login = "NURSE"
			}
			errs[i] = s.CreateUser(ctx, User(fmt.Sprintf("u%02d", i), "t1", login))
		}()
	}
	wg.Wait()
	won := 0
	for i, err := range errs {
		switch {
		case err == nil:
			won++
		case !errors.Is(err, iomt.ErrDuplicate):
			t.Errorf("caller %d: %v, want nil or ErrDuplicate", i, err)
		}
	}
	if won != 1 {
		t.Fatalf("%d of %d creates of one login succeeded, want exactly 1", won, n)
	}
	if ids := userIDs(t, s, iomt.UserFilter{Tenant: "t1"}); len(ids) != 1 {
		t.Fatalf("users after the race: %q", ids)
	}
}

func teamIDs(t *testing.T, s iomt.Store, f iomt.CareTeamFilter) []string {
	t.Helper()
	ts, err := s.CareTeams(context.Background(), f)
	if err != nil {
		t.Fatalf("CareTeams(%+v): %v", f, err)
	}
	ids := []string{}
	for _, x := range ts {
		ids = append(ids, x.ID)
	}
	return ids
}

// Care teams are created and replaced whole, found by tenant and member, and deleted.
func testCareTeams(t *testing.T, s iomt.Store) {
	ctx := context.Background()
	ward := iomt.CareTeam{ID: "c2", Tenant: "t1", Name: "Ward 3 nurses", Members: []string{"u1", "u2"},
		Patients: []string{"p9"}, Locations: []string{"north/ward-3", "home"}, SSOMembers: []string{"u2"}, UpdatedAt: T0}
	must(t, s.SaveCareTeam(ctx, ward))
	must(t, s.SaveCareTeam(ctx, iomt.CareTeam{ID: "c1", Tenant: "t1", Name: "Diabetes", Members: []string{"u2"}, UpdatedAt: T0}))
	must(t, s.SaveCareTeam(ctx, iomt.CareTeam{ID: "c3", Tenant: "t2", Members: []string{"u1"}, Patients: []string{}, UpdatedAt: T0}))
	ts, err := s.CareTeams(ctx, iomt.CareTeamFilter{Tenant: "t1"})
	if err != nil || len(ts) != 2 || !reflect.DeepEqual(ts[1], ward) {
		t.Fatalf("CareTeams(t1): %+v, %v; want c1 and\n%+v", ts, err, ward)
	}
	if ts[0].Patients != nil || ts[0].Locations != nil {
		t.Fatalf("a team without patients or locations read as %#v, %#v, want nil", ts[0].Patients, ts[0].Locations)
	}
	sameIDs(t, "all", teamIDs(t, s, iomt.CareTeamFilter{}), "c1", "c2", "c3")
	sameIDs(t, "member u1", teamIDs(t, s, iomt.CareTeamFilter{Member: "u1"}), "c2", "c3")
	sameIDs(t, "member u1 in t1", teamIDs(t, s, iomt.CareTeamFilter{Tenant: "t1", Member: "u1"}), "c2")
	sameIDs(t, "member u2", teamIDs(t, s, iomt.CareTeamFilter{Member: "u2"}), "c1", "c2")
	sameIDs(t, "member nobody", teamIDs(t, s, iomt.CareTeamFilter{Member: "nobody"}))
	sameIDs(t, "tenant t3", teamIDs(t, s, iomt.CareTeamFilter{Tenant: "t3"}))

	// Replacing: u1 leaves, u3 joins; a zero UpdatedAt becomes now.
	nw := ward
	nw.Members, nw.Locations, nw.UpdatedAt = []string{"u2", "u3"}, nil, time.Time{}
	must(t, s.SaveCareTeam(ctx, nw))
	sameIDs(t, "member u1 after replace", teamIDs(t, s, iomt.CareTeamFilter{Member: "u1"}), "c3")
	sameIDs(t, "member u3 after replace", teamIDs(t, s, iomt.CareTeamFilter{Member: "u3"}), "c2")
	ts, _ = s.CareTeams(ctx, iomt.CareTeamFilter{Member: "u3"})
	if len(ts) != 1 || ts[0].Locations != nil || ts[0].UpdatedAt.IsZero() || ts[0].UpdatedAt.Location() != time.UTC {
		t.Fatalf("replaced team: %+v", ts)
	}
	// A replace cannot move a team to another tenant.
	moved := nw
	moved.Tenant = "t2"
	wantErr(t, s.SaveCareTeam(ctx, moved), iomt.ErrDuplicate, "replace into another tenant")
	sameIDs(t, "t1 after refused move", teamIDs(t, s, iomt.CareTeamFilter{Tenant: "t1"}), "c1", "c2")

	for _, bad := range []iomt.CareTeam{
		{Tenant: "t1", Name: "no id"},
		{ID: "c9", Name: "no tenant"},
		{ID: "c9", Tenant: "t1", Name: "Ward\x00"},
		{ID: "c9", Tenant: "t1", Members: []string{""}},
		{ID: "c9", Tenant: "t1", Members: []string{"u\x00"}},
		{ID: "c9", Tenant: "t1", Patients: []string{"p\n"}},
		{ID: "c9", Tenant: "t1", Locations: []string{"/north"}},
		{ID: "c9", Tenant: "t1", Locations: []string{"north/"}},
		{ID: "c9", Tenant: "t1", Locations: []string{"north//ward"}},
		{ID: "c9", Tenant: "t1", Locations: []string{"north\x00"}},
	} {
		wantErr(t, s.SaveCareTeam(ctx, bad), iomt.ErrInvalid, fmt.Sprintf("save %+v", bad))
	}
	sameIDs(t, "after refused saves", teamIDs(t, s, iomt.CareTeamFilter{}), "c1", "c2", "c3")

	must(t, s.DeleteCareTeam(ctx, "c2"))
	sameIDs(t, "after delete", teamIDs(t, s, iomt.CareTeamFilter{}), "c1", "c3")
	sameIDs(t, "member u3 after delete", teamIDs(t, s, iomt.CareTeamFilter{Member: "u3"}))
	wantErr(t, s.DeleteCareTeam(ctx, "c2"), iomt.ErrNotFound, "delete again")
	// Deleted, the ID may be used again, even by another tenant.
	must(t, s.SaveCareTeam(ctx, iomt.CareTeam{ID: "c2", Tenant: "t2", Members: []string{"u3"}}))
	sameIDs(t, "member u3 in t2", teamIDs(t, s, iomt.CareTeamFilter{Tenant: "t2", Member: "u3"}), "c2")
}

func sessionIDs(t *testing.T, s iomt.Store, ids ...string) []string {
	t.Helper()
	out := []string{}
	for _, id := range ids {
		switch _, err := s.Session(context.Background(), id); {
		case err == nil:
			out = append(out, id)
		case !errors.Is(err, iomt.ErrNotFound):
			t.Fatalf("Session(%q): %v", id, err)
		}
	}
	return out
}

// Sessions are saved and replaced whole, read back whether or not expired, and deleted by ID,
// user and expiry, with the count of what was deleted.
func testSessions(t *testing.T, s iomt.Store) {
	ctx := context.Background()
	mk := func(id, user string, expires time.Duration) iomt.Session {
		return iomt.Session{ID: id, Tenant: "t1", User: user, CSRF: "csrf-" + id, Source: "192.0.2.7", Method: "password+totp",
			Created: T0, LastSeen: T0.Add(time.Minute), Expires: T0.Add(expires)}
	}
	all := []string{"s1", "s2", "s3", "s4", "s5"}
	for _, ss := range []iomt.Session{mk("s1", "u1", time.Hour), mk("s2", "u1", 2*time.Hour), mk("s3", "u2", time.Hour),
		mk("s4", "u2", 3*time.Hour), mk("s5", "u3", 30*time.Minute)} {
		must(t, s.SaveSession(ctx, ss))
	}
	got, err := s.Session(ctx, "s1")
	if err != nil || !reflect.DeepEqual(got, mk("s1", "u1", time.Hour)) {
		t.Fatalf("Session(s1): %+v, %v", got, err)
	}
	// Replace: a later LastSeen (and a user change, which moves the session between users).
	s2 := mk("s2", "u3", 2*time.Hour)
	s2.LastSeen = T0.Add(90 * time.Minute).Add(999 * time.Microsecond)
	must(t, s.SaveSession(ctx, s2))
	s2.LastSeen = T0.Add(90 * time.Minute)
	if got, err := s.Session(ctx, "s2"); err != nil || !reflect.DeepEqual(got, s2) {
		t.Fatalf("replaced session: %+v, %v; want %+v", got, err, s2)
	}
	moved := s2
	moved.Tenant = "t2"
	wantErr(t, s.SaveSession(ctx, moved), iomt.ErrDuplicate, "replace into another tenant")
	if _, err := s.Session(ctx, "nope"); !errors.Is(err, iomt.ErrNotFound) {
		t.Fatalf("Session(nope): %v, want ErrNotFound", err)
	}
	for _, bad := range []iomt.Session{
		{Tenant: "t1", User: "u1", Method: "password", Expires: T0},
		{ID: "s9", User: "u1", Method: "password", Expires: T0},
		{ID: "s9", Tenant: "t1", Method: "password", Expires: T0},
		{ID: "s9", Tenant: "t1", User: "u1", Expires: T0},
		{ID: "s9", Tenant: "t1", User: "u1", Method: "password"},
		{ID: "s9", Tenant: "t1", User: "u1", Method: "password", Expires: T0, CSRF: "x\x00"},
		{ID: "s9", Tenant: "t1", User: "u1", Method: "password", Expires: T0, Source: "\x00"},
	} {
		wantErr(t, s.SaveSession(ctx, bad), iomt.ErrInvalid, fmt.Sprintf("save %+v", bad))
	}
	sameIDs(t, "after refused saves", sessionIDs(t, s, append(all, "s9")...), all...)

	del := func(f iomt.SessionFilter, want int) {
		t.Helper()
		n, err := s.DeleteSessions(ctx, f)
		if err != nil || n != want {
			t.Fatalf("DeleteSessions(%+v): %d, %v; want %d", f, n, err, want)
		}
	}
	del(iomt.SessionFilter{ID: "nope"}, 0)
	del(iomt.SessionFilter{ID: "s1", User: "u2"}, 0) // every set field must match
	del(iomt.SessionFilter{User: "nobody"}, 0)
	// Expired at T0+1h: those ending at or before it (s1, s3 at 1h; s5 at 30 min).
	del(iomt.SessionFilter{User: "u2", ExpiredAt: T0.Add(time.Hour)}, 1)
	sameIDs(t, "after deleting u2's expired", sessionIDs(t, s, all...), "s1", "s2", "s4", "s5")
	del(iomt.SessionFilter{ExpiredAt: T0.Add(time.Hour - time.Millisecond)}, 1)
	sameIDs(t, "after deleting expired", sessionIDs(t, s, all...), "s1", "s2", "s4")
	del(iomt.SessionFilter{ExpiredAt: T0.Add(time.Hour)}, 1)
	sameIDs(t, "after deleting expired at 1h", sessionIDs(t, s, all...), "s2", "s4")
	del(iomt.SessionFilter{User: "u1"}, 0) // s2 moved to u3
	del(iomt.SessionFilter{User: "u3"}, 1)
	del(iomt.SessionFilter{ID: "s4"}, 1)
	sameIDs(t, "after deleting by ID", sessionIDs(t, s, all...))
	// The index entries went with the sessions: saving again and deleting by user and expiry
	// finds each once.
	for _, ss := range []iomt.Session{mk("s1", "u1", time.Hour), mk("s2", "u1", 2*time.Hour), mk("s3", "u2", time.Hour)} {
		must(t, s.SaveSession(ctx, ss))
	}
	del(iomt.SessionFilter{ExpiredAt: T0.Add(time.Hour)}, 2)
	del(iomt.SessionFilter{}, 1) // the zero filter: every session
	sameIDs(t, "after deleting all", sessionIDs(t, s, all...))
}

func tokenIDs(t *testing.T, s iomt.Store, f iomt.APITokenFilter) []string {
	t.Helper()
	ts, err := s.APITokens(context.Background(), f)
	if err != nil {
		t.Fatalf("APITokens(%+v): %v", f, err)
	}
	ids := []string{}
	for _, x := range ts {
		ids = append(ids, x.ID)
	}
	return ids
}

// API tokens are kept with their hash, replaced (revoked) whole and listed by tenant and user.
func testAPITokens(t *testing.T, s iomt.Store) {
	ctx := context.Background()
	h := sha256.Sum256([]byte("secret"))
	tok := iomt.APIToken{ID: "k2", Tenant: "t1", User: "svc1", Name: "EHR export", Hash: h[:],
		Scopes: []string{"system/Observation.rs", "system/Patient.r"}, Created: T0, Expires: T0.AddDate(0, 3, 0)}
	must(t, s.SaveAPIToken(ctx, tok))
	must(t, s.SaveAPIToken(ctx, iomt.APIToken{ID: "k1", Tenant: "t1", User: "svc2", Hash: h[:], Created: T0, Expires: T0.Add(time.Hour)}))
	must(t, s.SaveAPIToken(ctx, iomt.APIToken{ID: "k3", Tenant: "t2", User: "svc1", Hash: h[:], Scopes: []string{}, Expires: T0.Add(time.Hour)}))
	got, err := s.APIToken(ctx, "k2")
	if err != nil || !reflect.DeepEqual(got, tok) {
		t.Fatalf("APIToken(k2): %+v, %v; want %+v", got, err, tok)
	}
	k3, err := s.APIToken(ctx, "k3")
	if err != nil || k3.Scopes != nil || k3.Created.IsZero() {
		t.Fatalf("APIToken(k3): %+v, %v; want no scopes (nil) and a creation time", k3, err)
	}
	if _, err := s.APIToken(ctx, "nope"); !errors.Is(err, iomt.ErrNotFound) {
		t.Fatalf("APIToken(nope): %v, want ErrNotFound", err)
	}
	sameIDs(t, "all", tokenIDs(t, s, iomt.APITokenFilter{}), "k1", "k2", "k3")
	sameIDs(t, "tenant t1", tokenIDs(t, s, iomt.APITokenFilter{Tenant: "t1"}), "k1", "k2")
	sameIDs(t, "user svc1", tokenIDs(t, s, iomt.APITokenFilter{User: "svc1"}), "k2", "k3")
	sameIDs(t, "user svc1 in t2", tokenIDs(t, s, iomt.APITokenFilter{Tenant: "t2", User: "svc1"}), "k3")

	tok.Revoked = T0.Add(time.Minute)
	must(t, s.SaveAPIToken(ctx, tok))
	if got, err := s.APIToken(ctx, "k2"); err != nil || !got.Revoked.Equal(tok.Revoked) || got.Active(T0.Add(2*time.Minute)) {
		t.Fatalf("revoked token: %+v, %v", got, err)
	}
	moved := tok
	moved.Tenant = "t2"
	wantErr(t, s.SaveAPIToken(ctx, moved), iomt.ErrDuplicate, "replace into another tenant")
	for _, bad := range []iomt.APIToken{
		{Tenant: "t1", User: "svc1", Hash: h[:], Expires: T0},
		{ID: "k9", User: "svc1", Hash: h[:], Expires: T0},
		{ID: "k9", Tenant: "t1", Hash: h[:], Expires: T0},
		{ID: "k9", Tenant: "t1", User: "svc1", Hash: h[:16], Expires: T0},
		{ID: "k9", Tenant: "t1", User: "svc1", Hash: h[:]},
		{ID: "k9", Tenant: "t1", User: "svc1", Hash: h[:], Expires: T0, Scopes: []string{""}},
		{ID: "k9", Tenant: "t1", User: "svc1", Hash: h[:], Expires: T0, Scopes: []string{"system/*.r\x00"}},
		{ID: "k9", Tenant: "t1", User: "svc1", Hash: h[:], Expires: T0, Name: "n\x00"},
	} {
		wantErr(t, s.SaveAPIToken(ctx, bad), iomt.ErrInvalid, fmt.Sprintf("save %+v", bad))
	}
	sameIDs(t, "after refused saves", tokenIDs(t, s, iomt.APITokenFilter{}), "k1", "k2", "k3")
}

func glassIDs(t *testing.T, s iomt.Store, f iomt.BreakGlassFilter) []string {
	t.Helper()
	bs, err := s.BreakGlasses(context.Background(), f)
	if err != nil {
		t.Fatalf("BreakGlasses(%+v): %v", f, err)
	}
	ids := []string{}
	for _, x := range bs {
		ids = append(ids, x.ID)
	}
	return ids
}

// Emergency accesses are kept, replaced (ended early), and listed by Start then ID, filtered
// by tenant, user, patient, time in force (start inclusive, end exclusive) and start.
func testBreakGlass(t *testing.T, s iomt.Store) {
	ctx := context.Background()
	mk := func(id, tenant, user, patient string, start, dur time.Duration) iomt.BreakGlass {
		return iomt.BreakGlass{ID: id, Tenant: tenant, User: user, Patient: patient, Reason: "arrest on ward 3, team busy",
			Start: T0.Add(start), Until: T0.Add(start + dur)}
	}
	b1 := mk("b1", "t1", "u1", "p1", time.Hour, time.Hour)
	for _, b := range []iomt.BreakGlass{b1, mk("b0", "t1", "u2", "p1", time.Hour, 30*time.Minute),
		mk("b2", "t1", "u1", "p2", 0, time.Hour), mk("b3", "t2", "u1", "p1", 3*time.Hour, time.Hour)} {
		must(t, s.SaveBreakGlass(ctx, b))
	}
	bs, err := s.BreakGlasses(ctx, iomt.BreakGlassFilter{User: "u1", Patient: "p1", Tenant: "t1"})
	if err != nil || len(bs) != 1 || !reflect.DeepEqual(bs[0], b1) {
		t.Fatalf("BreakGlasses(u1, p1, t1): %+v, %v; want %+v", bs, err, b1)
	}
	sameIDs(t, "all, by start then id", glassIDs(t, s, iomt.BreakGlassFilter{}), "b2", "b0", "b1", "b3")
	sameIDs(t, "tenant t1", glassIDs(t, s, iomt.BreakGlassFilter{Tenant: "t1"}), "b2", "b0", "b1")
	sameIDs(t, "user u1", glassIDs(t, s, iomt.BreakGlassFilter{User: "u1"}), "b2", "b1", "b3")
	sameIDs(t, "patient p1", glassIDs(t, s, iomt.BreakGlassFilter{Patient: "p1"}), "b0", "b1", "b3")
	sameIDs(t, "active at their start", glassIDs(t, s, iomt.BreakGlassFilter{ActiveAt: T0.Add(time.Hour)}), "b0", "b1")
	sameIDs(t, "active at b0's end", glassIDs(t, s, iomt.BreakGlassFilter{ActiveAt: T0.Add(90 * time.Minute)}), "b1")
	sameIDs(t, "active just before b2's end", glassIDs(t, s, iomt.BreakGlassFilter{ActiveAt: T0.Add(time.Hour - time.Millisecond)}), "b2")
	sameIDs(t, "active long after", glassIDs(t, s, iomt.BreakGlassFilter{ActiveAt: T0.Add(24 * time.Hour)}))
	sameIDs(t, "since 1h", glassIDs(t, s, iomt.BreakGlassFilter{Since: T0.Add(time.Hour)}), "b0", "b1", "b3")
	sameIDs(t, "u1 since 1h active at 3h30", glassIDs(t, s, iomt.BreakGlassFilter{User: "u1", Since: T0.Add(time.Hour), ActiveAt: T0.Add(210 * time.Minute)}), "b3")

	// Ended early: replaced with an earlier end.
	b1.Until = T0.Add(70 * time.Minute)
	must(t, s.SaveBreakGlass(ctx, b1))
	sameIDs(t, "u1 at 80 min after ending b1", glassIDs(t, s, iomt.BreakGlassFilter{User: "u1", ActiveAt: T0.Add(80 * time.Minute)}))
	sameIDs(t, "at 80 min after ending b1", glassIDs(t, s, iomt.BreakGlassFilter{ActiveAt: T0.Add(80 * time.Minute)}), "b0")
	moved := b1
	moved.Tenant = "t2"
	wantErr(t, s.SaveBreakGlass(ctx, moved), iomt.ErrDuplicate, "replace into another tenant")
	for _, bad := range []iomt.BreakGlass{
		func() iomt.BreakGlass { b := mk("b9", "t1", "u1", "p1", 0, time.Hour); b.Reason = " "; return b }(),
		func() iomt.BreakGlass { b := mk("b9", "t1", "u1", "p1", 0, time.Hour); b.Reason = "x\x00"; return b }(),
		func() iomt.BreakGlass { b := mk("b9", "t1", "u1", "p1", 0, time.Hour); b.Patient = ""; return b }(),
		func() iomt.BreakGlass { b := mk("b9", "t1", "u1", "p1", 0, time.Hour); b.User = ""; return b }(),
		func() iomt.BreakGlass { b := mk("b9", "t1", "u1", "p1", 0, time.Hour); b.Start = time.Time{}; return b }(),
		mk("b9", "t1", "u1", "p1", time.Hour, 0),
		mk("b9", "t1", "u1", "p1", time.Hour, -time.Minute),
		mk("b9", "t1", "u1", "p1", time.Hour, time.Microsecond), // nothing left at millisecond precision
		mk("b9", "", "u1", "p1", time.Hour, time.Hour),
	} {
		wantErr(t, s.SaveBreakGlass(ctx, bad), iomt.ErrInvalid, fmt.Sprintf("save %+v", bad))
	}
	sameIDs(t, "after refused saves", glassIDs(t, s, iomt.BreakGlassFilter{}), "b2", "b0", "b1", "b3")
}

// Lookups and filters with a NUL byte or invalid UTF-8 are refused with ErrInvalid on every
// store (PostgreSQL cannot even be asked about them).
func testIdentityLookupInvalid(t *testing.T, s iomt.Store) {
	ctx := context.Background()
	for _, bad := range []string{"u\x00", "u\xff"} {
		calls := map[string]error{}
		_, calls["User"] = s.User(ctx, bad)
		_, calls["Users tenant"] = s.Users(ctx, iomt.UserFilter{Tenant: bad})
		_, calls["Users login"] = s.Users(ctx, iomt.UserFilter{Login: bad})
		_, calls["Users subject"] = s.Users(ctx, iomt.UserFilter{Issuer: "i", Subject: bad})
		calls["DeleteCareTeam"] = s.DeleteCareTeam(ctx, bad)
		_, calls["CareTeams member"] = s.CareTeams(ctx, iomt.CareTeamFilter{Member: bad})
		_, calls["Session"] = s.Session(ctx, bad)
		_, calls["DeleteSessions user"] = s.DeleteSessions(ctx, iomt.SessionFilter{User: bad})
		_, calls["APIToken"] = s.APIToken(ctx, bad)
		_, calls["APITokens user"] = s.APITokens(ctx, iomt.APITokenFilter{User: bad})
		_, calls["BreakGlasses patient"] = s.BreakGlasses(ctx, iomt.BreakGlassFilter{Patient: bad})
		calls["UpdateUser"] = s.UpdateUser(ctx, User(bad, "t1", "ada"))
		for name, err := range calls {
			if !errors.Is(err, iomt.ErrInvalid) {
				t.Errorf("%s(%q): %v, want ErrInvalid", name, bad, err)
			}
		}
	}
}

// A patient's location is kept by create, replaced and cleared by update; a location that is
// not a path is refused, changing nothing.
func testPatientLocation(t *testing.T, s iomt.Store) {
	ctx := context.Background()
	p := iomt.Patient{ID: "p1", Tenant: "t1", Name: "Ada", Location: "north/ward-3/bed-12", CreatedAt: T0}
	must(t, s.CreatePatient(ctx, p))
	check := func(want string) {
		t.Helper()
		got, err := s.Patient(ctx, "p1")
		if err != nil || got.Location != want {
			t.Fatalf("Patient: location %q, %v; want %q", got.Location, err, want)
		}
		ps, err := s.Patients(ctx, iomt.PatientFilter{Tenant: "t1"})
		if err != nil || len(ps) != 1 || ps[0].Location != want {
			t.Fatalf("Patients: %+v, %v; want location %q", ps, err, want)
		}
	}
	check("north/ward-3/bed-12")
	p.Location = "home"
	must(t, s.UpdatePatient(ctx, p))
	check("home")
	for _, bad := range []string{"/north", "north/", "north//ward", "north\x00", "north/\nward"} {
		q := p
		q.Location = bad
		wantErr(t, s.UpdatePatient(ctx, q), iomt.ErrInvalid, fmt.Sprintf("update to location %q", bad))
		q.ID = "p2"
		wantErr(t, s.CreatePatient(ctx, q), iomt.ErrInvalid, fmt.Sprintf("create at location %q", bad))
	}
	check("home")
	p.Location = ""
	must(t, s.UpdatePatient(ctx, p))
	check("")
}

// IdentityAcrossReopen writes one of each identity record through s, has reopen close (or
// abandon, as a crash would) s and open a new store on the same data, and checks that the new
// store reads every record back and still enforces the uniqueness and finds records by the
// filters. The suite's stores start empty.
func IdentityAcrossReopen(t *testing.T, s iomt.Store, reopen func(iomt.Store) iomt.Store) {
	ctx := context.Background()
	u := User("u1", "t1", "Ada")
	u.Issuer, u.Subject = "https://idp.example", "ada"
	must(t, s.CreateUser(ctx, u))
	team := iomt.CareTeam{ID: "c1", Tenant: "t1", Name: "Ward 3", Members: []string{"u1"}, Locations: []string{"north/ward-3"}, UpdatedAt: T0}
	must(t, s.SaveCareTeam(ctx, team))
	sess := iomt.Session{ID: "s1", Tenant: "t1", User: "u1", CSRF: "c", Method: "oidc", Created: T0, LastSeen: T0, Expires: T0.Add(time.Hour)}
	must(t, s.SaveSession(ctx, sess))
	h := sha256.Sum256([]byte("secret"))
	tok := iomt.APIToken{ID: "k1", Tenant: "t1", User: "u1", Hash: h[:], Scopes: []string{"system/Patient.r"}, Created: T0, Expires: T0.Add(time.Hour)}
	must(t, s.SaveAPIToken(ctx, tok))
	bg := iomt.BreakGlass{ID: "b1", Tenant: "t1", User: "u1", Patient: "p1", Reason: "arrest", Start: T0, Until: T0.Add(time.Hour)}
	must(t, s.SaveBreakGlass(ctx, bg))

	s = reopen(s)
	defer s.Close()
	if got := getUser(t, s, "u1"); !reflect.DeepEqual(got, u) {
		t.Fatalf("user after reopening:\n%+v, want\n%+v", got, u)
	}
	wantErr(t, s.CreateUser(ctx, User("u2", "t1", "ada")), iomt.ErrDuplicate, "the login after reopening")
	sameIDs(t, "by OIDC identity after reopening", userIDs(t, s, iomt.UserFilter{Tenant: "t1", Issuer: u.Issuer, Subject: u.Subject}), "u1")
	if ts, err := s.CareTeams(ctx, iomt.CareTeamFilter{Member: "u1"}); err != nil || len(ts) != 1 || !reflect.DeepEqual(ts[0], team) {
		t.Fatalf("care teams after reopening: %+v, %v", ts, err)
	}
	if got, err := s.Session(ctx, "s1"); err != nil || !reflect.DeepEqual(got, sess) {
		t.Fatalf("session after reopening: %+v, %v", got, err)
	}
	if got, err := s.APIToken(ctx, "k1"); err != nil || !reflect.DeepEqual(got, tok) {
		t.Fatalf("API token after reopening: %+v, %v", got, err)
	}
	if got, err := s.BreakGlasses(ctx, iomt.BreakGlassFilter{Patient: "p1"}); err != nil || len(got) != 1 || !reflect.DeepEqual(got[0], bg) {
		t.Fatalf("break-the-glass after reopening: %+v, %v", got, err)
	}
	if n, err := s.DeleteSessions(ctx, iomt.SessionFilter{ExpiredAt: T0.Add(time.Hour)}); err != nil || n != 1 {
		t.Fatalf("DeleteSessions by expiry after reopening: %d, %v", n, err)
	}
}

// Failed sign-ins counted at once each count, and the one that reaches the limit locks.
func testCountFailedSignIn(t *testing.T, s iomt.Store) {
	ctx := context.Background()
	u := User("uf", "t1", "guessed")
	u.TOTPStep = 12345
	must(t, s.CreateUser(ctx, u))
	var wg sync.WaitGroup
	for range 12 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := s.CountFailedSignIn(ctx, u.ID, 100, time.Hour, T0); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	got, err := s.User(ctx, u.ID)
	if err != nil || got.FailedSignIns != 12 || !got.LockedUntil.IsZero() || got.TOTPStep != 12345 {
		t.Fatalf("after 12 parallel failures: %+v %v, want 12 counted, no lock, the TOTP step kept", got, err)
	}
	locked, err := s.CountFailedSignIn(ctx, u.ID, 13, time.Hour, T0)
	if err != nil || locked.FailedSignIns != 0 || !locked.LockedUntil.Equal(T0.Add(time.Hour)) {
		t.Fatalf("the failure that reaches the limit: %+v %v, want locked until T0+1h and the count reset", locked, err)
	}
	if _, err := s.CountFailedSignIn(ctx, "nobody", 5, time.Hour, T0); !errors.Is(err, iomt.ErrNotFound) {
		t.Fatalf("unknown user: %v", err)
	}
}
