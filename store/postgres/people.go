package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/iomt/iomt"
)

// The people of a deployment: users, care teams, sessions, API tokens and emergency accesses
// (migration 0009). Every write is one statement, so it is atomic and durable when it returns;
// uniqueness is the tables' (two nodes creating the same login at once: one gets ErrDuplicate).

// nullTime is t for a nullable timestamptz column: NULL when zero.
func nullTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

func fromNull(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.UTC()
}

// orEmpty is a list as a NOT NULL array column takes it: pgx sends a nil slice as NULL.
func orEmpty[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

func nilIfEmpty[T any](s []T) []T {
	if len(s) == 0 {
		return nil
	}
	return s
}

// noRows turns pgx.ErrNoRows into iomt.ErrNotFound.
func noRows(ctx context.Context, op string, err error) error {
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("postgres: %s: %w", op, iomt.ErrNotFound)
	}
	return wrap(ctx, op, err)
}

const userCols = `id, tenant, login, name, roles, disabled, password_hash, totp_secret, totp_step, coalesce(issuer, ''), coalesce(subject, ''),
	failed_sign_ins, locked_until, created_at, updated_at`

func scanUser(row pgx.Row, u *iomt.User) error {
	var roles []string
	var locked, updated *time.Time
	if err := row.Scan(&u.ID, &u.Tenant, &u.Login, &u.Name, &roles, &u.Disabled, &u.PasswordHash, &u.TOTPSecret, &u.TOTPStep, &u.Issuer, &u.Subject,
		&u.FailedSignIns, &locked, &u.CreatedAt, &updated); err != nil {
		return err
	}
	u.Roles = make([]iomt.Role, len(roles))
	for i, r := range roles {
		u.Roles[i] = iomt.Role(r)
	}
	u.LockedUntil, u.UpdatedAt, u.CreatedAt = fromNull(locked), fromNull(updated), u.CreatedAt.UTC()
	return nil
}

func roleStrings(rs []iomt.Role) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = string(r)
	}
	return out
}

// userDuplicate names what a unique violation on users was about.
func userDuplicate(err error, u iomt.User, tenant string) error {
	switch constraint(err) {
	case "users_tenant_login_key":
		return duplicate(err, fmt.Sprintf("tenant %q already has a user with login %q", tenant, u.Login))
	case "users_tenant_oidc_key":
		return duplicate(err, fmt.Sprintf("tenant %q already has a user for subject %q of issuer %q", tenant, u.Subject, u.Issuer))
	}
	return duplicate(err, fmt.Sprintf("user %q exists", u.ID))
}

// CreateUser implements iomt.IdentityStore.
func (s *Store) CreateUser(ctx context.Context, u iomt.User) error {
	if err := ctxErr(ctx, "create user"); err != nil {
		return err
	}
	if err := iomt.CheckUser(u); err != nil {
		return fmt.Errorf("postgres: create user: %w", err)
	}
	if u.CreatedAt.IsZero() {
		u.CreatedAt = time.Now()
	}
	u.LockedUntil, u.CreatedAt, u.UpdatedAt = iomt.StoredTime(u.LockedUntil), iomt.StoredTime(u.CreatedAt), iomt.StoredTime(u.UpdatedAt)
	if err := iomt.CheckTimes("user", u.LockedUntil, u.CreatedAt, u.UpdatedAt); err != nil {
		return fmt.Errorf("postgres: create user: %w", err)
	}
	if !s.enter() {
		return fmt.Errorf("postgres: create user: %w", errClosed)
	}
	defer s.leave()
	_, err := s.pool.Exec(ctx, `INSERT INTO users (id, tenant, login, login_key, name, roles, disabled, password_hash, totp_secret,
		issuer, subject, failed_sign_ins, locked_until, created_at, updated_at, totp_step)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, NULLIF($10, ''), NULLIF($11, ''), $12, $13, $14, $15, $16)`,
		u.ID, u.Tenant, u.Login, iomt.LoginKey(u.Login), u.Name, roleStrings(u.Roles), u.Disabled, u.PasswordHash, u.TOTPSecret,
		u.Issuer, u.Subject, u.FailedSignIns, nullTime(u.LockedUntil), u.CreatedAt, nullTime(u.UpdatedAt), u.TOTPStep)
	if err != nil {
		return wrap(ctx, "create user", userDuplicate(err, u, u.Tenant))
	}
	return nil
}

