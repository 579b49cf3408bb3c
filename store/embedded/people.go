package embedded

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"
	"unicode/utf8"

	"github.com/cockroachdb/pebble/v2"

	"github.com/iomt/iomt"
)

// Identity keys all start with 'I' (see keys.go), so that they lie together and apart from
// the registry's. Users and care teams are few and change rarely: their writes take idMu,
// which also makes the uniqueness checks and the replace-keeps-the-tenant check atomic.
// Sessions change at every sign-in and are saved concurrently: their writes take one lock per
// stripe of session IDs, so that saves of different sessions share Pebble's fsync. API tokens
// and emergency accesses are a deployment's few hundred or thousand: lists scan and filter
// them in memory.

const sessionStripes = 64

func idKey(kind byte, parts ...string) []byte {
	return append([]byte{'I'}, strKey(kind, parts...)...)
}

// expiryKey is 'I' 'e' expires (Unix ms, sortable BE) id.
func expiryKey(expires time.Time, id string) []byte {
	k := append([]byte{'I', 'e'}, u64(sortable(expires.UnixMilli()))...)
	return append(k, id...)
}

// userRecord is how a user is kept: iomt.User hides its secrets from JSON.
type userRecord struct {
	ID            string      `json:"id"`
	Tenant        string      `json:"tenant"`
	Login         string      `json:"login"`
	Name          string      `json:"name,omitempty"`
	Roles         []iomt.Role `json:"roles"`
	Disabled      bool        `json:"disabled,omitempty"`
	PasswordHash  string      `json:"passwordHash,omitempty"`
	TOTPSecret    string      `json:"totpSecret,omitempty"`
	TOTPStep      int64       `json:"totpStep,omitempty"`
	Issuer        string      `json:"issuer,omitempty"`
	Subject       string      `json:"subject,omitempty"`
	FailedSignIns int         `json:"failedSignIns,omitempty"`
	LockedUntil   time.Time   `json:"lockedUntil,omitzero"`
	CreatedAt     time.Time   `json:"createdAt"`
	UpdatedAt     time.Time   `json:"updatedAt,omitzero"`
}

type careTeamRecord struct {
	ID        string   `json:"id"`
	Tenant    string   `json:"tenant"`
	Name      string   `json:"name,omitempty"`
	Members   []string `json:"members,omitempty"`
	Patients  []string `json:"patients,omitempty"`
	Locations []string `json:"locations,omitempty"`
	// SSOMembers: absent in records written before single sign-on kept them, read as none.
	SSOMembers []string  `json:"ssoMembers,omitempty"`
	UpdatedAt  time.Time `json:"updatedAt"`
}

type sessionRecord struct {
	ID       string    `json:"id"`
	Tenant   string    `json:"tenant"`
	User     string    `json:"user"`
	CSRF     string    `json:"csrf,omitempty"`
	Source   string    `json:"source,omitempty"`
	Method   string    `json:"method"`
	Created  time.Time `json:"created"`
	LastSeen time.Time `json:"lastSeen,omitzero"`
	Expires  time.Time `json:"expires"`
}

type apiTokenRecord struct {
	ID      string    `json:"id"`
	Tenant  string    `json:"tenant"`
	User    string    `json:"user"`
	Name    string    `json:"name,omitempty"`
	Hash    []byte    `json:"hash"`
	Scopes  []string  `json:"scopes,omitempty"`
	Created time.Time `json:"created"`
	Expires time.Time `json:"expires"`
	Revoked time.Time `json:"revoked,omitzero"`
}

type breakGlassRecord struct {
	ID      string    `json:"id"`
	Tenant  string    `json:"tenant"`
	User    string    `json:"user"`
	Patient string    `json:"patient"`
	Reason  string    `json:"reason"`
	Start   time.Time `json:"start"`
	Until   time.Time `json:"until"`
}

// checkLookup refuses a key or filter no stored record can match: a NUL byte would also
// break the index keys' separators.
func checkLookup(fields ...string) error {
	for i := 0; i+1 < len(fields); i += 2 {
		v := fields[i+1]
		if !utf8.ValidString(v) {
			return fmt.Errorf("%w: %s is not valid UTF-8", iomt.ErrInvalid, fields[i])
		}
		if bytes.IndexByte([]byte(v), 0) >= 0 {
			return fmt.Errorf("%w: %s contains a NUL byte", iomt.ErrInvalid, fields[i])
		}
	}
	return nil
}

