// Package oidc signs people in to iomt through a hospital's OpenID Connect provider: the
// authorization code flow with PKCE (S256), state and nonce for browsers (Begin, Finish), and
// the verification of the provider's JWT access tokens for integrations (VerifyAccessToken).
// Groups in the tokens become iomt roles and care teams through a configurable Mapping.
//
// It returns who the person is (Identity); finding or creating their iomt.User, the session,
// and the SMART scopes are the caller's. See README.md for the configuration file.
package oidc

import (
	"context"
	"crypto/hkdf"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	gooidc "github.com/coreos/go-oidc/v3/oidc"
	jose "github.com/go-jose/go-jose/v4"
	"golang.org/x/oauth2"

	"github.com/iomt/iomt"
)

// Config configures a relying party.
type Config struct {
	// Issuer is the provider's issuer URL; its discovery document is read from
	// Issuer + "/.well-known/openid-configuration". It must be https, except on a loopback host.
	Issuer string
	// ClientID and ClientSecret are iomt's credentials at the provider. The secret comes from
	// a file or the environment (LoadConfig), never from the command line; empty for a
	// public client.
	ClientID     string
	ClientSecret string
	// RedirectURL is the absolute URL of iomt's callback, as registered at the provider
	// (e.g. https://iomt.example.org/auth/oidc/callback). Its path scopes the login cookie;
	// https makes the cookie Secure.
	RedirectURL string
	// Scopes asked for at sign-in; default openid, profile, email. "openid" is added if missing.
	Scopes []string
	// Mapping turns groups into roles and teams.
	Mapping Mapping
	// Tenant, if set, is copied to every Identity: the iomt tenant this provider's users
	// belong to.
	Tenant string
	// AccessTokenAudiences lists the aud values a bearer access token may carry (one must
	// match); default ClientID.
	AccessTokenAudiences []string
	// CookieKey seals the login cookie (any length ≥ 32 bytes; an AES-256 key is derived from
	// it). Every node of a cluster needs the same one. Default: derived from ClientSecret,
	// which the nodes share already; random (per process) for a public client.
	CookieKey []byte
	// LoginTimeout is how long a user has at the provider between Begin and Finish; default
	// 10 minutes.
	LoginTimeout time.Duration
	// KeyRefreshInterval is the least time between two fetches of the provider's keys caused
	// by tokens naming an unknown key; default 10 s. KeyMaxAge is how long fetched keys are
	// trusted before they are fetched again; default 1 h.
	KeyRefreshInterval time.Duration
	KeyMaxAge          time.Duration
	// AccessTokenCacheTTL is how long a verified access token is remembered (by its hash),
	// at most until it expires; default 1 minute, negative: no cache.
	AccessTokenCacheTTL time.Duration
	// HTTPClient talks to the provider; default a client with a 15 s timeout.
	HTTPClient *http.Client
	Logger     *slog.Logger
	// Now is the clock (tests move it); default time.Now.
	Now func() time.Time
}

// Identity is a person the provider vouched for, with what the mapping grants them.
type Identity struct {
	Issuer  string // iss
	Subject string // sub: with Issuer, the stable key of the person (iomt.User.Issuer/Subject)
	Login   string // preferred_username, else email (or Mapping.LoginClaim)
	Name    string // name, may be empty
	Email   string // email, may be empty
	Tenant  string // Config.Tenant
	Roles   []iomt.Role
	Teams   []string // care team IDs, sorted
	Groups  []string // the groups claim as received, for the audit trail
	Expiry  time.Time
	// ReturnTo is the local path given to Begin (Finish only).
	ReturnTo string
}

// RP is an OpenID Connect relying party. It is safe for concurrent use.
type RP struct {
	cfg        Config
	log        *slog.Logger
	now        func() time.Time
	provider   *gooidc.Provider
	oauth      oauth2.Config
	idVerifier *gooidc.IDTokenVerifier
	atVerifier *gooidc.IDTokenVerifier
	keys       *keySet
	sealer     sealer
	cookiePath string
	secure     bool
	audiences  []string
	client     *http.Client
	tokens     *tokenCache // nil: no cache
}