// User implements iomt.IdentityStore.
func (s *Store) User(ctx context.Context, id string) (iomt.User, error) {
	if err := ctxErr(ctx, "user"); err != nil {
		return iomt.User{}, err
	}
	if err := checkText("user id", id); err != nil {
		return iomt.User{}, fmt.Errorf("postgres: user: %w", err)
	}
	if !s.enter() {
		return iomt.User{}, fmt.Errorf("postgres: user: %w", errClosed)
	}
	defer s.leave()
	var u iomt.User
	if err := scanUser(s.pool.QueryRow(ctx, `SELECT `+userCols+` FROM users WHERE id = $1`, id), &u); err != nil {
		return iomt.User{}, noRows(ctx, fmt.Sprintf("user %q", id), err)
	}
	return u, nil
}

// Users implements iomt.IdentityStore; users come ordered by ID.
func (s *Store) Users(ctx context.Context, f iomt.UserFilter) ([]iomt.User, error) {
	if err := ctxErr(ctx, "users"); err != nil {
		return nil, err
	}
	if err := checkFields("tenant", f.Tenant, "login", f.Login, "issuer", f.Issuer, "subject", f.Subject); err != nil {
		return nil, fmt.Errorf("postgres: users: %w", err)
	}
	if (f.Issuer == "") != (f.Subject == "") {
		return nil, fmt.Errorf("postgres: users: %w: issuer and subject are given together", iomt.ErrInvalid)
	}
	if !s.enter() {
		return nil, fmt.Errorf("postgres: users: %w", errClosed)
	}
	defer s.leave()
	rows, _ := s.pool.Query(ctx, `SELECT `+userCols+` FROM users
		WHERE ($1 = '' OR tenant = $1) AND ($2 = '' OR login_key = $2) AND ($3 = '' OR (issuer = $3 AND subject = $4))
		ORDER BY id LIMIT $5`, f.Tenant, iomt.LoginKey(f.Login), f.Issuer, f.Subject, limit(f.Limit))
	out := []iomt.User{}
	for rows.Next() {
		var u iomt.User
		if err := scanUser(rows, &u); err != nil {
			rows.Close()
			return nil, wrap(ctx, "users", err)
		}
		out = append(out, u)
	}
	if err := rows.Err(); err != nil {
		return nil, wrap(ctx, "users", err)
	}
	return out, nil
}

// UpdateUser implements iomt.IdentityStore.
func (s *Store) UpdateUser(ctx context.Context, u iomt.User) error {
	if err := ctxErr(ctx, "update user"); err != nil {
		return err
	}
	// The tenant is kept, not replaced: check the rest as CreateUser does.
	c := u
	c.Tenant = "kept"
	if err := iomt.CheckUser(c); err != nil {
		return fmt.Errorf("postgres: update user: %w", err)
	}
	if u.UpdatedAt.IsZero() {
		u.UpdatedAt = time.Now()
	}
	u.LockedUntil, u.UpdatedAt = iomt.StoredTime(u.LockedUntil), iomt.StoredTime(u.UpdatedAt)
	if err := iomt.CheckTimes("user", u.LockedUntil, u.UpdatedAt); err != nil {
		return fmt.Errorf("postgres: update user: %w", err)
	}
	if !s.enter() {
		return fmt.Errorf("postgres: update user: %w", errClosed)
	}
	defer s.leave()
	var tenant string
	err := s.pool.QueryRow(ctx, `UPDATE users SET login = $2, login_key = $3, name = $4, roles = $5, disabled = $6, password_hash = $7,
		totp_secret = $8, issuer = NULLIF($9, ''), subject = NULLIF($10, ''), failed_sign_ins = $11, locked_until = $12, updated_at = $13,
		totp_step = $14
		WHERE id = $1 RETURNING tenant`,
		u.ID, u.Login, iomt.LoginKey(u.Login), u.Name, roleStrings(u.Roles), u.Disabled, u.PasswordHash,
		u.TOTPSecret, u.Issuer, u.Subject, u.FailedSignIns, nullTime(u.LockedUntil), u.UpdatedAt, u.TOTPStep).Scan(&tenant)
	if err != nil {
		if sqlState(err) == stateUniqueViolation {
			// The statement failed, so RETURNING said nothing: name the tenant by asking.
			_ = s.pool.QueryRow(ctx, `SELECT tenant FROM users WHERE id = $1`, u.ID).Scan(&tenant)
			return wrap(ctx, "update user", userDuplicate(err, u, tenant))
		}
		return noRows(ctx, fmt.Sprintf("update user %q", u.ID), err)
	}
	return nil
}

