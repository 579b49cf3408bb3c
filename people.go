package iomt

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// Role is what a user may do; the permissions of each are fixed and documented in policy/.
type Role string

// Roles.
const (
	// RoleAdmin manages users, teams, devices, credentials, alarm rules and routing and the
	// configuration; it reads no patient data unless the user also holds a clinical role.
	RoleAdmin Role = "admin"
	// RoleClinician reads and acts on the patients of the user's care teams.
	RoleClinician Role = "clinician"
	// RoleCarer is a family member or home carer: a read-only summary of the patients shared
	// with them (through a care team), and their alerts.
	RoleCarer Role = "carer"
	// RoleAuditor reads the audit trail and no other patient data.
	RoleAuditor Role = "auditor"
	// RoleService is an integration's service account; what it may do is the scopes of its
	// API tokens (SMART on FHIR v2), within its other roles' permissions.
	RoleService Role = "service"
)

// Roles lists every role, sorted.
func Roles() []Role { return []Role{RoleAdmin, RoleAuditor, RoleCarer, RoleClinician, RoleService} }

// User is a person (or a service account) who signs in to iomt.
type User struct {
	ID     string `json:"id"`
	Tenant string `json:"tenant"`
	Login  string `json:"login"` // unique per tenant
	Name   string `json:"name"`  // display name
	Roles  []Role `json:"roles"`
	// Disabled users cannot sign in, and their sessions and tokens stop working.
	Disabled bool `json:"disabled,omitempty"`
	// PasswordHash is an argon2id hash in PHC string form; empty: no password sign-in (an SSO
	// or service account).
	PasswordHash string `json:"-"`
	// TOTPSecret, if set, is the base32 secret of the user's second factor (RFC 6238);
	// TOTPStep is the time step of the last code accepted, so a code works once on every node
	// and across restarts.
	TOTPSecret string `json:"-"`
	TOTPStep   int64  `json:"-"`
	// Issuer and Subject identify a user who signs in through OpenID Connect (the ID token's
	// iss and sub); unique per tenant when set.
	Issuer  string `json:"issuer,omitempty"`
	Subject string `json:"subject,omitempty"`
	// FailedSignIns counts wrong passwords or codes since the last success; LockedUntil is
	// when a temporary lockout ends.
	FailedSignIns int       `json:"-"`
	LockedUntil   time.Time `json:"lockedUntil,omitzero"`
	CreatedAt     time.Time `json:"createdAt"`
	UpdatedAt     time.Time `json:"updatedAt,omitzero"`
}

// HasRole reports whether u holds r.
func (u User) HasRole(r Role) bool { return slices.Contains(u.Roles, r) }

// MFAEnabled reports whether the user has a second factor set up.
func (u User) MFAEnabled() bool { return u.TOTPSecret != "" }

// UserFilter selects users; zero fields match everything.
type UserFilter struct {
	Tenant string
	Login  string
	// Issuer and Subject, both set, find the user of an OpenID Connect identity.
	Issuer, Subject string
	Limit           int
}

// CareTeam is a group of users who care for a set of patients: the patients it lists, and
// those who lie in the locations it covers (a location covers the ones below it: a team of
// "north/ward-3" covers "north/ward-3/bed-12").
type CareTeam struct {
	ID        string   `json:"id"`
	Tenant    string   `json:"tenant"`
	Name      string   `json:"name"`
	Members   []string `json:"members"`             // user IDs
	Patients  []string `json:"patients,omitempty"`  // patient IDs
	Locations []string `json:"locations,omitempty"` // location paths, see Patient.Location
	// SSOMembers are the members the identity provider's groups made (a subset of Members):
	// they leave the team when the groups no longer name it; members added by hand stay.
	SSOMembers []string  `json:"ssoMembers,omitempty"`
	UpdatedAt  time.Time `json:"updatedAt,omitzero"`
}

// CoversAll reports whether the team covers every patient of its tenant (location "*": a
// rapid-response or infection-control team, an integration).
func (t CareTeam) CoversAll() bool { return slices.Contains(t.Locations, "*") }