// New reads the provider's discovery document and returns a relying party for it.
func New(ctx context.Context, cfg Config) (*RP, error) {
	if cfg.ClientID == "" {
		return nil, fmt.Errorf("%w: oidc: client id is empty", iomt.ErrInvalid)
	}
	if err := checkIssuer(cfg.Issuer); err != nil {
		return nil, err
	}
	redirect, err := url.Parse(cfg.RedirectURL)
	if err != nil || !redirect.IsAbs() || redirect.Host == "" || (redirect.Scheme != "https" && redirect.Scheme != "http") {
		return nil, fmt.Errorf("%w: oidc: redirect URL %q must be an absolute http(s) URL", iomt.ErrInvalid, cfg.RedirectURL)
	}
	if err := cfg.Mapping.Check(); err != nil {
		return nil, err
	}
	rp := &RP{cfg: cfg, log: cfg.Logger, now: cfg.Now, client: cfg.HTTPClient, audiences: cfg.AccessTokenAudiences}
	if rp.log == nil {
		rp.log = slog.Default()
	}
	if rp.now == nil {
		rp.now = time.Now
	}
	if rp.client == nil {
		rp.client = &http.Client{Timeout: 15 * time.Second}
	}
	if len(rp.audiences) == 0 {
		rp.audiences = []string{cfg.ClientID}
	}
	if rp.cfg.LoginTimeout <= 0 {
		rp.cfg.LoginTimeout = 10 * time.Minute
	}
	switch ttl := cfg.AccessTokenCacheTTL; {
	case ttl == 0:
		rp.tokens = newTokenCache(time.Minute, 10000)
	case ttl > 0:
		rp.tokens = newTokenCache(ttl, 10000)
	}
	rp.cookiePath = redirect.EscapedPath()
	if rp.cookiePath == "" {
		rp.cookiePath = "/"
	}
	rp.secure = redirect.Scheme == "https"

	key := cfg.CookieKey
	switch {
	case key != nil && len(key) < 32:
		return nil, fmt.Errorf("%w: oidc: the cookie key is %d bytes, at least 32 are needed", iomt.ErrInvalid, len(key))
	case key == nil && cfg.ClientSecret != "":
		key = []byte(cfg.ClientSecret)
	case key == nil:
		key = randomBytes(32)
		rp.log.Warn("oidc: no client secret or cookie key: login cookies are sealed with a per-process key, so a sign-in must finish on the node that began it")
	}
	aesKey, err := hkdf.Key(sha256.New, key, nil, "iomt oidc login cookie", 32)
	if err != nil {
		return nil, fmt.Errorf("oidc: deriving the cookie key: %w", err)
	}
	if rp.sealer, err = newSealer(aesKey); err != nil {
		return nil, err
	}

	dctx := gooidc.ClientContext(ctx, rp.client)
	rp.provider, err = gooidc.NewProvider(dctx, cfg.Issuer)
	if err != nil {
		return nil, fmt.Errorf("%w: oidc: discovery at %s: %w", ErrProvider, cfg.Issuer, err)
	}
	var meta struct {
		JWKS          string   `json:"jwks_uri"`
		Algs          []string `json:"id_token_signing_alg_values_supported"`
		PKCE          []string `json:"code_challenge_methods_supported"`
		ResponseTypes []string `json:"response_types_supported"`
	}
	if err := rp.provider.Claims(&meta); err != nil {
		return nil, fmt.Errorf("%w: oidc: discovery at %s: %w", ErrProvider, cfg.Issuer, err)
	}
	if meta.JWKS == "" {
		return nil, fmt.Errorf("%w: oidc: the discovery document of %s has no jwks_uri", ErrProvider, cfg.Issuer)
	}
	if !slices.Contains(meta.PKCE, "S256") {
		rp.log.Warn("oidc: the provider does not advertise PKCE S256; iomt sends it anyway", "issuer", cfg.Issuer)
	}
	algs := signingAlgs(meta.Algs)
	rp.keys = &keySet{
		url: meta.JWKS, client: rp.client, algs: algs, now: rp.now,
		minRefresh: cfg.KeyRefreshInterval, maxAge: cfg.KeyMaxAge,
	}
	if rp.keys.minRefresh <= 0 {
		rp.keys.minRefresh = 10 * time.Second
	}
	if rp.keys.maxAge <= 0 {
		rp.keys.maxAge = time.Hour
	}
	algNames := make([]string, len(algs))
	for i, a := range algs {
		algNames[i] = string(a)
	}
	rp.idVerifier = gooidc.NewVerifier(cfg.Issuer, rp.keys, &gooidc.Config{
		ClientID: cfg.ClientID, SupportedSigningAlgs: algNames, Now: rp.now,
	})
	// The audience of an access token is checked against AccessTokenAudiences below.
	rp.atVerifier = gooidc.NewVerifier(cfg.Issuer, rp.keys, &gooidc.Config{
		SkipClientIDCheck: true, SupportedSigningAlgs: algNames, Now: rp.now,
	})

	scopes := cfg.Scopes
	if len(scopes) == 0 {
		scopes = []string{gooidc.ScopeOpenID, "profile", "email"}
	}
	if !slices.Contains(scopes, gooidc.ScopeOpenID) {
		scopes = append([]string{gooidc.ScopeOpenID}, scopes...)
	}
	rp.oauth = oauth2.Config{
		ClientID: cfg.ClientID, ClientSecret: cfg.ClientSecret, RedirectURL: cfg.RedirectURL,
		Endpoint: rp.provider.Endpoint(), Scopes: scopes,
	}
	return rp, nil
}