func (s *Store) commitSync(b *pebble.Batch) error { return b.Commit(pebble.Sync) }

// scanIdentity calls fn with each record of kind rec in ID order; with scope set it walks the
// index of kind idx ('I' idx scope 0 id) instead.
func (s *Store) scanIdentity(ctx context.Context, rec, idx byte, scope string, fn func(v []byte) (stop bool, err error)) error {
	lo := idKey(rec)
	if scope != "" {
		lo = append(idKey(idx, scope), 0)
	}
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: prefixEnd(lo)})
	if err != nil {
		return err
	}
	defer it.Close()
	for it.First(); it.Valid(); it.Next() {
		if err := ctx.Err(); err != nil {
			return err
		}
		var v []byte
		if scope != "" {
			b, closer, err := s.db.Get(idKey(rec, string(it.Key()[len(lo):])))
			if errors.Is(err, pebble.ErrNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			v = append([]byte(nil), b...)
			closer.Close()
		} else if v, err = it.ValueAndErr(); err != nil {
			return err
		}
		stop, err := fn(v)
		if err != nil || stop {
			return err
		}
	}
	return it.Error()
}

// indexed returns the value of an index key, or "" when there is none.
func (s *Store) indexed(key []byte) (string, error) {
	v, closer, err := s.db.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	defer closer.Close()
	return string(v), nil
}

func loginKey(u iomt.User) []byte { return idKey('l', u.Tenant, iomt.LoginKey(u.Login)) }

func oidcKey(u iomt.User) []byte { return idKey('o', u.Tenant, u.Issuer, u.Subject) }

// checkUserUnique refuses a login or OpenID Connect identity that a user other than u holds.
// s.idMu is held.
func (s *Store) checkUserUnique(u iomt.User) error {
	if id, err := s.indexed(loginKey(u)); err != nil {
		return err
	} else if id != "" && id != u.ID {
		return fmt.Errorf("%w: tenant %q already has a user with login %q", iomt.ErrDuplicate, u.Tenant, u.Login)
	}
	if u.Subject == "" {
		return nil
	}
	if id, err := s.indexed(oidcKey(u)); err != nil {
		return err
	} else if id != "" && id != u.ID {
		return fmt.Errorf("%w: tenant %q already has a user for subject %q of issuer %q", iomt.ErrDuplicate, u.Tenant, u.Subject, u.Issuer)
	}
	return nil
}

func normUser(u iomt.User) iomt.User {
	u.LockedUntil, u.CreatedAt, u.UpdatedAt = iomt.StoredTime(u.LockedUntil), iomt.StoredTime(u.CreatedAt), iomt.StoredTime(u.UpdatedAt)
	return u
}

func (s *Store) putUser(b *pebble.Batch, u iomt.User) error {
	v, err := json.Marshal(userRecord(u))
	if err != nil {
		return err
	}
	_ = b.Set(idKey('u', u.ID), v, nil)
	return nil
}

// CreateUser implements iomt.IdentityStore; it returns when the user is on stable storage.
func (s *Store) CreateUser(ctx context.Context, u iomt.User) error {
	if err := ctxErr(ctx, "create user"); err != nil {
		return err
	}
	if err := iomt.CheckUser(u); err != nil {
		return fmt.Errorf("embedded: create user: %w", err)
	}
	if u.CreatedAt.IsZero() {
		u.CreatedAt = time.Now()
	}
	u = normUser(u)
	if err := iomt.CheckTimes("user", u.LockedUntil, u.CreatedAt, u.UpdatedAt); err != nil {
		return fmt.Errorf("embedded: create user: %w", err)
	}
	if !s.enter() {
		return fmt.Errorf("embedded: create user: %w", errClosed)
	}
	defer s.leave()
	s.idMu.Lock()
	defer s.idMu.Unlock()
	if ok, err := s.exists(idKey('u', u.ID)); err != nil || ok {
		if err == nil {
			err = fmt.Errorf("%w: user %q exists", iomt.ErrDuplicate, u.ID)
		}
		return fmt.Errorf("embedded: create user: %w", err)
	}
	if err := s.checkUserUnique(u); err != nil {
		return fmt.Errorf("embedded: create user: %w", err)
	}
	b := s.db.NewBatch()
	defer b.Close()
	if err := s.putUser(b, u); err != nil {
		return fmt.Errorf("embedded: create user: %w", err)
	}
	_ = b.Set(idKey('U', u.Tenant, u.ID), nil, nil)
	_ = b.Set(loginKey(u), []byte(u.ID), nil)
	if u.Subject != "" {
		_ = b.Set(oidcKey(u), []byte(u.ID), nil)
	}
	if err := s.commitSync(b); err != nil {
		return fmt.Errorf("embedded: create user: %w", err)
	}
	return nil
}

