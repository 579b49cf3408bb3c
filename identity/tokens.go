package identity

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/iomt/iomt"
	"github.com/iomt/iomt/policy"
)

// tokenPrefix marks iomt's API tokens, so secret scanners and people recognise one.
const tokenPrefix = "iomt_"

// MaxTokenLifetime bounds how long an API token may live: a year, so none is forgotten.
const MaxTokenLifetime = 366 * 24 * time.Hour

// IssueToken creates an API token for a service account, scoped with SMART v2 scopes and
// expiring after ttl. The secret is returned once; only its hash is stored.
func (s *Service) IssueToken(ctx context.Context, userID, name string, scopes []string, ttl time.Duration) (string, iomt.APIToken, error) {
	u, err := s.store.User(ctx, userID)
	if err != nil {
		return "", iomt.APIToken{}, fmt.Errorf("identity: user %q: %w", userID, err)
	}
	if !u.HasRole(iomt.RoleService) {
		return "", iomt.APIToken{}, fmt.Errorf("%w: API tokens are for service accounts, and %q does not hold the service role", iomt.ErrInvalid, u.Login)
	}
	if len(scopes) == 0 {
		return "", iomt.APIToken{}, fmt.Errorf("%w: a token needs at least one scope, such as system/Observation.rs", iomt.ErrInvalid)
	}
	for _, sc := range scopes {
		// An iomt token holds resource scopes only: anything else would be kept and do nothing.
		if _, err := policy.ParseScope(sc); err != nil {
			return "", iomt.APIToken{}, fmt.Errorf("%w: %w", iomt.ErrInvalid, err)
		}
	}
	if ttl <= 0 || ttl > MaxTokenLifetime {
		return "", iomt.APIToken{}, fmt.Errorf("%w: a token's lifetime must be between 1 s and %s, got %s", iomt.ErrInvalid, MaxTokenLifetime, ttl)
	}
	if err := iomt.CheckText("token name", name, iomt.MaxNameLen); err != nil {
		return "", iomt.APIToken{}, err
	}
	id, err := iomt.NewID()
	if err != nil {
		return "", iomt.APIToken{}, err
	}
	secret, err := randomToken(32)
	if err != nil {
		return "", iomt.APIToken{}, err
	}
	h := sha256.Sum256([]byte(secret))
	now := s.now()
	t := iomt.APIToken{ID: id, Tenant: u.Tenant, User: u.ID, Name: name, Hash: h[:], Scopes: scopes, Created: now, Expires: now.Add(ttl)}
	if err := s.store.SaveAPIToken(ctx, t); err != nil {
		return "", iomt.APIToken{}, fmt.Errorf("identity: save token: %w", err)
	}
	return tokenPrefix + id + "." + secret, t, nil
}

// IsAPIToken reports whether a bearer credential looks like one of iomt's API tokens (and
// not a JWT from an identity provider).
func IsAPIToken(raw string) bool { return strings.HasPrefix(raw, tokenPrefix) }

// RevokeToken ends a token at once on this node, within CacheTTL on the others.
func (s *Service) RevokeToken(ctx context.Context, id string) (iomt.APIToken, error) {
	t, err := s.store.APIToken(ctx, id)
	if err != nil {
		return t, fmt.Errorf("identity: token %q: %w", id, err)
	}
	if t.Revoked.IsZero() {
		t.Revoked = s.now()
		if err := s.store.SaveAPIToken(ctx, t); err != nil {
			return t, fmt.Errorf("identity: revoke token: %w", err)
		}
	}
	s.mu.Lock()
	delete(s.tokens, id)
	s.mu.Unlock()
	return t, nil
}

// AuthenticateToken returns the principal of an API token, its scopes applied.
func (s *Service) AuthenticateToken(ctx context.Context, raw string) (policy.Principal, error) {
	rest, ok := strings.CutPrefix(raw, tokenPrefix)
	id, secret, ok2 := strings.Cut(rest, ".")
	if !ok || !ok2 || id == "" || secret == "" {
		return policy.Principal{}, ErrBadToken
	}
	now := s.now()
	s.mu.Lock()
	c, cached := s.tokens[id]
	s.mu.Unlock()
	if !cached || now.Sub(c.read) >= s.cfg.CacheTTL {
		t, err := s.store.APIToken(ctx, id)
		if errors.Is(err, iomt.ErrNotFound) {
			return policy.Principal{}, ErrBadToken
		}
		if err != nil {
			return policy.Principal{}, fmt.Errorf("identity: read token: %w", err)
		}
		scopes, err := policy.ParseScopes(strings.Join(t.Scopes, " "))
		if err != nil {
			return policy.Principal{}, fmt.Errorf("identity: token %s has unreadable scopes: %w", id, err)
		}
		c = cachedToken{t: t, scopes: scopes, read: now}
		s.mu.Lock()
		if len(s.tokens) > 100000 {
			clear(s.tokens)
		}
		s.tokens[id] = c
		s.mu.Unlock()
	}
	t := c.t
	h := sha256.Sum256([]byte(secret))
	if subtle.ConstantTimeCompare(h[:], t.Hash) != 1 || !t.Active(now) {
		return policy.Principal{}, ErrBadToken
	}
	u, err := s.user(ctx, t.User, now)
	if err != nil {
		return policy.Principal{}, err
	}
	if u.Disabled {
		return policy.Principal{}, ErrDisabled
	}
	p := Principal(u, policy.KindToken, t.ID)
	p.Scopes = c.scopes
	return p, nil
}