// checkIssuer refuses an issuer that is not an https URL (http only on a loopback host: a
// provider in a test or on the same machine).
func checkIssuer(issuer string) error {
	u, err := url.Parse(issuer)
	if err != nil || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("%w: oidc: issuer %q is not an absolute URL without query or fragment", iomt.ErrInvalid, issuer)
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		h := u.Hostname()
		if ip := net.ParseIP(h); h == "localhost" || (ip != nil && ip.IsLoopback()) {
			return nil
		}
	}
	return fmt.Errorf("%w: oidc: issuer %q must be https (http only on a loopback host)", iomt.ErrInvalid, issuer)
}

// signingAlgs keeps the asymmetric algorithms among those the provider advertises (an HMAC
// key would be the client secret, and "none" is no signature); RS256 if none is left.
func signingAlgs(advertised []string) []jose.SignatureAlgorithm {
	var out []jose.SignatureAlgorithm
	for _, a := range advertised {
		switch alg := jose.SignatureAlgorithm(a); alg {
		case jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384, jose.PS512,
			jose.ES256, jose.ES384, jose.ES512, jose.EdDSA:
			out = append(out, alg)
		}
	}
	if len(out) == 0 {
		out = []jose.SignatureAlgorithm{jose.RS256}
	}
	return out
}

// Begin starts a sign-in: it sets the login cookie (HttpOnly, SameSite=Lax, Secure under
// https, on the callback's path, for LoginTimeout) and redirects the browser to the provider.
// returnTo is the local path to go back to after Finish ("" is "/"); anything else (another
// host, "//host", a scheme) is refused with ErrBadReturnTo before anything is written.
func (rp *RP) Begin(w http.ResponseWriter, r *http.Request, returnTo string) error {
	if returnTo == "" {
		returnTo = "/"
	}
	if !localPath(returnTo) {
		return fmt.Errorf("%w: %q", ErrBadReturnTo, returnTo)
	}
	st := loginState{
		State: randomString(32), Nonce: randomString(32), Verifier: oauth2.GenerateVerifier(),
		ReturnTo: returnTo, Expires: rp.now().Add(rp.cfg.LoginTimeout).Unix(),
	}
	name := cookieName(st.State)
	http.SetCookie(w, &http.Cookie{
		Name: name, Value: rp.sealer.seal(name, st), Path: rp.cookiePath,
		MaxAge: int(rp.cfg.LoginTimeout / time.Second), HttpOnly: true, Secure: rp.secure,
		// Lax: the provider's redirect back is a top-level GET, which Lax cookies go with.
		SameSite: http.SameSiteLaxMode,
	})
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, rp.oauth.AuthCodeURL(st.State, gooidc.Nonce(st.Nonce), oauth2.S256ChallengeOption(st.Verifier)), http.StatusFound)
	return nil
}