// User implements iomt.IdentityStore.
func (s *Store) User(ctx context.Context, id string) (iomt.User, error) {
	if err := ctxErr(ctx, "user"); err != nil {
		return iomt.User{}, err
	}
	if err := checkLookup("user id", id); err != nil {
		return iomt.User{}, fmt.Errorf("embedded: user: %w", err)
	}
	if !s.enter() {
		return iomt.User{}, fmt.Errorf("embedded: user: %w", errClosed)
	}
	defer s.leave()
	var r userRecord
	if err := s.getJSON(idKey('u', id), &r); err != nil {
		return iomt.User{}, fmt.Errorf("embedded: user %q: %w", id, err)
	}
	return iomt.User(r), nil
}

// Users implements iomt.IdentityStore; users come ordered by ID.
func (s *Store) Users(ctx context.Context, f iomt.UserFilter) ([]iomt.User, error) {
	if err := ctxErr(ctx, "users"); err != nil {
		return nil, err
	}
	if err := checkLookup("tenant", f.Tenant, "login", f.Login, "issuer", f.Issuer, "subject", f.Subject); err != nil {
		return nil, fmt.Errorf("embedded: users: %w", err)
	}
	if (f.Issuer == "") != (f.Subject == "") {
		return nil, fmt.Errorf("embedded: users: %w: issuer and subject are given together", iomt.ErrInvalid)
	}
	if !s.enter() {
		return nil, fmt.Errorf("embedded: users: %w", errClosed)
	}
	defer s.leave()
	out := []iomt.User{}
	match := func(u iomt.User) bool {
		return (f.Tenant == "" || u.Tenant == f.Tenant) &&
			(f.Login == "" || iomt.LoginKey(u.Login) == iomt.LoginKey(f.Login)) &&
			(f.Subject == "" || (u.Issuer == f.Issuer && u.Subject == f.Subject))
	}
	// A login or OpenID identity within a tenant names at most one user: look it up.
	var key []byte
	switch {
	case f.Tenant != "" && f.Login != "":
		key = loginKey(iomt.User{Tenant: f.Tenant, Login: f.Login})
	case f.Tenant != "" && f.Subject != "":
		key = oidcKey(iomt.User{Tenant: f.Tenant, Issuer: f.Issuer, Subject: f.Subject})
	}
	if key != nil {
		id, err := s.indexed(key)
		if err != nil {
			return nil, fmt.Errorf("embedded: users: %w", err)
		}
		if id == "" {
			return out, nil
		}
		var r userRecord
		if err := s.getJSON(idKey('u', id), &r); err != nil {
			return nil, fmt.Errorf("embedded: users: user %q: %w", id, err)
		}
		if u := iomt.User(r); match(u) {
			out = append(out, u)
		}
		return out, nil
	}
	err := s.scanIdentity(ctx, 'u', 'U', f.Tenant, func(v []byte) (bool, error) {
		var r userRecord
		if err := json.Unmarshal(v, &r); err != nil {
			return false, err
		}
		if u := iomt.User(r); match(u) {
			out = append(out, u)
		}
		return f.Limit > 0 && len(out) >= f.Limit, nil
	})
	if err != nil {
		return nil, fmt.Errorf("embedded: users: %w", err)
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
		return fmt.Errorf("embedded: update user: %w", err)
	}
	if !s.enter() {
		return fmt.Errorf("embedded: update user: %w", errClosed)
	}
	defer s.leave()
	s.idMu.Lock()
	defer s.idMu.Unlock()
	var old userRecord
	if err := s.getJSON(idKey('u', u.ID), &old); err != nil {
		return fmt.Errorf("embedded: update user %q: %w", u.ID, err)
	}
	u.Tenant, u.CreatedAt = old.Tenant, old.CreatedAt
	if u.UpdatedAt.IsZero() {
		u.UpdatedAt = time.Now()
	}
	u = normUser(u)
	if err := iomt.CheckTimes("user", u.LockedUntil, u.UpdatedAt); err != nil {
		return fmt.Errorf("embedded: update user: %w", err)
	}
	if err := s.checkUserUnique(u); err != nil {
		return fmt.Errorf("embedded: update user: %w", err)
	}
	prev := iomt.User(old)
	b := s.db.NewBatch()
	defer b.Close()
	if err := s.putUser(b, u); err != nil {
		return fmt.Errorf("embedded: update user: %w", err)
	}
	if !bytes.Equal(loginKey(prev), loginKey(u)) {
		_ = b.Delete(loginKey(prev), nil)
		_ = b.Set(loginKey(u), []byte(u.ID), nil)
	}
	if prev.Subject != "" && (prev.Issuer != u.Issuer || prev.Subject != u.Subject) {
		_ = b.Delete(oidcKey(prev), nil)
	}
	if u.Subject != "" {
		_ = b.Set(oidcKey(u), []byte(u.ID), nil)
	}
	if err := s.commitSync(b); err != nil {
		return fmt.Errorf("embedded: update user: %w", err)
	}
	return nil
}

