// Package oidctest runs a real OpenID Connect provider (github.com/zitadel/oidc/v3/pkg/op)
// inside a test, over real HTTP: discovery, JWKS, authorization code flow with PKCE, signed
// ID and JWT access tokens, userinfo, and a plain HTML login form at LoginPath that a
// browser (Chromium in end-to-end tests) or LogIn fills in.
//
// It is for tests only: users and their passwords live in memory.
package oidctest

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/hex"
	"errors"
	"fmt"
	"html/template"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

// LoginPath is the provider's login page. Its form has inputs named and id'd "username" and
// "password", a submit button with id "login" and one with id "cancel" (which denies the
// request: the RP gets error=access_denied).
const LoginPath = "/login"

// DefaultPassword is the password of a User that sets none.
const DefaultPassword = "correct horse battery staple"

// User is a person at the provider.
type User struct {
	Login    string // preferred_username, and the name typed into the login form
	Password string // default DefaultPassword
	Subject  string // sub; default "sub-" + Login
	Name     string
	Email    string
	Groups   []string // the groups claim (Provider.GroupsClaim); nil: no claim at all
	// GroupsOnlyInUserinfo keeps the groups out of the ID token: only the userinfo endpoint
	// (and access tokens) carry them, as some providers do for large groups.
	GroupsOnlyInUserinfo bool
}

// Provider is a running OpenID provider. Set its exported fields before the first request.
type Provider struct {
	Issuer       string // http://127.0.0.1:port, the base of every endpoint
	ClientID     string // "iomt"
	ClientSecret string // random
	// Audiences are added to the client ID in the aud of ID and access tokens.
	Audiences []string
	// GroupsClaim names the claim the groups go in; default "groups".
	GroupsClaim         string
	IDTokenLifetime     time.Duration // default 5 minutes
	AccessTokenLifetime time.Duration // default 5 minutes
	// RequirePKCE refuses authorization requests without an S256 code challenge (default
	// true), so a test passing through the provider shows the RP used PKCE.
	RequirePKCE bool

	server *httptest.Server
	op     *op.Provider

	mu        sync.Mutex
	users     map[string]User // by login
	requests  map[string]*authRequest
	keys      []signingKey // the last one signs; all are published
	redirects []string
	logins    []string          // logins that succeeded, in order
	services  map[string]string // service client ID → secret
}

// Start runs a provider with the given users until the test ends. Register the RP's
// redirect URL with AllowRedirect before it sends a browser here.
func Start(t testing.TB, users ...User) *Provider {
	t.Helper()
	srv := httptest.NewUnstartedServer(nil)
	p := &Provider{
		Issuer: "http://" + srv.Listener.Addr().String(), ClientID: "iomt", ClientSecret: randomID(),
		GroupsClaim: "groups", IDTokenLifetime: 5 * time.Minute, AccessTokenLifetime: 5 * time.Minute,
		RequirePKCE: true, server: srv,
		users: map[string]User{}, requests: map[string]*authRequest{}, services: map[string]string{},
		redirects: []string{unusedRedirect},
	}
	for _, u := range users {
		p.SetUser(u)
	}
	p.keys = []signingKey{newKey(t)}
	var cryptoKey [32]byte
	_, _ = rand.Read(cryptoKey[:])
	o, err := op.NewProvider(&op.Config{
		CryptoKey: cryptoKey, CodeMethodS256: true, AuthMethodPost: true,
		SupportedScopes: []string{oidc.ScopeOpenID, oidc.ScopeProfile, oidc.ScopeEmail, "groups"},
	}, storage{p}, op.StaticIssuer(p.Issuer), op.WithAllowInsecure())
	if err != nil {
		t.Fatalf("oidctest: %v", err)
	}
	p.op = o
	mux := http.NewServeMux()
	mux.HandleFunc(LoginPath, p.login)
	mux.Handle("/", o)
	srv.Config.Handler = mux
	srv.Start()
	t.Cleanup(srv.Close)
	return p
}

// unusedRedirect is the redirect URI UserAccessToken uses; nothing listens there, the
// redirect is read, not followed.
const unusedRedirect = "http://127.0.0.1:1/oidctest-callback"

func newKey(t testing.TB) signingKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatalf("oidctest: generating a key: %v", err)
	}
	return signingKey{id: randomID()[:16], key: k}
}