// localPath reports whether p is a path on this server: it starts with one "/" (not "//" or
// "/\", which browsers read as another host) and has no scheme, host or control character.
func localPath(p string) bool {
	if len(p) > 2048 || !strings.HasPrefix(p, "/") || strings.HasPrefix(p, "//") || strings.HasPrefix(p, "/\\") {
		return false
	}
	if iomt.CheckText("return path", p, 2048) != nil {
		return false
	}
	u, err := url.Parse(p)
	return err == nil && u.Scheme == "" && u.Host == "" && u.User == nil
}

// Finish handles the provider's redirect to RedirectURL: it checks the state against the
// login cookie (and clears the cookie), exchanges the code with the PKCE verifier, verifies
// the ID token (signature against the provider's keys, issuer, audience, expiry, nonce,
// at_hash) and maps its claims. If the ID token holds no groups claim, the groups are read
// from the userinfo endpoint. Errors wrap the sentinels of this package (ErrStateMismatch,
// ErrLoginExpired, ErrAccessDenied, ErrProvider, ErrInvalidToken, ErrTokenExpired,
// ErrClaims, ErrNoRole); their messages are fit for a log, not for a stranger.
func (rp *RP) Finish(w http.ResponseWriter, r *http.Request) (Identity, error) {
	q := r.URL.Query()
	state := q.Get("state")
	provErr := q.Get("error")
	if state == "" {
		if provErr != "" {
			return Identity{}, &ProviderError{Code: provErr, Description: q.Get("error_description")}
		}
		return Identity{}, fmt.Errorf("%w: the callback has no state parameter", ErrStateMismatch)
	}
	name := cookieName(state)
	c, err := r.Cookie(name)
	if err != nil {
		return Identity{}, fmt.Errorf("%w: no login cookie for this state (sign-in begun in another browser, cookies blocked, or already finished)", ErrStateMismatch)
	}
	http.SetCookie(w, &http.Cookie{Name: name, Value: "", Path: rp.cookiePath, MaxAge: -1, HttpOnly: true, Secure: rp.secure, SameSite: http.SameSiteLaxMode})
	st, err := rp.sealer.open(name, c.Value, rp.now())
	if err != nil {
		return Identity{}, err
	}
	if subtle.ConstantTimeCompare([]byte(st.State), []byte(state)) != 1 {
		return Identity{}, fmt.Errorf("%w: the callback's state is not the one of this browser's sign-in", ErrStateMismatch)
	}
	if provErr != "" {
		return Identity{}, &ProviderError{Code: provErr, Description: q.Get("error_description")}
	}
	code := q.Get("code")
	if code == "" {
		return Identity{}, fmt.Errorf("%w: the callback has neither code nor error", ErrProvider)
	}

	ctx := gooidc.ClientContext(r.Context(), rp.client)
	tok, err := rp.oauth.Exchange(ctx, code, oauth2.VerifierOption(st.Verifier))
	if err != nil {
		return Identity{}, fmt.Errorf("%w: exchanging the code at the token endpoint: %w", ErrProvider, err)
	}
	rawID, _ := tok.Extra("id_token").(string)
	if rawID == "" {
		return Identity{}, fmt.Errorf("%w: the token response has no id_token", ErrInvalidToken)
	}
	idt, err := rp.idVerifier.Verify(ctx, rawID)
	if err != nil {
		return Identity{}, verifyError("ID token", err)
	}
	if subtle.ConstantTimeCompare([]byte(idt.Nonce), []byte(st.Nonce)) != 1 {
		return Identity{}, fmt.Errorf("%w: the ID token's nonce is not the one sent (a replayed token)", ErrInvalidToken)
	}
	if idt.AccessTokenHash != "" {
		if err := idt.VerifyAccessToken(tok.AccessToken); err != nil {
			return Identity{}, fmt.Errorf("%w: the ID token's at_hash does not match the access token: %w", ErrInvalidToken, err)
		}
	}
	var claims map[string]any
	if err := idt.Claims(&claims); err != nil {
		return Identity{}, fmt.Errorf("%w: ID token claims: %w", ErrInvalidToken, err)
	}
	if azp, ok := claims["azp"].(string); ok && azp != rp.cfg.ClientID {
		return Identity{}, fmt.Errorf("%w: the ID token was issued to %q, not to this client", ErrInvalidToken, azp)
	}
	if _, found, _ := rp.cfg.Mapping.groupsFrom(claims); !found && rp.provider.UserInfoEndpoint() != "" {
		if err := rp.addUserinfo(ctx, tok, claims); err != nil {
			return Identity{}, err
		}
	}
	id, err := rp.cfg.Mapping.identityFrom(claims)
	if err != nil {
		return Identity{}, err
	}
	id.Tenant, id.Expiry, id.ReturnTo = rp.cfg.Tenant, idt.Expiry, st.ReturnTo
	return id, nil
}