// SaveCareTeam implements iomt.IdentityStore.
func (s *Store) SaveCareTeam(ctx context.Context, t iomt.CareTeam) error {
	if err := ctxErr(ctx, "save care team"); err != nil {
		return err
	}
	if err := iomt.CheckCareTeam(t); err != nil {
		return fmt.Errorf("embedded: save care team: %w", err)
	}
	if t.UpdatedAt.IsZero() {
		t.UpdatedAt = time.Now()
	}
	t.UpdatedAt = iomt.StoredTime(t.UpdatedAt)
	if err := iomt.CheckTimes("care team", t.UpdatedAt); err != nil {
		return fmt.Errorf("embedded: save care team: %w", err)
	}
	v, err := json.Marshal(careTeamRecord(t))
	if err != nil {
		return fmt.Errorf("embedded: save care team: %w", err)
	}
	if !s.enter() {
		return fmt.Errorf("embedded: save care team: %w", errClosed)
	}
	defer s.leave()
	s.idMu.Lock()
	defer s.idMu.Unlock()
	var old careTeamRecord
	switch err := s.getJSON(idKey('t', t.ID), &old); {
	case errors.Is(err, iomt.ErrNotFound):
	case err != nil:
		return fmt.Errorf("embedded: save care team: %w", err)
	case old.Tenant != t.Tenant:
		return fmt.Errorf("embedded: save care team: %w: care team %q belongs to another tenant", iomt.ErrDuplicate, t.ID)
	}
	b := s.db.NewBatch()
	defer b.Close()
	_ = b.Set(idKey('t', t.ID), v, nil)
	_ = b.Set(idKey('T', t.Tenant, t.ID), nil, nil)
	for _, m := range old.Members {
		if !slices.Contains(t.Members, m) {
			_ = b.Delete(idKey('m', m, t.ID), nil)
		}
	}
	for _, m := range t.Members {
		_ = b.Set(idKey('m', m, t.ID), nil, nil)
	}
	if err := s.commitSync(b); err != nil {
		return fmt.Errorf("embedded: save care team: %w", err)
	}
	return nil
}