// CoversLocation reports whether the team covers a patient lying at loc: a team that covers
// all does, wherever (or whether) the patient lies.
func (t CareTeam) CoversLocation(loc string) bool {
	if t.CoversAll() {
		return true
	}
	if loc == "" {
		return false
	}
	for _, l := range t.Locations {
		if loc == l || strings.HasPrefix(loc, l+"/") {
			return true
		}
	}
	return false
}

// CareTeamFilter selects care teams; zero fields match everything.
type CareTeamFilter struct {
	Tenant string
	Member string // teams this user belongs to
}

// Session is a signed-in user's server-side session. The browser holds a random token; the
// store keeps only its hash (ID), so a copy of the store signs no one in.
type Session struct {
	ID       string    `json:"id"` // hex SHA-256 of the session token
	Tenant   string    `json:"tenant"`
	User     string    `json:"user"`
	CSRF     string    `json:"-"` // the token cookie-authenticated writes must echo
	Source   string    `json:"source,omitempty"`
	Method   string    `json:"method"` // password, password+totp, oidc
	Created  time.Time `json:"created"`
	LastSeen time.Time `json:"lastSeen"`
	Expires  time.Time `json:"expires"` // the absolute end, whatever the activity
}

// SessionFilter selects sessions to delete; zero fields match everything.
type SessionFilter struct {
	ID   string
	User string
	// ExpiredAt, if set, selects sessions whose absolute end is at or before it.
	ExpiredAt time.Time
}

// APIToken is a bearer token an admin issued to a service account. Only its hash is kept.
type APIToken struct {
	ID      string    `json:"id"`
	Tenant  string    `json:"tenant"`
	User    string    `json:"user"` // the service account it acts as
	Name    string    `json:"name"`
	Hash    []byte    `json:"-"`      // SHA-256 of the secret
	Scopes  []string  `json:"scopes"` // SMART on FHIR v2 scopes
	Created time.Time `json:"created"`
	Expires time.Time `json:"expires"`
	Revoked time.Time `json:"revoked,omitzero"`
}

// Active reports whether the token works at t.
func (t APIToken) Active(at time.Time) bool {
	return t.Revoked.IsZero() && at.Before(t.Expires)
}

// APITokenFilter selects API tokens; zero fields match everything.
type APITokenFilter struct {
	Tenant string
	User   string
}

// BreakGlass is an emergency access: a clinician opened a patient outside their care teams,
// stating why, until Until.
type BreakGlass struct {
	ID      string    `json:"id"`
	Tenant  string    `json:"tenant"`
	User    string    `json:"user"`
	Patient string    `json:"patient"`
	Reason  string    `json:"reason"`
	Start   time.Time `json:"start"`
	Until   time.Time `json:"until"`
}

// BreakGlassFilter selects emergency accesses; zero fields match everything.
type BreakGlassFilter struct {
	Tenant  string
	User    string
	Patient string
	// ActiveAt keeps the accesses in force at that time.
	ActiveAt time.Time
	Since    time.Time // started at or after
}

