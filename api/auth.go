package api

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"net/http"
	"strings"

	"github.com/iomt/iomt"
	"github.com/iomt/iomt/identity"
	"github.com/iomt/iomt/policy"
)

// SessionCookie holds a browser's session token (HttpOnly: page scripts never see it).
const SessionCookie = "iomt_session"

// CSRFHeader carries the session's CSRF token on cookie-authenticated writes.
const CSRFHeader = "X-CSRF-Token"

type principalKey struct{}

// PrincipalFrom returns the authenticated caller of a request's context.
func PrincipalFrom(ctx context.Context) (policy.Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(policy.Principal)
	return p, ok
}

// WithPrincipal returns ctx carrying p (handlers mounted beside the API, such as FHIR, are
// handed requests already authenticated this way).
func WithPrincipal(ctx context.Context, p policy.Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// bearer extracts a bearer token from the Authorization header.
func bearer(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || tok == "" {
		return "", false
	}
	return strings.TrimSpace(tok), true
}

// authError is why a request's credentials were refused; status 0 means none were sent.
type authError struct {
	status int
	reason string
}

var errNoCredentials = errors.New("no credentials")

// authenticate establishes who is calling from a session cookie or a bearer credential (an
// API token, a JWT from the identity provider, or the bootstrap token). A request with no
// credentials gets errNoCredentials; one with bad credentials an authError. Cookie-
// authenticated writes must carry the session's CSRF token.
func (s *Server) authenticate(r *http.Request) (policy.Principal, *iomt.Session, error) {
	if tok, ok := bearer(r); ok {
		p, err := s.authenticateBearer(r.Context(), tok)
		return p, nil, err
	}
	c, err := r.Cookie(SessionCookie)
	if err != nil || c.Value == "" {
		return policy.Principal{}, nil, errNoCredentials
	}
	if s.Identity == nil {
		return policy.Principal{}, nil, &authError{http.StatusUnauthorized, "sessions are not available on this node"}
	}
	u, sess, err := s.Identity.Authenticate(r.Context(), c.Value)
	if err != nil {
		if errors.Is(err, identity.ErrExpired) || errors.Is(err, identity.ErrDisabled) {
			return policy.Principal{}, nil, sessionEnded{&authError{http.StatusUnauthorized, err.Error()}}
		}
		return policy.Principal{}, nil, err
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead && !identity.CheckCSRF(sess, r.Header.Get(CSRFHeader)) {
		return policy.Principal{}, nil, &authError{http.StatusForbidden, "missing or wrong " + CSRFHeader + " header: a write from a signed-in browser must echo its session's CSRF token"}
	}
	return identity.Principal(u, policy.KindUser, sess.ID[:16]), &sess, nil
}

func (s *Server) authenticateBearer(ctx context.Context, tok string) (policy.Principal, error) {
	if s.bootstrap != nil {
		got := sha256.Sum256([]byte(tok))
		if subtle.ConstantTimeCompare(got[:], s.bootstrap) == 1 {
			return policy.Principal{Kind: policy.KindBootstrap, ID: "bootstrap", Tenant: iomt.DefaultTenant, Name: "bootstrap",
				Roles: []iomt.Role{iomt.RoleAdmin, iomt.RoleClinician, iomt.RoleAuditor}}, nil
		}
	}
	if identity.IsAPIToken(tok) && s.Identity != nil {
		p, err := s.Identity.AuthenticateToken(ctx, tok)
		if errors.Is(err, identity.ErrBadToken) || errors.Is(err, identity.ErrDisabled) {
			return p, &authError{http.StatusUnauthorized, err.Error()}
		}
		return p, err
	}
	if s.VerifyJWT != nil && strings.Count(tok, ".") == 2 {
		p, err := s.VerifyJWT(ctx, tok)
		if err != nil {
			return p, &authError{http.StatusUnauthorized, "invalid access token: " + err.Error()}
		}
		return p, nil
	}
	return policy.Principal{}, &authError{http.StatusUnauthorized, "invalid bearer token"}
}

func (e *authError) Error() string { return e.reason }

// sessionEnded refuses the cookie of a session that ended (signed out, idle, past its
// lifetime, its user disabled). It is not a guess, so it is not counted against the address:
// a dashboard tab sends a few requests with its cookie before it notices, and a workstation
// with several tabs open would otherwise be refused everything after one sign-out.
type sessionEnded struct{ *authError }

func (e sessionEnded) Unwrap() error { return e.authError }
