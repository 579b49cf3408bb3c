package oidctest

import (
	"context"
	"crypto/rsa"
	"crypto/subtle"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// This file is the provider's op.Storage: one confidential client, the users, the auth
// requests and the signing keys, in memory under Provider.mu.

var errNotFound = errors.New("oidctest: not found")

// authRequest is an authorization request, from /authorize until its code is exchanged.
type authRequest struct {
	id        string
	req       oidc.AuthRequest
	subject   string // set when the user logged in
	authTime  time.Time
	done      bool
	code      string
	createdAt time.Time
}

func (a *authRequest) GetID() string                      { return a.id }
func (a *authRequest) GetACR() string                     { return "" }
func (a *authRequest) GetAMR() []string                   { return []string{"pwd"} }
func (a *authRequest) GetAudience() []string              { return nil } // set by the provider's aud list
func (a *authRequest) GetAuthTime() time.Time             { return a.authTime }
func (a *authRequest) GetClientID() string                { return a.req.ClientID }
func (a *authRequest) GetNonce() string                   { return a.req.Nonce }
func (a *authRequest) GetRedirectURI() string             { return a.req.RedirectURI }
func (a *authRequest) GetScopes() []string                { return a.req.Scopes }
func (a *authRequest) GetState() string                   { return a.req.State }
func (a *authRequest) GetSubject() string                 { return a.subject }
func (a *authRequest) Done() bool                         { return a.done }
func (a *authRequest) GetResponseType() oidc.ResponseType { return a.req.ResponseType }
func (a *authRequest) GetResponseMode() oidc.ResponseMode { return a.req.ResponseMode }
func (a *authRequest) GetCodeChallenge() *oidc.CodeChallenge {
	if a.req.CodeChallenge == "" {
		return nil
	}
	return &oidc.CodeChallenge{Challenge: a.req.CodeChallenge, Method: a.req.CodeChallengeMethod}
}

// withAudience is an authRequest as the token endpoint sees it: with the provider's audience.
type withAudience struct {
	*authRequest
	aud []string
}

func (a withAudience) GetAudience() []string { return a.aud }

// client is the relying party registered at the provider (service false), or a service
// that gets tokens with the client credentials grant (service true).
type client struct {
	p       *Provider
	id      string
	service bool
}

func (c client) GetID() string { return c.id }
func (c client) RedirectURIs() []string {
	if c.service {
		return nil
	}
	c.p.mu.Lock()
	defer c.p.mu.Unlock()
	return slices.Clone(c.p.redirects)
}
func (c client) PostLogoutRedirectURIs() []string    { return nil }
func (c client) ApplicationType() op.ApplicationType { return op.ApplicationTypeWeb }
func (c client) AuthMethod() oidc.AuthMethod         { return oidc.AuthMethodBasic }
func (c client) ResponseTypes() []oidc.ResponseType {
	return []oidc.ResponseType{oidc.ResponseTypeCode}
}
func (c client) GrantTypes() []oidc.GrantType {
	if c.service {
		return []oidc.GrantType{oidc.GrantTypeClientCredentials}
	}
	return []oidc.GrantType{oidc.GrantTypeCode}
}
func (c client) LoginURL(id string) string            { return c.p.Issuer + LoginPath + "?authRequestID=" + id }
func (c client) AccessTokenType() op.AccessTokenType  { return op.AccessTokenTypeJWT }
func (c client) IDTokenLifetime() time.Duration       { return c.p.IDTokenLifetime }
func (c client) DevMode() bool                        { return true } // http redirect URIs on loopback
func (c client) IsScopeAllowed(string) bool           { return true } // SMART scopes and "groups"
func (c client) IDTokenUserinfoClaimsAssertion() bool { return true }
func (c client) ClockSkew() time.Duration             { return 0 }
func (c client) RestrictAdditionalIdTokenScopes() func([]string) []string {
	return func(s []string) []string { return s }
}
func (c client) RestrictAdditionalAccessTokenScopes() func([]string) []string {
	return func(s []string) []string { return s }
}

// signingKey is an RSA key of the provider, both as signer and as published key.
type signingKey struct {
	id  string
	key *rsa.PrivateKey
}

func (k signingKey) SignatureAlgorithm() jose.SignatureAlgorithm { return jose.RS256 }
func (k signingKey) Algorithm() jose.SignatureAlgorithm          { return jose.RS256 }
func (k signingKey) Use() string                                 { return "sig" }
func (k signingKey) ID() string                                  { return k.id }

// Key is the private key when signing (SigningKey) and the public one when published
// (Key): op signs with SigningKey().Key() and publishes KeySet()'s Key(), so two types.
func (k signingKey) Key() any { return k.key }

type publicKey struct{ signingKey }

func (k publicKey) Key() any { return &k.key.PublicKey }

// storage implements op.Storage over the provider's state.
type storage struct{ p *Provider }

func (s storage) CreateAuthRequest(_ context.Context, req *oidc.AuthRequest, _ string) (op.AuthRequest, error) {
	if s.p.RequirePKCE && req.CodeChallengeMethod != oidc.CodeChallengeMethodS256 {
		return nil, oidc.ErrInvalidRequest().WithDescription("this provider requires PKCE with S256")
	}
	s.p.mu.Lock()
	defer s.p.mu.Unlock()
	a := &authRequest{id: randomID(), req: *req, createdAt: time.Now()}
	s.p.requests[a.id] = a
	return a, nil
}

func (s storage) AuthRequestByID(_ context.Context, id string) (op.AuthRequest, error) {
	s.p.mu.Lock()
	defer s.p.mu.Unlock()
	a, ok := s.p.requests[id]
	if !ok {
		return nil, fmt.Errorf("auth request %q: %w", id, errNotFound)
	}
	return a, nil
}

func (s storage) AuthRequestByCode(_ context.Context, code string) (op.AuthRequest, error) {
	s.p.mu.Lock()
	defer s.p.mu.Unlock()
	for _, a := range s.p.requests {
		if a.code != "" && a.code == code {
			return withAudience{a, s.p.audience()}, nil
		}
	}
	return nil, fmt.Errorf("code: %w", errNotFound)
}

func (s storage) SaveAuthCode(_ context.Context, id, code string) error {
	s.p.mu.Lock()
	defer s.p.mu.Unlock()
	a, ok := s.p.requests[id]
	if !ok {
		return fmt.Errorf("auth request %q: %w", id, errNotFound)
	}
	a.code = code
	return nil
}

func (s storage) DeleteAuthRequest(_ context.Context, id string) error {
	s.p.mu.Lock()
	defer s.p.mu.Unlock()
	delete(s.p.requests, id)
	return nil
}

func (s storage) CreateAccessToken(context.Context, op.TokenRequest) (string, time.Time, error) {
	return randomID(), time.Now().Add(s.p.AccessTokenLifetime), nil
}

func (s storage) CreateAccessAndRefreshTokens(context.Context, op.TokenRequest, string) (string, string, time.Time, error) {
	return "", "", time.Time{}, errors.New("oidctest: no refresh tokens")
}

func (s storage) TokenRequestByRefreshToken(context.Context, string) (op.RefreshTokenRequest, error) {
	return nil, op.ErrInvalidRefreshToken
}

func (s storage) TerminateSession(context.Context, string, string) error { return nil }

func (s storage) RevokeToken(context.Context, string, string, string) *oidc.Error { return nil }

func (s storage) GetRefreshTokenInfo(context.Context, string, string) (string, string, error) {
	return "", "", op.ErrInvalidRefreshToken
}

func (s storage) SigningKey(context.Context) (op.SigningKey, error) {
	s.p.mu.Lock()
	defer s.p.mu.Unlock()
	return s.p.keys[len(s.p.keys)-1], nil
}

func (s storage) SignatureAlgorithms(context.Context) ([]jose.SignatureAlgorithm, error) {
	return []jose.SignatureAlgorithm{jose.RS256}, nil
}

func (s storage) KeySet(context.Context) ([]op.Key, error) {
	s.p.mu.Lock()
	defer s.p.mu.Unlock()
	out := make([]op.Key, 0, len(s.p.keys))
	for _, k := range s.p.keys {
		out = append(out, publicKey{k})
	}
	return out, nil
}

func (s storage) GetClientByClientID(_ context.Context, id string) (op.Client, error) {
	if id == s.p.ClientID {
		return client{p: s.p, id: id}, nil
	}
	s.p.mu.Lock()
	defer s.p.mu.Unlock()
	if _, ok := s.p.services[id]; ok {
		return client{p: s.p, id: id, service: true}, nil
	}
	return nil, fmt.Errorf("client %q: %w", id, errNotFound)
}

func (s storage) AuthorizeClientIDSecret(_ context.Context, id, secret string) error {
	if id != s.p.ClientID || subtle.ConstantTimeCompare([]byte(secret), []byte(s.p.ClientSecret)) != 1 {
		return errors.New("oidctest: wrong client id or secret")
	}
	return nil
}

// ClientCredentials authenticates a service (client credentials grant).
func (s storage) ClientCredentials(_ context.Context, id, secret string) (op.Client, error) {
	s.p.mu.Lock()
	defer s.p.mu.Unlock()
	want, ok := s.p.services[id]
	if !ok || subtle.ConstantTimeCompare([]byte(secret), []byte(want)) != 1 {
		return nil, errors.New("oidctest: wrong service client id or secret")
	}
	return client{p: s.p, id: id, service: true}, nil
}

// serviceRequest is a client credentials grant: the service is its own subject.
type serviceRequest struct {
	subject string
	aud     []string
	scopes  []string
}

func (r serviceRequest) GetSubject() string    { return r.subject }
func (r serviceRequest) GetAudience() []string { return r.aud }
func (r serviceRequest) GetScopes() []string   { return r.scopes }

func (s storage) ClientCredentialsTokenRequest(_ context.Context, id string, scopes []string) (op.TokenRequest, error) {
	return serviceRequest{subject: id, aud: s.p.audience(), scopes: scopes}, nil
}

// SetUserinfoFromScopes fills the ID token's and userinfo's claims: profile and email per
// the OpenID scopes, and the groups unless the user keeps them for userinfo only.
func (s storage) SetUserinfoFromScopes(_ context.Context, ui *oidc.UserInfo, userID, _ string, scopes []string) error {
	return s.userinfo(ui, userID, scopes, false)
}

func (s storage) userinfo(ui *oidc.UserInfo, userID string, scopes []string, forEndpoint bool) error {
	u, ok := s.p.userBySubject(userID)
	if !ok {
		return fmt.Errorf("user %q: %w", userID, errNotFound)
	}
	ui.Subject = u.Subject
	for _, sc := range scopes {
		switch sc {
		case oidc.ScopeProfile:
			ui.PreferredUsername, ui.Name = u.Login, u.Name
		case oidc.ScopeEmail:
			ui.Email, ui.EmailVerified = u.Email, oidc.Bool(u.Email != "")
		}
	}
	if u.Groups != nil && (forEndpoint || !u.GroupsOnlyInUserinfo) {
		ui.AppendClaims(s.p.GroupsClaim, slices.Clone(u.Groups))
	}
	return nil
}

func (s storage) SetUserinfoFromToken(_ context.Context, ui *oidc.UserInfo, _, subject, _ string) error {
	return s.userinfo(ui, subject, []string{oidc.ScopeProfile, oidc.ScopeEmail}, true)
}

func (s storage) SetIntrospectionFromToken(_ context.Context, r *oidc.IntrospectionResponse, _, subject, clientID string) error {
	r.Active, r.Subject, r.ClientID = true, subject, clientID
	return nil
}

// GetPrivateClaimsFromScopes adds to JWT access tokens what a hospital's provider would:
// the scopes granted (RFC 9068 "scope"), the login and the groups.
func (s storage) GetPrivateClaimsFromScopes(_ context.Context, userID, _ string, scopes []string) (map[string]any, error) {
	u, ok := s.p.userBySubject(userID)
	if !ok {
		return nil, fmt.Errorf("user %q: %w", userID, errNotFound)
	}
	claims := map[string]any{"scope": strings.Join(scopes, " "), "preferred_username": u.Login}
	if u.Groups != nil {
		claims[s.p.GroupsClaim] = slices.Clone(u.Groups)
	}
	return claims, nil
}

func (s storage) GetKeyByIDAndClientID(context.Context, string, string) (*jose.JSONWebKey, error) {
	return nil, errors.New("oidctest: no JWT profile keys")
}

func (s storage) ValidateJWTProfileScopes(_ context.Context, _ string, scopes []string) ([]string, error) {
	return scopes, nil
}

func (s storage) Health(context.Context) error { return nil }