// IdentityStore keeps the people of a deployment: users, care teams, sessions, API tokens and
// emergency accesses. Every write is durable when it returns. Times are kept in UTC to the
// millisecond (TimePrecision); a zero User.CreatedAt (on create), User.UpdatedAt (on update),
// CareTeam.UpdatedAt, Session.Created or APIToken.Created becomes the time of the write.
// Empty lists read back as nil. Lists come ordered by ID, except BreakGlasses (by
// Start, then ID). A lookup or filter with a NUL byte or invalid UTF-8 is refused
// (ErrInvalid): no stored record can hold one. Secrets (password hash, TOTP secret, token
// hash, CSRF token) are kept as given and never logged or put in errors. The store does not
// check that the users, patients and teams a record names exist.
//
// A create-or-replace (SaveCareTeam, SaveSession, SaveAPIToken, SaveBreakGlass) never moves a
// record to another tenant: replacing one of another tenant is ErrDuplicate.
type IdentityStore interface {
	// CreateUser stores a new user (ErrDuplicate if the ID, the (Tenant, LoginKey(Login)) or a
	// set (Tenant, Issuer, Subject) exists; ErrInvalid for a user CheckUser refuses). Logins
	// compare case-insensitively: the login is kept as given, unique on its lower-case form.
	CreateUser(ctx context.Context, u User) error
	User(ctx context.Context, id string) (User, error) // ErrNotFound if there is none
	// Users lists the users the filter selects: Login matches case-insensitively; Issuer and
	// Subject are given together or not at all (ErrInvalid); Limit ≤ 0 means no limit.
	Users(ctx context.Context, f UserFilter) ([]User, error)
	// CountFailedSignIn adds one to a user's failed sign-ins in one atomic step, so parallel
	// guesses each count: at max it locks the account until now+lockout and starts counting
	// again. It returns the user as stored (ErrNotFound if there is none).
	CountFailedSignIn(ctx context.Context, id string, max int, lockout time.Duration, now time.Time) (User, error)
	// UpdateUser replaces every field but ID, Tenant and CreatedAt (u.Tenant is ignored; a zero
	// UpdatedAt becomes the time of the write). ErrNotFound, ErrDuplicate (the login or OIDC
	// identity of another user of the tenant), ErrInvalid as CreateUser.
	UpdateUser(ctx context.Context, u User) error

	// SaveCareTeam creates or replaces a team (ErrInvalid for one CheckCareTeam refuses).
	SaveCareTeam(ctx context.Context, t CareTeam) error
	DeleteCareTeam(ctx context.Context, id string) error // ErrNotFound if there is none
	CareTeams(ctx context.Context, f CareTeamFilter) ([]CareTeam, error)

	// SaveSession creates or replaces a session (ErrInvalid for one CheckSession refuses).
	SaveSession(ctx context.Context, s Session) error
	// Session returns a session whether or not it has expired (ErrNotFound if there is none):
	// the caller judges expiry and idleness.
	Session(ctx context.Context, id string) (Session, error)
	// DeleteSessions deletes the sessions the filter selects (all its set fields must match;
	// the zero filter deletes every session) and returns how many it deleted.
	DeleteSessions(ctx context.Context, f SessionFilter) (int, error)

	// SaveAPIToken creates or replaces a token (ErrInvalid for one CheckAPIToken refuses).
	SaveAPIToken(ctx context.Context, t APIToken) error
	APIToken(ctx context.Context, id string) (APIToken, error) // ErrNotFound if there is none
	APITokens(ctx context.Context, f APITokenFilter) ([]APIToken, error)

	// SaveBreakGlass creates or replaces (say, to end it early) an emergency access
	// (ErrInvalid for one CheckBreakGlass refuses).
	SaveBreakGlass(ctx context.Context, b BreakGlass) error
	// BreakGlasses lists the accesses the filter selects, ordered by Start then ID; ActiveAt
	// keeps those with Start ≤ ActiveAt < Until.
	BreakGlasses(ctx context.Context, f BreakGlassFilter) ([]BreakGlass, error)
}

// Limits on free text, in bytes, that the APIs and the stores apply.
const (
	MaxNameLen   = 200  // names, logins, identifiers
	MaxTextLen   = 4000 // reasons, notes
	MaxListItems = 10000
)

// CheckText refuses text longer than max bytes, not valid UTF-8, or holding control
// characters (NUL, escapes, line breaks: they break logs, HL7 and PostgreSQL), with a
// *TextError (which wraps ErrInvalid) that names the field.
func CheckText(field, s string, max int) error {
	if len(s) > max {
		return &TextError{Field: field, Reason: fmt.Sprintf("is %d bytes long, at most %d are allowed", len(s), max)}
	}
	if !utf8.ValidString(s) {
		return &TextError{Field: field, Reason: "is not valid UTF-8"}
	}
	for i, r := range s {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return &TextError{Field: field, Reason: fmt.Sprintf("has a control character (U+%04X) at byte %d", r, i)}
		}
	}
	return nil
}

// TextError is CheckText's refusal: Field is too long, not UTF-8 or holds a control
// character, as Reason says. The APIs answer it with 422 Unprocessable Content.
type TextError struct {
	Field, Reason string
}

func (e *TextError) Error() string { return ErrInvalid.Error() + ": " + e.Field + " " + e.Reason }