func randomID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// SetUser adds or replaces (by login) a user.
func (p *Provider) SetUser(u User) {
	if u.Password == "" {
		u.Password = DefaultPassword
	}
	if u.Subject == "" {
		u.Subject = "sub-" + u.Login
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.users[u.Login] = u
}

func (p *Provider) userBySubject(sub string) (User, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, u := range p.users {
		if u.Subject == sub {
			return u, true
		}
	}
	return User{}, false
}

// SetService registers an integration that gets access tokens with the client credentials
// grant (ServiceToken): a client whose tokens have sub = clientID and the given groups. It
// returns the client's secret.
func (p *Provider) SetService(clientID string, groups ...string) (secret string) {
	secret = randomID()
	p.SetUser(User{Login: clientID, Subject: clientID, Groups: groups})
	p.mu.Lock()
	defer p.mu.Unlock()
	p.services[clientID] = secret
	return secret
}

// ServiceToken gets a JWT access token for a service registered with SetService, through
// the token endpoint's client credentials grant, with the given scopes (e.g. SMART
// system/Observation.rs).
func (p *Provider) ServiceToken(ctx context.Context, clientID string, scopes ...string) (string, error) {
	p.mu.Lock()
	secret, ok := p.services[clientID]
	p.mu.Unlock()
	if !ok {
		return "", fmt.Errorf("oidctest: no service %q", clientID)
	}
	conf := clientcredentials.Config{ClientID: clientID, ClientSecret: secret, TokenURL: p.Issuer + "/oauth/token", Scopes: scopes}
	tok, err := conf.Token(ctx)
	if err != nil {
		return "", fmt.Errorf("oidctest: client credentials grant: %w", err)
	}
	return tok.AccessToken, nil
}

// AllowRedirect registers a redirect URI of the client (the RP's callback URL).
func (p *Provider) AllowRedirect(uri string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !slices.Contains(p.redirects, uri) {
		p.redirects = append(p.redirects, uri)
	}
}

// RotateKey makes a new signing key. With keepOld the old key is still published (a
// graceful rotation); without it, it is withdrawn.
func (p *Provider) RotateKey(t testing.TB, keepOld bool) {
	k := newKey(t)
	p.mu.Lock()
	defer p.mu.Unlock()
	if keepOld {
		p.keys = append(p.keys, k)
	} else {
		p.keys = []signingKey{k}
	}
}

// KeyID is the ID of the current signing key.
func (p *Provider) KeyID() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.keys[len(p.keys)-1].id
}

// Logins lists the logins that signed in at the provider, in order.
func (p *Provider) Logins() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.logins)
}

func (p *Provider) audience() []string {
	return append([]string{p.ClientID}, p.Audiences...)
}

