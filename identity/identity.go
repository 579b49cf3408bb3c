// Package identity signs people in: built-in accounts with argon2id passwords and a TOTP
// second factor, lockout after failed attempts, throttling per source, server-side sessions
// with an idle timeout and an absolute lifetime, and API tokens for service accounts. It
// turns a credential into a policy.Principal; what the principal may do is policy's.
package identity

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/iomt/iomt"
	"github.com/iomt/iomt/policy"
)

// Errors a sign-in or an authentication ends with. ErrBadCredentials deliberately does not
// say whether the login exists.
var (
	ErrBadCredentials = errors.New("wrong login or password")
	ErrBadCode        = errors.New("wrong or reused second-factor code")
	ErrCodeRequired   = errors.New("a second-factor code is required")
	ErrMFASetup       = errors.New("your role requires a second factor, and none is set up: ask an administrator to set one up")
	ErrLocked         = errors.New("account temporarily locked after repeated failed sign-ins")
	ErrThrottled      = errors.New("too many failed attempts from this address; try again later")
	ErrDisabled       = errors.New("account disabled")
	ErrExpired        = errors.New("session ended: sign in again")
	ErrBadToken       = errors.New("invalid or expired token")
)

// Config tunes the service; zero fields take the defaults in brackets.
type Config struct {
	Store iomt.IdentityStore
	// Issuer names iomt in authenticator apps ("iomt").
	Issuer string
	// IdleTimeout ends a session unused this long (15 min: automatic logoff, HIPAA
	// §164.312(a)(2)(iii)); Lifetime ends it however active (12 h: one shift and handover).
	IdleTimeout, Lifetime time.Duration
	// MaxFailures wrong passwords or codes in a row lock the account for Lockout (5, 15 min).
	MaxFailures int
	Lockout     time.Duration
	// SourceFailures failures from one address within SourceWindow refuse that address for
	// SourceWindow (20, 10 min): guessing across many logins from one place.
	SourceFailures int
	SourceWindow   time.Duration
	// MFARoles must sign in with a second factor.
	MFARoles []iomt.Role
	// CacheTTL is how long a node trusts a session or token it has read without reading it
	// again (5 s): a sign-out or revocation on another node takes effect within it.
	CacheTTL time.Duration
	Now      func() time.Time
	Logger   *slog.Logger
	// TeamsChanged, if set, is called after single sign-on changed a user's care teams, so the
	// access policy sees the change before its next periodic reload.
	TeamsChanged func(ctx context.Context)
}

// Service signs people in and authenticates their requests.
type Service struct {
	cfg      Config
	store    iomt.IdentityStore
	log      *slog.Logger
	throttle *throttle

	mu       sync.Mutex
	sessions map[string]cachedSession // by session ID
	tokens   map[string]cachedToken   // by token ID
	users    map[string]cachedUser
	codes    map[string]int64 // user → last TOTP step used, so a code works once
	dummy    string           // a hash to verify against for unknown logins
}

type cachedSession struct {
	s    iomt.Session
	read time.Time
}

type cachedToken struct {
	t      iomt.APIToken
	scopes []policy.Scope // t.Scopes parsed once, not on every request
	read   time.Time
}

type cachedUser struct {
	u    iomt.User
	read time.Time
}