// Unwrap makes a TextError match ErrInvalid.
func (e *TextError) Unwrap() error { return ErrInvalid }

// CheckUser refuses a user without a tenant, ID or login, with an unknown role, with
// control characters or over-long text in its names or secrets, with only one of issuer and
// subject, or with a negative count of failed sign-ins.
func CheckUser(u User) error {
	switch {
	case u.ID == "":
		return fmt.Errorf("%w: user: id is empty", ErrInvalid)
	case u.Tenant == "":
		return fmt.Errorf("%w: user: tenant is empty", ErrInvalid)
	case strings.TrimSpace(u.Login) == "":
		return fmt.Errorf("%w: user: login is empty", ErrInvalid)
	case len(u.Roles) == 0:
		return fmt.Errorf("%w: user %q: no role", ErrInvalid, u.Login)
	}
	for _, r := range u.Roles {
		if !slices.Contains(Roles(), r) {
			return fmt.Errorf("%w: user %q: unknown role %q (one of admin, clinician, carer, auditor, service)", ErrInvalid, u.Login, r)
		}
	}
	for _, f := range []struct{ name, v string }{{"id", u.ID}, {"tenant", u.Tenant}, {"login", u.Login}, {"name", u.Name}, {"issuer", u.Issuer}, {"subject", u.Subject}} {
		if err := CheckText(f.name, f.v, MaxNameLen); err != nil {
			return err
		}
	}
	// The secrets are checked for what would break a store, without naming their content.
	for _, f := range []struct{ name, v string }{{"password hash", u.PasswordHash}, {"TOTP secret", u.TOTPSecret}} {
		if err := CheckText(f.name, f.v, MaxNameLen); err != nil {
			return err
		}
	}
	switch {
	case (u.Issuer == "") != (u.Subject == ""):
		return fmt.Errorf("%w: user %q: an OpenID Connect identity needs both issuer and subject", ErrInvalid, u.Login)
	case u.FailedSignIns < 0:
		return fmt.Errorf("%w: user %q: negative count of failed sign-ins", ErrInvalid, u.Login)
	}
	for i, r := range u.Roles {
		if slices.Contains(u.Roles[:i], r) {
			return fmt.Errorf("%w: user %q: role %q given twice", ErrInvalid, u.Login, r)
		}
	}
	return nil
}

// LoginKey is the form logins are compared in: unique per tenant and looked up in this form,
// so "Ada" and "ada" are one login (Unicode lower case, strings.ToLower). The login itself is
// kept as it was given.
func LoginKey(login string) string { return strings.ToLower(login) }

// CheckLocation refuses a location that is not a path like site/ward or site/ward/bed (empty,
// or starting or ending with "/"), or that CheckText refuses.
func CheckLocation(field, l string) error {
	if l == "" || strings.HasPrefix(l, "/") || strings.HasSuffix(l, "/") || strings.Contains(l, "//") {
		return fmt.Errorf("%w: %s %q must be a path like site/ward or site/ward/bed", ErrInvalid, field, l)
	}
	return CheckText(field, l, MaxNameLen)
}

// checkIDs refuses empty identifiers, and ones CheckText refuses, naming the field.
func checkIDs(what string, fields ...string) error {
	for i := 0; i+1 < len(fields); i += 2 {
		if fields[i+1] == "" {
			return fmt.Errorf("%w: %s: %s is empty", ErrInvalid, what, fields[i])
		}
		if err := CheckText(what+" "+fields[i], fields[i+1], MaxNameLen); err != nil {
			return err
		}
	}
	return nil
}

// checkList refuses more than MaxListItems items, or an item checkIDs refuses.
func checkList(what, field string, items []string) error {
	if len(items) > MaxListItems {
		return fmt.Errorf("%w: %s: %d %s, at most %d are allowed", ErrInvalid, what, len(items), field, MaxListItems)
	}
	for _, it := range items {
		if err := checkIDs(what, field, it); err != nil {
			return err
		}
	}
	return nil
}