var loginPage = template.Must(template.New("login").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Test identity provider: sign in</title></head>
<body><h1>Sign in to the test identity provider</h1>
{{if .Error}}<p id="error" role="alert">{{.Error}}</p>{{end}}
<form method="post" action="{{.Action}}">
<input type="hidden" name="authRequestID" value="{{.ID}}">
<label>User name <input id="username" name="username" autocomplete="username" value="{{.Login}}"></label>
<label>Password <input id="password" name="password" type="password" autocomplete="current-password"></label>
<button id="login" type="submit" name="action" value="login">Sign in</button>
<button id="cancel" type="submit" name="action" value="cancel">Cancel</button>
</form></body></html>`))

// login serves the login form (GET) and checks what was typed in it (POST).
func (p *Provider) login(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, "cannot parse the form: "+err.Error(), http.StatusBadRequest)
		return
	}
	id := r.Form.Get("authRequestID")
	p.mu.Lock()
	a, ok := p.requests[id]
	p.mu.Unlock()
	if !ok {
		http.Error(w, "unknown or finished authorization request", http.StatusBadRequest)
		return
	}
	render := func(status int, login, msg string) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(status)
		_ = loginPage.Execute(w, map[string]string{"Action": p.Issuer + LoginPath, "ID": id, "Login": login, "Error": msg})
	}
	switch r.Method {
	case http.MethodGet:
		render(http.StatusOK, "", "")
		return
	case http.MethodPost:
	default:
		http.Error(w, "GET or POST", http.StatusMethodNotAllowed)
		return
	}
	if r.Form.Get("action") == "cancel" {
		op.AuthRequestError(w, r, a, oidc.ErrAccessDenied().WithDescription("the user cancelled the sign-in"), p.op)
		return
	}
	login := r.Form.Get("username")
	p.mu.Lock()
	u, ok := p.users[login]
	if ok && u.Password == r.Form.Get("password") {
		a.subject, a.authTime, a.done = u.Subject, time.Now(), true
		p.logins = append(p.logins, login)
	}
	p.mu.Unlock()
	if !a.done {
		render(http.StatusUnauthorized, login, "Wrong user name or password.")
		return
	}
	http.Redirect(w, r, op.AuthCallbackURL(p.op)(op.ContextWithIssuer(r.Context(), p.Issuer), id), http.StatusFound)
}

// Browser returns an HTTP client with a cookie jar that follows redirects, like a browser.
func Browser() *http.Client {
	jar, _ := cookiejar.New(nil) // cannot fail without options
	return &http.Client{Jar: jar, Timeout: 30 * time.Second}
}

// LogIn drives a sign-in as a browser would: it GETs start (the RP's login route, which
// redirects to the provider) with client, which follows redirects to the login form, submits
// login and password there, and follows the redirects back to the RP. It returns the RP's
// final response (its body read into the returned string). A login the provider refuses
// (wrong password) is an error.
func (p *Provider) LogIn(ctx context.Context, client *http.Client, start, login, password string) (*http.Response, string, error) {
	return p.submit(ctx, client, start, url.Values{"username": {login}, "password": {password}, "action": {"login"}})
}

// Deny goes to the login form as LogIn does and presses Cancel, so that the provider
// answers the RP with error=access_denied.
func (p *Provider) Deny(ctx context.Context, client *http.Client, start string) (*http.Response, string, error) {
	return p.submit(ctx, client, start, url.Values{"action": {"cancel"}})
}

func (p *Provider) submit(ctx context.Context, client *http.Client, start string, form url.Values) (*http.Response, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, start, nil)
	if err != nil {
		return nil, "", err
	}
	resp, body, err := do(client, req)
	if err != nil {
		return nil, "", fmt.Errorf("oidctest: going to the login page: %w", err)
	}
	if !strings.HasPrefix(resp.Request.URL.String(), p.Issuer+LoginPath) {
		return resp, body, fmt.Errorf("oidctest: %s led to %s (%s), not to the provider's login page", start, resp.Request.URL, resp.Status)
	}
	form.Set("authRequestID", resp.Request.URL.Query().Get("authRequestID"))
	req, err = http.NewRequestWithContext(ctx, http.MethodPost, p.Issuer+LoginPath, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, "", err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, body, err = do(client, req)
	if err != nil {
		return nil, "", fmt.Errorf("oidctest: submitting the login form: %w", err)
	}
	if resp.Request.URL.Path == LoginPath && strings.HasPrefix(resp.Request.URL.String(), p.Issuer) {
		return resp, body, fmt.Errorf("oidctest: the provider refused the login (%s)", resp.Status)
	}
	return resp, body, nil
}

func do(client *http.Client, req *http.Request) (*http.Response, string, error) {
	resp, err := client.Do(req)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp, string(b), err
}

// UserAccessToken signs login in through the authorization code flow with PKCE over HTTP,
// as a SMART app or any OAuth client would, asking for scopes (plus openid), and returns
// the JWT access token the token endpoint issues, and the ID token.
func (p *Provider) UserAccessToken(ctx context.Context, login string, scopes ...string) (access, id string, err error) {
	p.mu.Lock()
	u, ok := p.users[login]
	p.mu.Unlock()
	if !ok {
		return "", "", fmt.Errorf("oidctest: no user %q", login)
	}
	conf := oauth2.Config{
		ClientID: p.ClientID, ClientSecret: p.ClientSecret, RedirectURL: unusedRedirect,
		Endpoint: oauth2.Endpoint{AuthURL: p.Issuer + "/authorize", TokenURL: p.Issuer + "/oauth/token"},
		Scopes:   append([]string{oidc.ScopeOpenID}, scopes...),
	}
	verifier := oauth2.GenerateVerifier()
	state := randomID()
	client := Browser()
	// Stop at the redirect to the client's callback, which nothing serves.
	client.CheckRedirect = func(req *http.Request, _ []*http.Request) error {
		if strings.HasPrefix(req.URL.String(), unusedRedirect) {
			return http.ErrUseLastResponse
		}
		return nil
	}
	resp, _, err := p.LogIn(ctx, client, conf.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("nonce", randomID())), login, u.Password)
	if err != nil {
		return "", "", err
	}
	loc, err := resp.Location()
	if err != nil {
		return "", "", fmt.Errorf("oidctest: the provider did not redirect back with a code (%s)", resp.Status)
	}
	if loc.Query().Get("state") != state || loc.Query().Get("code") == "" {
		return "", "", fmt.Errorf("oidctest: the provider redirected to %s", loc)
	}
	tok, err := conf.Exchange(context.WithValue(ctx, oauth2.HTTPClient, client), loc.Query().Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		return "", "", fmt.Errorf("oidctest: exchanging the code: %w", err)
	}
	id, _ = tok.Extra("id_token").(string)
	if id == "" {
		return "", "", errors.New("oidctest: no id_token in the token response")
	}
	return tok.AccessToken, id, nil
}