// DeleteCareTeam implements iomt.IdentityStore.
func (s *Store) DeleteCareTeam(ctx context.Context, id string) error {
	if err := ctxErr(ctx, "delete care team"); err != nil {
		return err
	}
	if err := checkLookup("care team id", id); err != nil {
		return fmt.Errorf("embedded: delete care team: %w", err)
	}
	if !s.enter() {
		return fmt.Errorf("embedded: delete care team: %w", errClosed)
	}
	defer s.leave()
	s.idMu.Lock()
	defer s.idMu.Unlock()
	var old careTeamRecord
	if err := s.getJSON(idKey('t', id), &old); err != nil {
		return fmt.Errorf("embedded: delete care team %q: %w", id, err)
	}
	b := s.db.NewBatch()
	defer b.Close()
	_ = b.Delete(idKey('t', id), nil)
	_ = b.Delete(idKey('T', old.Tenant, id), nil)
	for _, m := range old.Members {
		_ = b.Delete(idKey('m', m, id), nil)
	}
	if err := s.commitSync(b); err != nil {
		return fmt.Errorf("embedded: delete care team: %w", err)
	}
	return nil
}

// CareTeams implements iomt.IdentityStore; teams come ordered by ID.
func (s *Store) CareTeams(ctx context.Context, f iomt.CareTeamFilter) ([]iomt.CareTeam, error) {
	if err := ctxErr(ctx, "care teams"); err != nil {
		return nil, err
	}
	if err := checkLookup("tenant", f.Tenant, "member", f.Member); err != nil {
		return nil, fmt.Errorf("embedded: care teams: %w", err)
	}
	if !s.enter() {
		return nil, fmt.Errorf("embedded: care teams: %w", errClosed)
	}
	defer s.leave()
	idx, scope := byte('T'), f.Tenant
	if f.Member != "" {
		idx, scope = 'm', f.Member
	}
	out := []iomt.CareTeam{}
	err := s.scanIdentity(ctx, 't', idx, scope, func(v []byte) (bool, error) {
		var r careTeamRecord
		if err := json.Unmarshal(v, &r); err != nil {
			return false, err
		}
		if (f.Tenant == "" || r.Tenant == f.Tenant) && (f.Member == "" || slices.Contains(r.Members, f.Member)) {
			out = append(out, iomt.CareTeam(r))
		}
		return false, nil
	})
	if err != nil {
		return nil, fmt.Errorf("embedded: care teams: %w", err)
	}
	return out, nil
}

// lockSessions takes the stripe locks of the session IDs, in stripe order, and returns the
// function that releases them.
func (s *Store) lockSessions(ids ...string) func() {
	stripes := make([]int, 0, len(ids))
	for _, id := range ids {
		stripes = append(stripes, iomt.Partition(id, sessionStripes))
	}
	slices.Sort(stripes)
	stripes = slices.Compact(stripes)
	for _, i := range stripes {
		s.sessMu[i].Lock()
	}
	return func() {
		for _, i := range stripes {
			s.sessMu[i].Unlock()
		}
	}
}

// SaveSession implements iomt.IdentityStore.
func (s *Store) SaveSession(ctx context.Context, ss iomt.Session) error {
	if err := ctxErr(ctx, "save session"); err != nil {
		return err
	}
	if err := iomt.CheckSession(ss); err != nil {
		return fmt.Errorf("embedded: save session: %w", err)
	}
	if ss.Created.IsZero() {
		ss.Created = time.Now()
	}
	ss.Created, ss.LastSeen, ss.Expires = iomt.StoredTime(ss.Created), iomt.StoredTime(ss.LastSeen), iomt.StoredTime(ss.Expires)
	if err := iomt.CheckTimes("session", ss.Created, ss.LastSeen, ss.Expires); err != nil {
		return fmt.Errorf("embedded: save session: %w", err)
	}
	v, err := json.Marshal(sessionRecord(ss))
	if err != nil {
		return fmt.Errorf("embedded: save session: %w", err)
	}
	if !s.enter() {
		return fmt.Errorf("embedded: save session: %w", errClosed)
	}
	defer s.leave()
	defer s.lockSessions(ss.ID)()
	var old sessionRecord
	found := true
	switch err := s.getJSON(idKey('s', ss.ID), &old); {
	case errors.Is(err, iomt.ErrNotFound):
		found = false
	case err != nil:
		return fmt.Errorf("embedded: save session: %w", err)
	case old.Tenant != ss.Tenant:
		return fmt.Errorf("embedded: save session: %w: the session belongs to another tenant", iomt.ErrDuplicate)
	}
	b := s.db.NewBatch()
	defer b.Close()
	if found {
		_ = b.Delete(idKey('S', old.User, old.ID), nil)
		_ = b.Delete(expiryKey(old.Expires, old.ID), nil)
	}
	_ = b.Set(idKey('s', ss.ID), v, nil)
	_ = b.Set(idKey('S', ss.User, ss.ID), nil, nil)
	_ = b.Set(expiryKey(ss.Expires, ss.ID), nil, nil)
	if err := s.commitSync(b); err != nil {
		return fmt.Errorf("embedded: save session: %w", err)
	}
	return nil
}