// addUserinfo adds the claims of the userinfo endpoint that the ID token lacks (some
// providers keep groups out of ID tokens to keep them small).
func (rp *RP) addUserinfo(ctx context.Context, tok *oauth2.Token, claims map[string]any) error {
	ui, err := rp.provider.UserInfo(ctx, oauth2.StaticTokenSource(tok))
	if err != nil {
		return fmt.Errorf("%w: reading the userinfo endpoint for the groups claim: %w", ErrProvider, err)
	}
	if ui.Subject != claims["sub"] {
		return fmt.Errorf("%w: the userinfo endpoint answered for subject %q, not %q", ErrInvalidToken, ui.Subject, claims["sub"])
	}
	var more map[string]any
	if err := ui.Claims(&more); err != nil {
		return fmt.Errorf("%w: userinfo claims: %w", ErrProvider, err)
	}
	for k, v := range more {
		if _, ok := claims[k]; !ok {
			claims[k] = v
		}
	}
	return nil
}

// verifyError classifies an error of go-oidc's verifier.
func verifyError(what string, err error) error {
	var exp *gooidc.TokenExpiredError
	if errors.As(err, &exp) {
		return fmt.Errorf("%w: the %s expired at %s", ErrTokenExpired, what, exp.Expiry.UTC().Format(time.RFC3339))
	}
	if strings.Contains(err.Error(), errKeysUnavailable.Error()) {
		// Not the token's fault: the caller may answer 503 rather than 401.
		return fmt.Errorf("%w: verifying the %s: %w", ErrProvider, what, err)
	}
	return fmt.Errorf("%w: %s: %w", ErrInvalidToken, what, err)
}

// maxTokenLen bounds a bearer token read; real access tokens are a few KB.
const maxTokenLen = 16 << 10