// SaveCareTeam implements iomt.IdentityStore.
func (s *Store) SaveCareTeam(ctx context.Context, t iomt.CareTeam) error {
	if err := ctxErr(ctx, "save care team"); err != nil {
		return err
	}
	if err := iomt.CheckCareTeam(t); err != nil {
		return fmt.Errorf("postgres: save care team: %w", err)
	}
	if t.UpdatedAt.IsZero() {
		t.UpdatedAt = time.Now()
	}
	t.UpdatedAt = iomt.StoredTime(t.UpdatedAt)
	if err := iomt.CheckTimes("care team", t.UpdatedAt); err != nil {
		return fmt.Errorf("postgres: save care team: %w", err)
	}
	if !s.enter() {
		return fmt.Errorf("postgres: save care team: %w", errClosed)
	}
	defer s.leave()
	tag, err := s.pool.Exec(ctx, `INSERT INTO care_teams AS c (id, tenant, name, members, patients, locations, sso_members, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
		ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, members = EXCLUDED.members, patients = EXCLUDED.patients,
			locations = EXCLUDED.locations, sso_members = EXCLUDED.sso_members, updated_at = EXCLUDED.updated_at
		WHERE c.tenant = EXCLUDED.tenant`,
		t.ID, t.Tenant, t.Name, orEmpty(t.Members), orEmpty(t.Patients), orEmpty(t.Locations), orEmpty(t.SSOMembers), t.UpdatedAt)
	if err != nil {
		return wrap(ctx, "save care team", err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("postgres: save care team: %w: care team %q belongs to another tenant", iomt.ErrDuplicate, t.ID)
	}
	return nil
}

// DeleteCareTeam implements iomt.IdentityStore.
func (s *Store) DeleteCareTeam(ctx context.Context, id string) error {
	if err := ctxErr(ctx, "delete care team"); err != nil {
		return err
	}
	if err := checkText("care team id", id); err != nil {
		return fmt.Errorf("postgres: delete care team: %w", err)
	}
	if !s.enter() {
		return fmt.Errorf("postgres: delete care team: %w", errClosed)
	}
	defer s.leave()
	tag, err := s.pool.Exec(ctx, `DELETE FROM care_teams WHERE id = $1`, id)
	if err != nil {
		return wrap(ctx, "delete care team", err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("postgres: delete care team %q: %w", id, iomt.ErrNotFound)
	}
	return nil
}

// CareTeams implements iomt.IdentityStore; teams come ordered by ID.
func (s *Store) CareTeams(ctx context.Context, f iomt.CareTeamFilter) ([]iomt.CareTeam, error) {
	if err := ctxErr(ctx, "care teams"); err != nil {
		return nil, err
	}
	if err := checkFields("tenant", f.Tenant, "member", f.Member); err != nil {
		return nil, fmt.Errorf("postgres: care teams: %w", err)
	}
	if !s.enter() {
		return nil, fmt.Errorf("postgres: care teams: %w", errClosed)
	}
	defer s.leave()
	// members @> ARRAY[member] rather than member = ANY(members): the GIN index serves it.
	rows, _ := s.pool.Query(ctx, `SELECT id, tenant, name, members, patients, locations, sso_members, updated_at FROM care_teams
		WHERE ($1 = '' OR tenant = $1) AND ($2 = '' OR members @> ARRAY[$2::text COLLATE "C"])
		ORDER BY id`, f.Tenant, f.Member)
	out := []iomt.CareTeam{}
	for rows.Next() {
		var t iomt.CareTeam
		if err := rows.Scan(&t.ID, &t.Tenant, &t.Name, &t.Members, &t.Patients, &t.Locations, &t.SSOMembers, &t.UpdatedAt); err != nil {
			rows.Close()
			return nil, wrap(ctx, "care teams", err)
		}
		t.Members, t.Patients, t.Locations, t.SSOMembers, t.UpdatedAt = nilIfEmpty(t.Members), nilIfEmpty(t.Patients), nilIfEmpty(t.Locations), nilIfEmpty(t.SSOMembers), t.UpdatedAt.UTC()
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, wrap(ctx, "care teams", err)
	}
	return out, nil
}

// SaveSession implements iomt.IdentityStore.
func (s *Store) SaveSession(ctx context.Context, ss iomt.Session) error {
	if err := ctxErr(ctx, "save session"); err != nil {
		return err
	}
	if err := iomt.CheckSession(ss); err != nil {
		return fmt.Errorf("postgres: save session: %w", err)
	}
	if ss.Created.IsZero() {
		ss.Created = time.Now()
	}
	ss.Created, ss.LastSeen, ss.Expires = iomt.StoredTime(ss.Created), iomt.StoredTime(ss.LastSeen), iomt.StoredTime(ss.Expires)
	if err := iomt.CheckTimes("session", ss.Created, ss.LastSeen, ss.Expires); err != nil {
		return fmt.Errorf("postgres: save session: %w", err)
	}
	if !s.enter() {
		return fmt.Errorf("postgres: save session: %w", errClosed)
	}
	defer s.leave()
	tag, err := s.pool.Exec(ctx, `INSERT INTO sessions AS x (id, tenant, user_id, csrf, source, method, created_at, last_seen, expires_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
		ON CONFLICT (id) DO UPDATE SET user_id = EXCLUDED.user_id, csrf = EXCLUDED.csrf, source = EXCLUDED.source,
			method = EXCLUDED.method, created_at = EXCLUDED.created_at, last_seen = EXCLUDED.last_seen, expires_at = EXCLUDED.expires_at
		WHERE x.tenant = EXCLUDED.tenant`,
		ss.ID, ss.Tenant, ss.User, ss.CSRF, ss.Source, ss.Method, ss.Created, nullTime(ss.LastSeen), ss.Expires)
	if err != nil {
		return wrap(ctx, "save session", err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("postgres: save session: %w: the session belongs to another tenant", iomt.ErrDuplicate)
	}
	return nil
}

// Session implements iomt.IdentityStore. The ID is a hash of the session token: errors do not
// repeat it.
func (s *Store) Session(ctx context.Context, id string) (iomt.Session, error) {
	if err := ctxErr(ctx, "session"); err != nil {
		return iomt.Session{}, err
	}
	if err := checkText("session id", id); err != nil {
		return iomt.Session{}, fmt.Errorf("postgres: session: %w", err)
	}
	if !s.enter() {
		return iomt.Session{}, fmt.Errorf("postgres: session: %w", errClosed)
	}
	defer s.leave()
	var ss iomt.Session
	var seen *time.Time
	err := s.pool.QueryRow(ctx, `SELECT id, tenant, user_id, csrf, source, method, created_at, last_seen, expires_at
		FROM sessions WHERE id = $1`, id).Scan(&ss.ID, &ss.Tenant, &ss.User, &ss.CSRF, &ss.Source, &ss.Method, &ss.Created, &seen, &ss.Expires)
	if err != nil {
		return iomt.Session{}, noRows(ctx, "session", err)
	}
	ss.Created, ss.LastSeen, ss.Expires = ss.Created.UTC(), fromNull(seen), ss.Expires.UTC()
	return ss, nil
}

// DeleteSessions implements iomt.IdentityStore.
func (s *Store) DeleteSessions(ctx context.Context, f iomt.SessionFilter) (int, error) {
	if err := ctxErr(ctx, "delete sessions"); err != nil {
		return 0, err
	}
	if err := checkFields("session id", f.ID, "user", f.User); err != nil {
		return 0, fmt.Errorf("postgres: delete sessions: %w", err)
	}
	if err := iomt.CheckTimes("delete sessions", f.ExpiredAt); err != nil {
		return 0, fmt.Errorf("postgres: %w", err)
	}
	if !s.enter() {
		return 0, fmt.Errorf("postgres: delete sessions: %w", errClosed)
	}
	defer s.leave()
	tag, err := s.pool.Exec(ctx, `DELETE FROM sessions
		WHERE ($1 = '' OR id = $1) AND ($2 = '' OR user_id = $2) AND ($3::timestamptz IS NULL OR expires_at <= $3)`,
		f.ID, f.User, nullTime(f.ExpiredAt))
	if err != nil {
		return 0, wrap(ctx, "delete sessions", err)
	}
	return int(tag.RowsAffected()), nil
}

// SaveAPIToken implements iomt.IdentityStore.
func (s *Store) SaveAPIToken(ctx context.Context, t iomt.APIToken) error {
	if err := ctxErr(ctx, "save API token"); err != nil {
		return err
	}
	if err := iomt.CheckAPIToken(t); err != nil {
		return fmt.Errorf("postgres: save API token: %w", err)
	}
	if t.Created.IsZero() {
		t.Created = time.Now()
	}
	t.Created, t.Expires, t.Revoked = iomt.StoredTime(t.Created), iomt.StoredTime(t.Expires), iomt.StoredTime(t.Revoked)
	if err := iomt.CheckTimes("API token", t.Created, t.Expires, t.Revoked); err != nil {
		return fmt.Errorf("postgres: save API token: %w", err)
	}
	if !s.enter() {
		return fmt.Errorf("postgres: save API token: %w", errClosed)
	}
	defer s.leave()
	tag, err := s.pool.Exec(ctx, `INSERT INTO api_tokens AS k (id, tenant, user_id, name, hash, scopes, created_at, expires_at, revoked_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
		ON CONFLICT (id) DO UPDATE SET user_id = EXCLUDED.user_id, name = EXCLUDED.name, hash = EXCLUDED.hash, scopes = EXCLUDED.scopes,
			created_at = EXCLUDED.created_at, expires_at = EXCLUDED.expires_at, revoked_at = EXCLUDED.revoked_at
		WHERE k.tenant = EXCLUDED.tenant`,
		t.ID, t.Tenant, t.User, t.Name, t.Hash, orEmpty(t.Scopes), t.Created, t.Expires, nullTime(t.Revoked))
	if err != nil {
		return wrap(ctx, "save API token", err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("postgres: save API token: %w: API token %q belongs to another tenant", iomt.ErrDuplicate, t.ID)
	}
	return nil
}

const apiTokenCols = `id, tenant, user_id, name, hash, scopes, created_at, expires_at, revoked_at`

func scanAPIToken(row pgx.Row, t *iomt.APIToken) error {
	var revoked *time.Time
	if err := row.Scan(&t.ID, &t.Tenant, &t.User, &t.Name, &t.Hash, &t.Scopes, &t.Created, &t.Expires, &revoked); err != nil {
		return err
	}
	t.Scopes, t.Created, t.Expires, t.Revoked = nilIfEmpty(t.Scopes), t.Created.UTC(), t.Expires.UTC(), fromNull(revoked)
	return nil
}

// APIToken implements iomt.IdentityStore.
func (s *Store) APIToken(ctx context.Context, id string) (iomt.APIToken, error) {
	if err := ctxErr(ctx, "API token"); err != nil {
		return iomt.APIToken{}, err
	}
	if err := checkText("API token id", id); err != nil {
		return iomt.APIToken{}, fmt.Errorf("postgres: API token: %w", err)
	}
	if !s.enter() {
		return iomt.APIToken{}, fmt.Errorf("postgres: API token: %w", errClosed)
	}
	defer s.leave()
	var t iomt.APIToken
	if err := scanAPIToken(s.pool.QueryRow(ctx, `SELECT `+apiTokenCols+` FROM api_tokens WHERE id = $1`, id), &t); err != nil {
		return iomt.APIToken{}, noRows(ctx, fmt.Sprintf("API token %q", id), err)
	}
	return t, nil
}

// APITokens implements iomt.IdentityStore; tokens come ordered by ID.
func (s *Store) APITokens(ctx context.Context, f iomt.APITokenFilter) ([]iomt.APIToken, error) {
	if err := ctxErr(ctx, "API tokens"); err != nil {
		return nil, err
	}
	if err := checkFields("tenant", f.Tenant, "user", f.User); err != nil {
		return nil, fmt.Errorf("postgres: API tokens: %w", err)
	}
	if !s.enter() {
		return nil, fmt.Errorf("postgres: API tokens: %w", errClosed)
	}
	defer s.leave()
	rows, _ := s.pool.Query(ctx, `SELECT `+apiTokenCols+` FROM api_tokens
		WHERE ($1 = '' OR tenant = $1) AND ($2 = '' OR user_id = $2) ORDER BY id`, f.Tenant, f.User)
	out := []iomt.APIToken{}
	for rows.Next() {
		var t iomt.APIToken
		if err := scanAPIToken(rows, &t); err != nil {
			rows.Close()
			return nil, wrap(ctx, "API tokens", err)
		}
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, wrap(ctx, "API tokens", err)
	}
	return out, nil
}

// SaveBreakGlass implements iomt.IdentityStore.
func (s *Store) SaveBreakGlass(ctx context.Context, b iomt.BreakGlass) error {
	if err := ctxErr(ctx, "save break-the-glass"); err != nil {
		return err
	}
	if err := iomt.CheckBreakGlass(b); err != nil {
		return fmt.Errorf("postgres: save break-the-glass: %w", err)
	}
	b.Start, b.Until = iomt.StoredTime(b.Start), iomt.StoredTime(b.Until)
	if !s.enter() {
		return fmt.Errorf("postgres: save break-the-glass: %w", errClosed)
	}
	defer s.leave()
	tag, err := s.pool.Exec(ctx, `INSERT INTO break_glass AS g (id, tenant, user_id, patient, reason, start_at, until_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7)
		ON CONFLICT (id) DO UPDATE SET user_id = EXCLUDED.user_id, patient = EXCLUDED.patient, reason = EXCLUDED.reason,
			start_at = EXCLUDED.start_at, until_at = EXCLUDED.until_at
		WHERE g.tenant = EXCLUDED.tenant`,
		b.ID, b.Tenant, b.User, b.Patient, b.Reason, b.Start, b.Until)
	if err != nil {
		return wrap(ctx, "save break-the-glass", err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("postgres: save break-the-glass: %w: break-the-glass %q belongs to another tenant", iomt.ErrDuplicate, b.ID)
	}
	return nil
}

// BreakGlasses implements iomt.IdentityStore; accesses come ordered by Start, then ID.
func (s *Store) BreakGlasses(ctx context.Context, f iomt.BreakGlassFilter) ([]iomt.BreakGlass, error) {
	if err := ctxErr(ctx, "break-the-glass list"); err != nil {
		return nil, err
	}
	if err := checkFields("tenant", f.Tenant, "user", f.User, "patient", f.Patient); err != nil {
		return nil, fmt.Errorf("postgres: break-the-glass list: %w", err)
	}
	if err := iomt.CheckTimes("break-the-glass list", f.ActiveAt, f.Since); err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	if !s.enter() {
		return nil, fmt.Errorf("postgres: break-the-glass list: %w", errClosed)
	}
	defer s.leave()
	rows, _ := s.pool.Query(ctx, `SELECT id, tenant, user_id, patient, reason, start_at, until_at FROM break_glass
		WHERE ($1 = '' OR tenant = $1) AND ($2 = '' OR user_id = $2) AND ($3 = '' OR patient = $3)
			AND ($4::timestamptz IS NULL OR (start_at <= $4 AND $4 < until_at))
			AND ($5::timestamptz IS NULL OR start_at >= $5)
		ORDER BY start_at, id`, f.Tenant, f.User, f.Patient, nullTime(f.ActiveAt), nullTime(f.Since))
	out := []iomt.BreakGlass{}
	for rows.Next() {
		var b iomt.BreakGlass
		if err := rows.Scan(&b.ID, &b.Tenant, &b.User, &b.Patient, &b.Reason, &b.Start, &b.Until); err != nil {
			rows.Close()
			return nil, wrap(ctx, "break-the-glass list", err)
		}
		b.Start, b.Until = b.Start.UTC(), b.Until.UTC()
		out = append(out, b)
	}
	if err := rows.Err(); err != nil {
		return nil, wrap(ctx, "break-the-glass list", err)
	}
	return out, nil
}

// CountFailedSignIn implements iomt.IdentityStore in one UPDATE, so failures counted on
// several nodes at once each count.
func (s *Store) CountFailedSignIn(ctx context.Context, id string, max int, lockout time.Duration, now time.Time) (iomt.User, error) {
	if err := ctxErr(ctx, "count failed sign-in"); err != nil {
		return iomt.User{}, err
	}
	if err := checkText("user id", id); err != nil {
		return iomt.User{}, fmt.Errorf("postgres: count failed sign-in: %w", err)
	}
	if !s.enter() {
		return iomt.User{}, fmt.Errorf("postgres: count failed sign-in: %w", errClosed)
	}
	defer s.leave()
	var u iomt.User
	err := scanUser(s.pool.QueryRow(ctx, `UPDATE users SET
			failed_sign_ins = CASE WHEN failed_sign_ins + 1 >= $2 THEN 0 ELSE failed_sign_ins + 1 END,
			locked_until = CASE WHEN failed_sign_ins + 1 >= $2 THEN $3 ELSE locked_until END
		WHERE id = $1 RETURNING `+userCols, id, max, iomt.StoredTime(now.Add(lockout))), &u)
	if errors.Is(err, pgx.ErrNoRows) {
		return iomt.User{}, fmt.Errorf("postgres: count failed sign-in of %q: %w", id, iomt.ErrNotFound)
	}
	if err != nil {
		return iomt.User{}, wrap(ctx, "count failed sign-in", err)
	}
	return u, nil
}