// Session implements iomt.IdentityStore. The ID is a hash of the session token: errors do not
// repeat it.
func (s *Store) Session(ctx context.Context, id string) (iomt.Session, error) {
	if err := ctxErr(ctx, "session"); err != nil {
		return iomt.Session{}, err
	}
	if err := checkLookup("session id", id); err != nil {
		return iomt.Session{}, fmt.Errorf("embedded: session: %w", err)
	}
	if !s.enter() {
		return iomt.Session{}, fmt.Errorf("embedded: session: %w", errClosed)
	}
	defer s.leave()
	var r sessionRecord
	if err := s.getJSON(idKey('s', id), &r); err != nil {
		return iomt.Session{}, fmt.Errorf("embedded: session: %w", err)
	}
	return iomt.Session(r), nil
}

// DeleteSessions implements iomt.IdentityStore.
func (s *Store) DeleteSessions(ctx context.Context, f iomt.SessionFilter) (int, error) {
	if err := ctxErr(ctx, "delete sessions"); err != nil {
		return 0, err
	}
	if err := checkLookup("session id", f.ID, "user", f.User); err != nil {
		return 0, fmt.Errorf("embedded: delete sessions: %w", err)
	}
	if !s.enter() {
		return 0, fmt.Errorf("embedded: delete sessions: %w", errClosed)
	}
	defer s.leave()
	// Gather the candidates from the narrowest index, then lock them and check each again:
	// a session saved meanwhile may no longer match.
	var ids []string
	var lo, hi []byte
	switch {
	case f.ID != "":
		ids = []string{f.ID}
	case f.User != "":
		lo = append(idKey('S', f.User), 0)
		hi = prefixEnd(lo)
	case !f.ExpiredAt.IsZero():
		lo = []byte{'I', 'e'}
		hi = expiryKey(time.UnixMilli(f.ExpiredAt.UnixMilli()+1), "")
	default:
		lo = idKey('s')
		hi = prefixEnd(lo)
	}
	if lo != nil {
		it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
		if err != nil {
			return 0, fmt.Errorf("embedded: delete sessions: %w", err)
		}
		skip := len(lo)
		if lo[1] == 'e' {
			skip = 2 + 8
		}
		for it.First(); it.Valid(); it.Next() {
			ids = append(ids, string(it.Key()[skip:]))
		}
		if err := cmp.Or(it.Error(), it.Close()); err != nil {
			return 0, fmt.Errorf("embedded: delete sessions: %w", err)
		}
	}
	if len(ids) == 0 {
		return 0, nil
	}
	defer s.lockSessions(ids...)()
	b := s.db.NewBatch()
	defer b.Close()
	n := 0
	for _, id := range ids {
		if err := ctx.Err(); err != nil {
			return 0, fmt.Errorf("embedded: delete sessions: %w", err)
		}
		var r sessionRecord
		switch err := s.getJSON(idKey('s', id), &r); {
		case errors.Is(err, iomt.ErrNotFound):
			continue
		case err != nil:
			return 0, fmt.Errorf("embedded: delete sessions: %w", err)
		}
		if (f.ID != "" && r.ID != f.ID) || (f.User != "" && r.User != f.User) || (!f.ExpiredAt.IsZero() && r.Expires.After(f.ExpiredAt)) {
			continue
		}
		_ = b.Delete(idKey('s', id), nil)
		_ = b.Delete(idKey('S', r.User, id), nil)
		_ = b.Delete(expiryKey(r.Expires, id), nil)
		n++
	}
	if n == 0 {
		return 0, nil
	}
	if err := s.commitSync(b); err != nil {
		return 0, fmt.Errorf("embedded: delete sessions: %w", err)
	}
	return n, nil
}