// New returns a service over cfg.Store.
func New(cfg Config) (*Service, error) {
	if cfg.Store == nil {
		return nil, errors.New("identity: a store is required")
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&cfg.IdleTimeout, 15*time.Minute)
	def(&cfg.Lifetime, 12*time.Hour)
	def(&cfg.Lockout, 15*time.Minute)
	def(&cfg.SourceWindow, 10*time.Minute)
	def(&cfg.CacheTTL, 5*time.Second)
	if cfg.MaxFailures <= 0 {
		cfg.MaxFailures = 5
	}
	if cfg.SourceFailures <= 0 {
		cfg.SourceFailures = 20
	}
	if cfg.Issuer == "" {
		cfg.Issuer = "iomt"
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	dummy, err := HashPassword("not a password anyone has")
	if err != nil {
		return nil, err
	}
	return &Service{cfg: cfg, store: cfg.Store, log: cfg.Logger, throttle: newThrottle(cfg.SourceFailures, cfg.SourceWindow),
		sessions: map[string]cachedSession{}, tokens: map[string]cachedToken{}, users: map[string]cachedUser{},
		codes: map[string]int64{}, dummy: dummy}, nil
}

// Config returns the service's settings, defaults filled in.
func (s *Service) Config() Config { return s.cfg }

func (s *Service) now() time.Time { return s.cfg.Now().UTC().Truncate(time.Millisecond) }

func randomToken(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("identity: random: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

func hashHex(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// NewUser is what an administrator (or `iomt user create`) gives for a new account.
type NewUser struct {
	Tenant   string
	Login    string
	Name     string
	Roles    []iomt.Role
	Password string // empty: no password sign-in (SSO or service account)
}

// CreateUser creates a built-in account; the password is checked and hashed here and never
// stored or logged as given.
func (s *Service) CreateUser(ctx context.Context, in NewUser) (iomt.User, error) {
	id, err := iomt.NewID()
	if err != nil {
		return iomt.User{}, err
	}
	if in.Tenant == "" {
		in.Tenant = iomt.DefaultTenant
	}
	u := iomt.User{ID: id, Tenant: in.Tenant, Login: strings.TrimSpace(in.Login), Name: strings.TrimSpace(in.Name),
		Roles: in.Roles, CreatedAt: s.now()}
	if u.Name == "" {
		u.Name = u.Login
	}
	if err := iomt.CheckUser(u); err != nil {
		return iomt.User{}, err
	}
	if in.Password != "" {
		if err := CheckPassword(in.Password); err != nil {
			return iomt.User{}, fmt.Errorf("%w: %w", iomt.ErrInvalid, err)
		}
		if u.PasswordHash, err = HashPassword(in.Password); err != nil {
			return iomt.User{}, err
		}
	}
	if err := s.store.CreateUser(ctx, u); err != nil {
		return iomt.User{}, fmt.Errorf("identity: create user %q: %w", u.Login, err)
	}
	return u, nil
}

// SetPassword replaces a user's password and ends their sessions.
func (s *Service) SetPassword(ctx context.Context, userID, pw string) error {
	if err := CheckPassword(pw); err != nil {
		return fmt.Errorf("%w: %w", iomt.ErrInvalid, err)
	}
	u, err := s.store.User(ctx, userID)
	if err != nil {
		return fmt.Errorf("identity: user %q: %w", userID, err)
	}
	if u.PasswordHash, err = HashPassword(pw); err != nil {
		return err
	}
	u.FailedSignIns, u.LockedUntil, u.UpdatedAt = 0, time.Time{}, s.now()
	if err := s.store.UpdateUser(ctx, u); err != nil {
		return fmt.Errorf("identity: set password of %q: %w", u.Login, err)
	}
	_, err = s.SignOutEverywhere(ctx, u.ID)
	return err
}

// EnrollTOTP gives a user a new second factor, returning its secret and otpauth URL (shown
// once), and ends their sessions.
func (s *Service) EnrollTOTP(ctx context.Context, userID string) (secret, url string, err error) {
	u, err := s.store.User(ctx, userID)
	if err != nil {
		return "", "", fmt.Errorf("identity: user %q: %w", userID, err)
	}
	if secret, url, err = NewTOTP(s.cfg.Issuer, u.Login); err != nil {
		return "", "", err
	}
	u.TOTPSecret, u.TOTPStep, u.UpdatedAt = secret, 0, s.now()
	if err := s.store.UpdateUser(ctx, u); err != nil {
		return "", "", fmt.Errorf("identity: enroll TOTP for %q: %w", u.Login, err)
	}
	if _, err := s.SignOutEverywhere(ctx, u.ID); err != nil {
		return "", "", err
	}
	return secret, url, nil
}

// SignInRequest is one attempt to sign in with a password.
type SignInRequest struct {
	Tenant   string
	Login    string
	Password string
	Code     string // the TOTP code, when the user has a second factor
	Source   string // the client's address
}

// SignedIn is a new session: Token goes to the browser (a cookie), CSRF to the page.
type SignedIn struct {
	Token   string
	Session iomt.Session
	User    iomt.User
}

// SignIn checks a login, password and code and opens a session. Failures are counted per
// account (lockout) and per source (throttling); the error says which refusal it was, and
// User is set (for the audit record) whenever the login named an account.
func (s *Service) SignIn(ctx context.Context, in SignInRequest) (SignedIn, error) {
	now := s.now()
	if in.Tenant == "" {
		in.Tenant = iomt.DefaultTenant
	}
	if s.throttle.blocked(in.Source, now) {
		return SignedIn{}, ErrThrottled
	}
	us, err := s.store.Users(ctx, iomt.UserFilter{Tenant: in.Tenant, Login: strings.TrimSpace(in.Login), Limit: 1})
	if err != nil {
		return SignedIn{}, fmt.Errorf("identity: find user: %w", err)
	}
	if len(us) == 0 || us[0].PasswordHash == "" {
		_, _ = VerifyPassword(s.dummy, in.Password) // the same time whether or not the login exists
		s.throttle.fail(in.Source, now)
		return SignedIn{}, ErrBadCredentials
	}
	u := us[0]
	out := SignedIn{User: u}
	if now.Before(u.LockedUntil) {
		s.throttle.fail(in.Source, now)
		return out, fmt.Errorf("%w until %s", ErrLocked, u.LockedUntil.Format(time.RFC3339))
	}
	ok, err := VerifyPassword(u.PasswordHash, in.Password)
	if err != nil {
		return out, err
	}
	if !ok {
		return out, s.failed(ctx, u, in.Source, now, ErrBadCredentials)
	}
	if u.Disabled {
		return out, ErrDisabled
	}
	method := "password"
	switch {
	case u.MFAEnabled():
		if in.Code == "" {
			return out, ErrCodeRequired // not a failure: the page asks for the code next
		}
		step := s.useCode(u, in.Code, now)
		if step < 0 {
			return out, s.failed(ctx, u, in.Source, now, ErrBadCode)
		}
		// Stored, so the code is refused on every other node and after a restart too.
		u.TOTPStep = step
		if err := s.store.UpdateUser(ctx, u); err != nil {
			return out, fmt.Errorf("identity: record the second-factor code: %w", err)
		}
		method = "password+totp"
	case s.mfaRequired(u):
		return out, ErrMFASetup
	}
	if u.FailedSignIns > 0 || !u.LockedUntil.IsZero() {
		u.FailedSignIns, u.LockedUntil = 0, time.Time{}
		if err := s.store.UpdateUser(ctx, u); err != nil {
			return out, fmt.Errorf("identity: reset failed sign-ins: %w", err)
		}
	}
	return s.open(ctx, u, method, in.Source)
}

func (s *Service) mfaRequired(u iomt.User) bool {
	for _, r := range u.Roles {
		if slices.Contains(s.cfg.MFARoles, r) {
			return true
		}
	}
	return false
}

// useCode accepts a TOTP code once and returns its time step (-1 if refused): a code seen
// before for that user (or an older one), here or as the store records it from any node, is
// refused, so a code read over someone's shoulder cannot be replayed.
func (s *Service) useCode(u iomt.User, code string, now time.Time) int64 {
	step := totpStep(u.TOTPSecret, strings.TrimSpace(code), now)
	if step < 0 {
		return -1
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if step <= max(s.codes[u.ID], u.TOTPStep) {
		return -1
	}
	s.codes[u.ID] = step
	return step
}

// failed counts a failure against the account and the source, locking the account at
// MaxFailures.
func (s *Service) failed(ctx context.Context, u iomt.User, source string, now time.Time, why error) error {
	s.throttle.fail(source, now)
	// Counted by the store in one step: parallel guesses (on one node or several) each count.
	got, err := s.store.CountFailedSignIn(ctx, u.ID, s.cfg.MaxFailures, s.cfg.Lockout, now)
	if err != nil {
		return fmt.Errorf("identity: count failed sign-in: %w", err)
	}
	if got.FailedSignIns == 0 && now.Before(got.LockedUntil) {
		s.log.Warn("account locked after failed sign-ins", "login", u.Login, "until", got.LockedUntil, "source", source)
		why = fmt.Errorf("%w: %w until %s", why, ErrLocked, got.LockedUntil.Format(time.RFC3339))
	}
	return why
}

// open starts a session for u.
func (s *Service) open(ctx context.Context, u iomt.User, method, source string) (SignedIn, error) {
	tok, err := randomToken(32)
	if err != nil {
		return SignedIn{}, err
	}
	csrf, err := randomToken(24)
	if err != nil {
		return SignedIn{}, err
	}
	now := s.now()
	sess := iomt.Session{ID: hashHex(tok), Tenant: u.Tenant, User: u.ID, CSRF: csrf, Source: source, Method: method,
		Created: now, LastSeen: now, Expires: now.Add(s.cfg.Lifetime)}
	if err := s.store.SaveSession(ctx, sess); err != nil {
		return SignedIn{}, fmt.Errorf("identity: save session: %w", err)
	}
	return SignedIn{Token: tok, Session: sess, User: u}, nil
}

// SignInExternal opens a session for a user an external identity provider signed in
// (OpenID Connect), creating the account on first sign-in (just in time) and updating its
// name and roles from the provider's claims every time.
func (s *Service) SignInExternal(ctx context.Context, ext External, source string) (SignedIn, error) {
	u, err := s.SyncExternal(ctx, ext)
	if err != nil {
		return SignedIn{}, err
	}
	if u.Disabled {
		return SignedIn{User: u}, ErrDisabled
	}
	return s.open(ctx, u, "oidc", source)
}

// External is a user as an identity provider describes them.
type External struct {
	Tenant          string
	Issuer, Subject string
	Login, Name     string
	Roles           []iomt.Role
	Teams           []string // care team IDs the provider's groups map to
}

// SyncExternal finds or creates the account of an external identity and brings its name,
// roles and team memberships in line with the provider's claims. Teams the claims name gain
// the user, and lose them when the claims stop naming them; teams the user was put in by hand
// are left alone.
func (s *Service) SyncExternal(ctx context.Context, ext External) (iomt.User, error) {
	if ext.Tenant == "" {
		ext.Tenant = iomt.DefaultTenant
	}
	us, err := s.store.Users(ctx, iomt.UserFilter{Tenant: ext.Tenant, Issuer: ext.Issuer, Subject: ext.Subject, Limit: 1})
	if err != nil {
		return iomt.User{}, fmt.Errorf("identity: find external user: %w", err)
	}
	now := s.now()
	var u iomt.User
	if len(us) == 0 {
		id, err := iomt.NewID()
		if err != nil {
			return iomt.User{}, err
		}
		u = iomt.User{ID: id, Tenant: ext.Tenant, Login: ext.Login, Name: ext.Name, Roles: ext.Roles, Issuer: ext.Issuer, Subject: ext.Subject, CreatedAt: now}
		if u.Name == "" {
			u.Name = u.Login
		}
		if err := s.store.CreateUser(ctx, u); err != nil {
			return iomt.User{}, fmt.Errorf("identity: create account for %s at %s: %w", ext.Login, ext.Issuer, err)
		}
		s.log.Info("account created at first single sign-on", "login", u.Login, "issuer", u.Issuer)
	} else {
		u = us[0]
		if u.Name != ext.Name || !slices.Equal(u.Roles, ext.Roles) || u.Login != ext.Login {
			u.Name, u.Roles, u.Login, u.UpdatedAt = ext.Name, ext.Roles, ext.Login, now
			if u.Name == "" {
				u.Name = u.Login
			}
			if err := s.store.UpdateUser(ctx, u); err != nil {
				return iomt.User{}, fmt.Errorf("identity: update account of %s: %w", u.Login, err)
			}
		}
	}
	// Teams follow the groups: the provider adds the user to the teams its groups name and
	// takes them out of those it added them to once the groups no longer name them.
	teams, err := s.store.CareTeams(ctx, iomt.CareTeamFilter{Tenant: ext.Tenant})
	if err != nil {
		return iomt.User{}, fmt.Errorf("identity: care teams: %w", err)
	}
	changed := false
	defer func() {
		if changed && s.cfg.TeamsChanged != nil {
			s.cfg.TeamsChanged(ctx)
		}
	}()
	for _, t := range teams {
		want, member, bySSO := slices.Contains(ext.Teams, t.ID), slices.Contains(t.Members, u.ID), slices.Contains(t.SSOMembers, u.ID)
		switch {
		case want && !member:
			t.Members, t.SSOMembers = append(t.Members, u.ID), append(t.SSOMembers, u.ID)
		case !want && bySSO:
			t.Members = slices.DeleteFunc(t.Members, func(m string) bool { return m == u.ID })
			t.SSOMembers = slices.DeleteFunc(t.SSOMembers, func(m string) bool { return m == u.ID })
			s.log.Info("left a care team the provider's groups no longer name", "login", u.Login, "team", t.ID)
		default:
			continue
		}
		t.UpdatedAt, changed = now, true
		if err := s.store.SaveCareTeam(ctx, t); err != nil {
			return iomt.User{}, fmt.Errorf("identity: team %s of %s: %w", t.ID, u.Login, err)
		}
	}
	return u, nil
}

// Authenticate returns the user and session of a session token, refreshing the session's
// last use; an idle or expired session is deleted and refused with ErrExpired.
func (s *Service) Authenticate(ctx context.Context, token string) (iomt.User, iomt.Session, error) {
	id := hashHex(token)
	now := s.now()
	u, sess, err := s.current(ctx, id, now)
	if err != nil {
		return iomt.User{}, iomt.Session{}, err
	}
	// Writing the last use on every request would put a store write on every read; a
	// resolution of a tenth of the idle timeout, at most 30 s, is plenty (a coarser one would
	// end a session with a short timeout however busy it was).
	if now.Sub(sess.LastSeen) > min(30*time.Second, s.cfg.IdleTimeout/10) {
		// Read it again first: a session another node ended while this one had it cached
		// must stay ended, not be written back by the touch.
		if _, err := s.store.Session(ctx, id); err != nil {
			s.forget(id)
			if errors.Is(err, iomt.ErrNotFound) {
				return iomt.User{}, iomt.Session{}, ErrExpired
			}
			return iomt.User{}, iomt.Session{}, fmt.Errorf("identity: read session: %w", err)
		}
		sess.LastSeen = now
		if err := s.store.SaveSession(ctx, sess); err != nil {
			return iomt.User{}, iomt.Session{}, fmt.Errorf("identity: touch session: %w", err)
		}
		s.mu.Lock()
		s.sessions[id] = cachedSession{s: sess, read: now}
		s.mu.Unlock()
	}
	return u, sess, nil
}

// Alive reports whether the session of ID (Session.ID, not the browser's token) is still
// open: ErrExpired once it is signed out, idle or past its lifetime, ErrDisabled once its user
// is. Asking is not a use: a live stream checks its session this way, ending with it without
// keeping it open.
func (s *Service) Alive(ctx context.Context, id string) error {
	_, _, err := s.current(ctx, id, s.now())
	return err
}

// current returns an open session and its user; an idle or expired session is deleted and
// refused with ErrExpired.
func (s *Service) current(ctx context.Context, id string, now time.Time) (iomt.User, iomt.Session, error) {
	sess, err := s.session(ctx, id, now)
	if err != nil {
		return iomt.User{}, iomt.Session{}, err
	}
	if now.Sub(sess.LastSeen) > s.cfg.IdleTimeout || !now.Before(sess.Expires) {
		s.forget(id)
		if _, err := s.store.DeleteSessions(ctx, iomt.SessionFilter{ID: id}); err != nil {
			s.log.Warn("delete ended session", "err", err)
		}
		return iomt.User{}, iomt.Session{}, ErrExpired
	}
	u, err := s.user(ctx, sess.User, now)
	if err != nil {
		return iomt.User{}, iomt.Session{}, err
	}
	if u.Disabled {
		return iomt.User{}, iomt.Session{}, ErrDisabled
	}
	return u, sess, nil
}

func (s *Service) session(ctx context.Context, id string, now time.Time) (iomt.Session, error) {
	s.mu.Lock()
	c, ok := s.sessions[id]
	s.mu.Unlock()
	if ok && now.Sub(c.read) < s.cfg.CacheTTL {
		return c.s, nil
	}
	sess, err := s.store.Session(ctx, id)
	if errors.Is(err, iomt.ErrNotFound) {
		s.forget(id)
		return iomt.Session{}, ErrExpired
	}
	if err != nil {
		return iomt.Session{}, fmt.Errorf("identity: read session: %w", err)
	}
	s.mu.Lock()
	if len(s.sessions) > 100000 {
		clear(s.sessions) // a bound, not an eviction policy: entries are cheap to read again
	}
	s.sessions[id] = cachedSession{s: sess, read: now}
	s.mu.Unlock()
	return sess, nil
}

func (s *Service) user(ctx context.Context, id string, now time.Time) (iomt.User, error) {
	s.mu.Lock()
	c, ok := s.users[id]
	s.mu.Unlock()
	if ok && now.Sub(c.read) < s.cfg.CacheTTL {
		return c.u, nil
	}
	u, err := s.store.User(ctx, id)
	if err != nil {
		return iomt.User{}, fmt.Errorf("identity: read user: %w", err)
	}
	s.mu.Lock()
	if len(s.users) > 100000 {
		clear(s.users)
	}
	s.users[id] = cachedUser{u: u, read: now}
	s.mu.Unlock()
	return u, nil
}

func (s *Service) forget(sessionID string) {
	s.mu.Lock()
	delete(s.sessions, sessionID)
	s.mu.Unlock()
}

// Forget drops what this node cached of a user, so a change (disabled, roles) takes effect
// here at once; other nodes see it within CacheTTL.
func (s *Service) Forget(userID string) {
	s.mu.Lock()
	delete(s.users, userID)
	for id, c := range s.sessions {
		if c.s.User == userID {
			delete(s.sessions, id)
		}
	}
	s.mu.Unlock()
}

// SignOut ends the session of token on every node (the store forgets it).
func (s *Service) SignOut(ctx context.Context, token string) error {
	id := hashHex(token)
	s.forget(id)
	if _, err := s.store.DeleteSessions(ctx, iomt.SessionFilter{ID: id}); err != nil {
		return fmt.Errorf("identity: sign out: %w", err)
	}
	return nil
}

// SignOutEverywhere ends every session of a user.
func (s *Service) SignOutEverywhere(ctx context.Context, userID string) (int, error) {
	s.Forget(userID)
	n, err := s.store.DeleteSessions(ctx, iomt.SessionFilter{User: userID})
	if err != nil {
		return 0, fmt.Errorf("identity: end sessions: %w", err)
	}
	return n, nil
}

// Principal is the policy's view of a user.
func Principal(u iomt.User, kind, tokenID string) policy.Principal {
	return policy.Principal{Kind: kind, ID: u.ID, Tenant: u.Tenant, Name: u.Login, Roles: u.Roles, TokenID: tokenID}
}

// CheckCSRF reports whether a write carries its session's CSRF token.
func CheckCSRF(sess iomt.Session, got string) bool {
	return got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(sess.CSRF)) == 1
}

// Throttled reports whether source is refused for now, and Failed counts a failure from it
// (a wrong bearer token, say), for callers outside SignIn.
func (s *Service) Throttled(source string) bool { return s.throttle.blocked(source, s.now()) }

// Failed counts a failed authentication from source.
func (s *Service) Failed(source string) { s.throttle.fail(source, s.now()) }