// VerifyAccessToken verifies a JWT access token of the provider (from an Authorization:
// Bearer header): signature against the provider's keys (fetching them again when the token
// names a key not yet seen, so a rotation at the provider is picked up), issuer, expiry and
// audience (one of AccessTokenAudiences). An ID token is refused (it carries a nonce, at_hash
// or c_hash, or a JOSE typ other than JWT or at+jwt). It returns the mapped identity and the
// token's scopes (the space-separated "scope" claim, or "scp" as a list or string), for the
// caller to apply as SMART v2 scopes on top of the user's own permissions. A token verified
// once is remembered for AccessTokenCacheTTL (until it expires).
func (rp *RP) VerifyAccessToken(ctx context.Context, raw string) (Identity, []string, error) {
	if len(raw) > maxTokenLen {
		return Identity{}, nil, fmt.Errorf("%w: the access token is %d bytes long, at most %d are read", ErrInvalidToken, len(raw), maxTokenLen)
	}
	if id, scopes, ok := rp.tokens.get(raw, rp.now()); ok {
		return id, scopes, nil
	}
	if err := checkAccessTokenType(raw); err != nil {
		return Identity{}, nil, err
	}
	tok, err := rp.atVerifier.Verify(gooidc.ClientContext(ctx, rp.client), raw)
	if err != nil {
		return Identity{}, nil, verifyError("access token", err)
	}
	if !slices.ContainsFunc(tok.Audience, func(a string) bool { return slices.Contains(rp.audiences, a) }) {
		return Identity{}, nil, fmt.Errorf("%w: the access token is for %q, not for iomt (%q)", ErrInvalidToken, tok.Audience, rp.audiences)
	}
	var claims map[string]any
	if err := tok.Claims(&claims); err != nil {
		return Identity{}, nil, fmt.Errorf("%w: access token claims: %w", ErrInvalidToken, err)
	}
	for _, c := range []string{"nonce", "at_hash", "c_hash"} {
		if _, ok := claims[c]; ok {
			return Identity{}, nil, fmt.Errorf("%w: the token has a %s claim: it is an ID token, not an access token", ErrInvalidToken, c)
		}
	}
	scopes, err := scopesFrom(claims)
	if err != nil {
		return Identity{}, nil, err
	}
	id, err := rp.cfg.Mapping.identityFrom(claims)
	if err != nil {
		return Identity{}, nil, err
	}
	id.Tenant, id.Expiry = rp.cfg.Tenant, tok.Expiry
	rp.tokens.put(raw, id, scopes, rp.now())
	return id, scopes, nil
}

// checkAccessTokenType refuses a JWT whose JOSE header types it as something other than a
// plain JWT or an RFC 9068 access token (e.g. an ID token typed "id_token+jwt").
func checkAccessTokenType(raw string) error {
	head, _, ok := strings.Cut(raw, ".")
	if !ok {
		return fmt.Errorf("%w: the access token is not a JWT", ErrInvalidToken)
	}
	b, err := base64.RawURLEncoding.DecodeString(head)
	if err != nil {
		return fmt.Errorf("%w: the access token's header is not base64url", ErrInvalidToken)
	}
	var h struct {
		Typ string `json:"typ"`
	}
	if err := json.Unmarshal(b, &h); err != nil {
		return fmt.Errorf("%w: the access token's header is not JSON", ErrInvalidToken)
	}
	switch strings.ToLower(h.Typ) {
	case "", "jwt", "at+jwt", "application/at+jwt":
		return nil
	}
	return fmt.Errorf("%w: the token's type is %q, not an access token", ErrInvalidToken, h.Typ)
}

// scopesFrom reads "scope" (RFC 9068, a space-separated string) or "scp" (a list, or a
// string, as some providers send it).
func scopesFrom(claims map[string]any) ([]string, error) {
	v, ok := claims["scope"]
	if !ok {
		v = claims["scp"]
	}
	switch v := v.(type) {
	case nil:
		return nil, nil
	case string:
		return strings.Fields(v), nil
	case []any:
		out := make([]string, 0, len(v))
		for i, s := range v {
			str, ok := s.(string)
			if !ok {
				return nil, fmt.Errorf("%w: scope item %d is a %T, not a string", ErrClaims, i, s)
			}
			out = append(out, str)
		}
		return out, nil
	default:
		return nil, fmt.Errorf("%w: the scope claim is a %T, not a string or list", ErrClaims, v)
	}
}