// SaveAPIToken implements iomt.IdentityStore.
func (s *Store) SaveAPIToken(ctx context.Context, t iomt.APIToken) error {
	if err := ctxErr(ctx, "save API token"); err != nil {
		return err
	}
	if err := iomt.CheckAPIToken(t); err != nil {
		return fmt.Errorf("embedded: save API token: %w", err)
	}
	if t.Created.IsZero() {
		t.Created = time.Now()
	}
	t.Created, t.Expires, t.Revoked = iomt.StoredTime(t.Created), iomt.StoredTime(t.Expires), iomt.StoredTime(t.Revoked)
	if err := iomt.CheckTimes("API token", t.Created, t.Expires, t.Revoked); err != nil {
		return fmt.Errorf("embedded: save API token: %w", err)
	}
	v, err := json.Marshal(apiTokenRecord(t))
	if err != nil {
		return fmt.Errorf("embedded: save API token: %w", err)
	}
	return s.saveTenanted(ctx, "save API token", "API token", idKey('k', t.ID), t.Tenant, v)
}

// saveTenanted writes a record of the kinds kept without indexes, unless one of another
// tenant has its key.
func (s *Store) saveTenanted(ctx context.Context, op, what string, key []byte, tenant string, v []byte) error {
	if !s.enter() {
		return fmt.Errorf("embedded: %s: %w", op, errClosed)
	}
	defer s.leave()
	s.idMu.Lock()
	defer s.idMu.Unlock()
	var old struct {
		Tenant string `json:"tenant"`
	}
	switch err := s.getJSON(key, &old); {
	case errors.Is(err, iomt.ErrNotFound):
	case err != nil:
		return fmt.Errorf("embedded: %s: %w", op, err)
	case old.Tenant != tenant:
		return fmt.Errorf("embedded: %s: %w: %s %q belongs to another tenant", op, iomt.ErrDuplicate, what, key[2:])
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("embedded: %s: %w", op, err)
	}
	if err := s.db.Set(key, v, pebble.Sync); err != nil {
		return fmt.Errorf("embedded: %s: %w", op, err)
	}
	return nil
}

// APIToken implements iomt.IdentityStore.
func (s *Store) APIToken(ctx context.Context, id string) (iomt.APIToken, error) {
	if err := ctxErr(ctx, "API token"); err != nil {
		return iomt.APIToken{}, err
	}
	if err := checkLookup("API token id", id); err != nil {
		return iomt.APIToken{}, fmt.Errorf("embedded: API token: %w", err)
	}
	if !s.enter() {
		return iomt.APIToken{}, fmt.Errorf("embedded: API token: %w", errClosed)
	}
	defer s.leave()
	var r apiTokenRecord
	if err := s.getJSON(idKey('k', id), &r); err != nil {
		return iomt.APIToken{}, fmt.Errorf("embedded: API token %q: %w", id, err)
	}
	return iomt.APIToken(r), nil
}

// APITokens implements iomt.IdentityStore; tokens come ordered by ID.
func (s *Store) APITokens(ctx context.Context, f iomt.APITokenFilter) ([]iomt.APIToken, error) {
	if err := ctxErr(ctx, "API tokens"); err != nil {
		return nil, err
	}
	if err := checkLookup("tenant", f.Tenant, "user", f.User); err != nil {
		return nil, fmt.Errorf("embedded: API tokens: %w", err)
	}
	if !s.enter() {
		return nil, fmt.Errorf("embedded: API tokens: %w", errClosed)
	}
	defer s.leave()
	out := []iomt.APIToken{}
	err := s.scanIdentity(ctx, 'k', 0, "", func(v []byte) (bool, error) {
		var r apiTokenRecord
		if err := json.Unmarshal(v, &r); err != nil {
			return false, err
		}
		if (f.Tenant == "" || r.Tenant == f.Tenant) && (f.User == "" || r.User == f.User) {
			out = append(out, iomt.APIToken(r))
		}
		return false, nil
	})
	if err != nil {
		return nil, fmt.Errorf("embedded: API tokens: %w", err)
	}
	return out, nil
}