// CheckSession refuses a session without an ID, tenant, user or end (Expires), or with text
// CheckText refuses.
func CheckSession(s Session) error {
	if err := checkIDs("session", "id", s.ID, "tenant", s.Tenant, "user", s.User, "method", s.Method); err != nil {
		return err
	}
	for _, f := range []struct{ name, v string }{{"session CSRF token", s.CSRF}, {"session source", s.Source}} {
		if err := CheckText(f.name, f.v, MaxNameLen); err != nil {
			return err
		}
	}
	if s.Expires.IsZero() {
		return fmt.Errorf("%w: session: no expiry", ErrInvalid)
	}
	return nil
}

// CheckAPIToken refuses a token without an ID, tenant, user or expiry, whose hash is not a
// SHA-256 digest, or with an empty or over-long scope.
func CheckAPIToken(t APIToken) error {
	if err := checkIDs("API token", "id", t.ID, "tenant", t.Tenant, "user", t.User); err != nil {
		return err
	}
	if err := CheckText("API token name", t.Name, MaxNameLen); err != nil {
		return err
	}
	if len(t.Hash) != 32 {
		return fmt.Errorf("%w: API token %q: the hash is %d bytes, a SHA-256 digest is 32", ErrInvalid, t.ID, len(t.Hash))
	}
	if err := checkList("API token "+t.ID, "scope", t.Scopes); err != nil {
		return err
	}
	if t.Expires.IsZero() {
		return fmt.Errorf("%w: API token %q: no expiry", ErrInvalid, t.ID)
	}
	return nil
}

// CheckBreakGlass refuses an emergency access without an ID, tenant, user, patient or reason,
// or that does not end after it starts.
func CheckBreakGlass(b BreakGlass) error {
	if err := checkIDs("break-the-glass", "id", b.ID, "tenant", b.Tenant, "user", b.User, "patient", b.Patient); err != nil {
		return err
	}
	if strings.TrimSpace(b.Reason) == "" {
		return fmt.Errorf("%w: break-the-glass %q: no reason given", ErrInvalid, b.ID)
	}
	if err := CheckText("break-the-glass reason", b.Reason, MaxTextLen); err != nil {
		return err
	}
	if b.Start.IsZero() || !b.Until.After(b.Start) {
		return fmt.Errorf("%w: break-the-glass %q: must start and end after it starts (start %v, until %v)", ErrInvalid, b.ID, b.Start, b.Until)
	}
	if !StoredTime(b.Until).After(StoredTime(b.Start)) {
		return fmt.Errorf("%w: %q ends within a millisecond of its start", ErrInvalid, b.ID)
	}
	return CheckTimes("break-the-glass", b.Start, b.Until)
}

// StoredTime is t as the stores keep it: UTC, to the millisecond; zero stays zero.
func StoredTime(t time.Time) time.Time {
	if t.IsZero() {
		return t
	}
	return t.UTC().Truncate(TimePrecision)
}

// CheckTimes refuses times a store cannot keep (JSON's RFC 3339 and PostgreSQL alike: years
// 1 to 9999), naming what they belong to.
func CheckTimes(what string, ts ...time.Time) error {
	for _, t := range ts {
		if !t.IsZero() && (t.Year() < 1 || t.Year() > 9999) {
			return fmt.Errorf("%w: %s: time %v out of range (years 1 to 9999)", ErrInvalid, what, t)
		}
	}
	return nil
}

// CheckCareTeam refuses a team without a tenant or ID, or with control characters in its
// name, members, patients or locations (see CheckLocation), or with over-long lists.
func CheckCareTeam(t CareTeam) error {
	if err := checkIDs("care team", "id", t.ID, "tenant", t.Tenant); err != nil {
		return err
	}
	if err := CheckText("care team name", t.Name, MaxNameLen); err != nil {
		return err
	}
	if err := checkList("care team "+t.ID, "member", t.Members); err != nil {
		return err
	}
	if err := checkList("care team "+t.ID, "patient", t.Patients); err != nil {
		return err
	}
	if len(t.Locations) > MaxListItems {
		return fmt.Errorf("%w: care team %q: %d locations, at most %d are allowed", ErrInvalid, t.ID, len(t.Locations), MaxListItems)
	}
	for _, l := range t.Locations {
		if err := CheckLocation("care team location", l); err != nil {
			return err
		}
	}
	return nil
}