// SaveBreakGlass implements iomt.IdentityStore.
func (s *Store) SaveBreakGlass(ctx context.Context, bg iomt.BreakGlass) error {
	if err := ctxErr(ctx, "save break-the-glass"); err != nil {
		return err
	}
	if err := iomt.CheckBreakGlass(bg); err != nil {
		return fmt.Errorf("embedded: save break-the-glass: %w", err)
	}
	bg.Start, bg.Until = iomt.StoredTime(bg.Start), iomt.StoredTime(bg.Until)
	v, err := json.Marshal(breakGlassRecord(bg))
	if err != nil {
		return fmt.Errorf("embedded: save break-the-glass: %w", err)
	}
	return s.saveTenanted(ctx, "save break-the-glass", "break-the-glass", idKey('b', bg.ID), bg.Tenant, v)
}

// BreakGlasses implements iomt.IdentityStore; accesses come ordered by Start, then ID.
func (s *Store) BreakGlasses(ctx context.Context, f iomt.BreakGlassFilter) ([]iomt.BreakGlass, error) {
	if err := ctxErr(ctx, "break-the-glass list"); err != nil {
		return nil, err
	}
	if err := checkLookup("tenant", f.Tenant, "user", f.User, "patient", f.Patient); err != nil {
		return nil, fmt.Errorf("embedded: break-the-glass list: %w", err)
	}
	if !s.enter() {
		return nil, fmt.Errorf("embedded: break-the-glass list: %w", errClosed)
	}
	defer s.leave()
	out := []iomt.BreakGlass{}
	err := s.scanIdentity(ctx, 'b', 0, "", func(v []byte) (bool, error) {
		var r breakGlassRecord
		if err := json.Unmarshal(v, &r); err != nil {
			return false, err
		}
		if (f.Tenant == "" || r.Tenant == f.Tenant) && (f.User == "" || r.User == f.User) && (f.Patient == "" || r.Patient == f.Patient) &&
			(f.ActiveAt.IsZero() || (!r.Start.After(f.ActiveAt) && f.ActiveAt.Before(r.Until))) &&
			(f.Since.IsZero() || !r.Start.Before(f.Since)) {
			out = append(out, iomt.BreakGlass(r))
		}
		return false, nil
	})
	if err != nil {
		return nil, fmt.Errorf("embedded: break-the-glass list: %w", err)
	}
	slices.SortFunc(out, func(a, b iomt.BreakGlass) int {
		return cmp.Or(a.Start.Compare(b.Start), cmp.Compare(a.ID, b.ID))
	})
	return out, nil
}

// CountFailedSignIn implements iomt.IdentityStore: the read and the write happen under the
// identity lock, so parallel failures each count.
func (s *Store) CountFailedSignIn(ctx context.Context, id string, max int, lockout time.Duration, now time.Time) (iomt.User, error) {
	if err := ctxErr(ctx, "count failed sign-in"); err != nil {
		return iomt.User{}, err
	}
	if !s.enter() {
		return iomt.User{}, fmt.Errorf("embedded: count failed sign-in: %w", errClosed)
	}
	defer s.leave()
	s.idMu.Lock()
	defer s.idMu.Unlock()
	var r userRecord
	if err := s.getJSON(idKey('u', id), &r); err != nil {
		return iomt.User{}, fmt.Errorf("embedded: count failed sign-in of %q: %w", id, err)
	}
	u := iomt.User(r)
	if u.FailedSignIns++; u.FailedSignIns >= max {
		u.FailedSignIns, u.LockedUntil = 0, iomt.StoredTime(now.Add(lockout))
	}
	b := s.db.NewBatch()
	defer b.Close()
	if err := s.putUser(b, u); err != nil {
		return iomt.User{}, fmt.Errorf("embedded: count failed sign-in: %w", err)
	}
	if err := s.commitSync(b); err != nil {
		return iomt.User{}, fmt.Errorf("embedded: count failed sign-in: %w", err)
	}
	return u, nil
}
