package oidc_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/iomt/iomt"
	"github.com/iomt/iomt/identity/oidc"
	"github.com/iomt/iomt/internal/oidctest"
)

var (
	alice = oidctest.User{Login: "alice", Name: "Alice Adams", Email: "alice@example.org",
		Groups: []string{"iomt-clinicians", "team:ward-3", "icu-staff", "unrelated"}}
	bob   = oidctest.User{Login: "bob", Name: "Bob Brown", Groups: []string{"finance"}}
	carol = oidctest.User{Login: "carol", Name: "Carol Cole"} // no groups claim at all
	dave  = oidctest.User{Login: "dave", Name: "Dave Dunn", Groups: []string{"iomt-auditors"}, GroupsOnlyInUserinfo: true}
)

var mapping = oidc.Mapping{
	Roles:      map[string]iomt.Role{"iomt-clinicians": iomt.RoleClinician, "iomt-admins": iomt.RoleAdmin, "iomt-auditors": iomt.RoleAuditor, "iomt-services": iomt.RoleService},
	Teams:      map[string]string{"icu-staff": "icu"},
	TeamPrefix: "team:",
}

// harness is a provider, a relying party and an HTTP server that mounts the RP as the
// lead's API will: /auth/oidc/login and /auth/oidc/callback.
type harness struct {
	p     *oidctest.Provider
	rp    *oidc.RP
	srv   *httptest.Server
	clock atomic.Int64 // offset of the RP's clock from the real one, in ns
	net   *transport   // the RP's connection to the provider

	mu   sync.Mutex
	id   oidc.Identity
	err  error
	done int
}

func (h *harness) now() time.Time { return time.Now().Add(time.Duration(h.clock.Load())) }

func (h *harness) result() (oidc.Identity, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.done == 0 {
		return oidc.Identity{}, errors.New("the callback was not reached")
	}
	return h.id, h.err
}

func newHarness(t testing.TB, edit func(*oidc.Config), users ...oidctest.User) *harness {
	t.Helper()
	if len(users) == 0 {
		users = []oidctest.User{alice, bob, carol, dave}
	}
	h := &harness{p: oidctest.Start(t, users...), net: &transport{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /auth/oidc/login", func(w http.ResponseWriter, r *http.Request) {
		if err := h.rp.Begin(w, r, r.URL.Query().Get("next")); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
		}
	})
	mux.HandleFunc("GET /auth/oidc/callback", func(w http.ResponseWriter, r *http.Request) {
		id, err := h.rp.Finish(w, r)
		h.mu.Lock()
		h.id, h.err = id, err
		h.done++
		h.mu.Unlock()
		if err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		_ = json.NewEncoder(w).Encode(id)
	})
	h.srv = httptest.NewServer(mux)
	t.Cleanup(h.srv.Close)
	redirect := h.srv.URL + "/auth/oidc/callback"
	h.p.AllowRedirect(redirect)
	cfg := oidc.Config{
		Issuer: h.p.Issuer, ClientID: h.p.ClientID, ClientSecret: h.p.ClientSecret, RedirectURL: redirect,
		Scopes: []string{"openid", "profile", "email", "groups"}, Mapping: mapping, Tenant: "north",
		HTTPClient: &http.Client{Transport: h.net, Timeout: 10 * time.Second}, Now: h.now,
	}
	if edit != nil {
		edit(&cfg)
	}
	rp, err := oidc.New(context.Background(), cfg)
	if err != nil {
		t.Fatalf("oidc.New: %v", err)
	}
	h.rp = rp
	return h
}

// logIn signs login in through the RP's routes with a fresh browser.
func (h *harness) logIn(t *testing.T, login, next string) (oidc.Identity, error) {
	t.Helper()
	_, _, err := h.p.LogIn(context.Background(), oidctest.Browser(), h.srv.URL+"/auth/oidc/login?next="+url.QueryEscape(next), login, oidctest.DefaultPassword)
	if err != nil {
		t.Fatalf("logging in %s: %v", login, err)
	}
	return h.result()
}

// transport is the RP's HTTP transport to the provider; a test may rewrite token
// responses (a man in the middle, or a provider gone wrong) and it counts JWKS fetches.
type transport struct {
	mu        sync.Mutex
	tamper    func(tokenResponse map[string]any)
	keyFetchs int
	keysDown  bool // the provider's JWKS endpoint cannot be reached
}

func (tr *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	tr.mu.Lock()
	down := tr.keysDown && req.URL.Path == "/keys"
	tr.mu.Unlock()
	if down {
		return nil, errors.New("connection refused (test)")
	}
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	tr.mu.Lock()
	tamper := tr.tamper
	if req.URL.Path == "/keys" {
		tr.keyFetchs++
	}
	tr.mu.Unlock()
	if tamper == nil || req.URL.Path != "/oauth/token" || resp.StatusCode != http.StatusOK {
		return resp, nil
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		return nil, err
	}
	tamper(m)
	body, _ = json.Marshal(m)
	resp.Body = io.NopCloser(bytes.NewReader(body))
	resp.ContentLength = int64(len(body))
	resp.Header.Del("Content-Length")
	return resp, nil
}

func (tr *transport) setTamper(f func(map[string]any)) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tr.tamper = f
}

func (tr *transport) keyFetches() int {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return tr.keyFetchs
}

func TestFullFlowSignsInWithRolesAndTeams(t *testing.T) {
	h := newHarness(t, nil)
	id, err := h.logIn(t, "alice", "/patients?ward=3")
	if err != nil {
		t.Fatalf("Finish: %v", err)
	}
	want := oidc.Identity{
		Issuer: h.p.Issuer, Subject: "sub-alice", Login: "alice", Name: "Alice Adams", Email: "alice@example.org",
		Tenant: "north", Roles: []iomt.Role{iomt.RoleClinician}, Teams: []string{"icu", "ward-3"},
		Groups: alice.Groups, ReturnTo: "/patients?ward=3",
	}
	if id.Expiry.Before(time.Now()) || id.Expiry.After(time.Now().Add(6*time.Minute)) {
		t.Errorf("Expiry = %v, want the ID token's, about 5 minutes from now", id.Expiry)
	}
	id.Expiry = time.Time{}
	if !identityEqual(id, want) {
		t.Errorf("identity = %+v\nwant       %+v", id, want)
	}
	if got := h.p.Logins(); !slices.Equal(got, []string{"alice"}) {
		t.Errorf("provider logins = %v", got)
	}
}

func identityEqual(a, b oidc.Identity) bool {
	return a.Issuer == b.Issuer && a.Subject == b.Subject && a.Login == b.Login && a.Name == b.Name &&
		a.Email == b.Email && a.Tenant == b.Tenant && slices.Equal(a.Roles, b.Roles) &&
		slices.Equal(a.Teams, b.Teams) && slices.Equal(a.Groups, b.Groups) && a.ReturnTo == b.ReturnTo &&
		a.Expiry.Equal(b.Expiry)
}

func TestBeginSetsAProtectedCookieAndAsksForPKCE(t *testing.T) {
	h := newHarness(t, nil)
	w := httptest.NewRecorder()
	r := httptest.NewRequest(http.MethodGet, "/auth/oidc/login", nil)
	if err := h.rp.Begin(w, r, "/dashboard"); err != nil {
		t.Fatal(err)
	}
	resp := w.Result()
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("status %d", resp.StatusCode)
	}
	cookies := resp.Cookies()
	if len(cookies) != 1 {
		t.Fatalf("cookies %v", cookies)
	}
	c := cookies[0]
	if !c.HttpOnly || c.SameSite != http.SameSiteLaxMode || c.Path != "/auth/oidc/callback" || c.MaxAge != 600 || c.Secure {
		t.Errorf("cookie %+v: want HttpOnly, SameSite=Lax, Path=/auth/oidc/callback, Max-Age=600, not Secure over http", c)
	}
	if strings.Contains(c.Value, "dashboard") {
		t.Errorf("the cookie shows its content: %s", c.Value)
	}
	loc, err := resp.Location()
	if err != nil {
		t.Fatal(err)
	}
	q := loc.Query()
	if !strings.HasPrefix(loc.String(), h.p.Issuer+"/authorize?") || q.Get("code_challenge_method") != "S256" ||
		len(q.Get("code_challenge")) != 43 || q.Get("nonce") == "" || q.Get("state") == "" ||
		q.Get("client_id") != "iomt" || q.Get("response_type") != "code" {
		t.Errorf("authorization URL %s lacks PKCE S256, nonce, state or client", loc)
	}
	if !strings.HasPrefix(c.Name, "iomt_oidc_") || !strings.HasPrefix(q.Get("state"), strings.TrimPrefix(c.Name, "iomt_oidc_")) {
		t.Errorf("cookie %s is not named for state %s", c.Name, q.Get("state"))
	}
}

func TestBeginRefusesAReturnAddressElsewhere(t *testing.T) {
	h := newHarness(t, nil)
	for _, bad := range []string{"https://evil.example/", "//evil.example/x", "/\\evil.example", "evil", "/a\nb", "javascript:alert(1)"} {
		w := httptest.NewRecorder()
		err := h.rp.Begin(w, httptest.NewRequest(http.MethodGet, "/", nil), bad)
		if !errors.Is(err, oidc.ErrBadReturnTo) {
			t.Errorf("Begin(%q) = %v, want ErrBadReturnTo", bad, err)
		}
		if len(w.Result().Cookies()) != 0 || w.Code != http.StatusOK {
			t.Errorf("Begin(%q) wrote a response", bad)
		}
	}
}

// toCallback drives a browser to the provider and back, stopping before the RP's
// callback; it returns the browser and the callback URL.
func (h *harness) toCallback(t *testing.T, login string) (*http.Client, *url.URL) {
	t.Helper()
	b := oidctest.Browser()
	b.CheckRedirect = func(req *http.Request, _ []*http.Request) error {
		if req.URL.Path == "/auth/oidc/callback" {
			return http.ErrUseLastResponse
		}
		return nil
	}
	resp, _, err := h.p.LogIn(context.Background(), b, h.srv.URL+"/auth/oidc/login", login, oidctest.DefaultPassword)
	if err != nil {
		t.Fatal(err)
	}
	loc, err := resp.Location()
	if err != nil || loc.Query().Get("code") == "" {
		t.Fatalf("the provider did not send the browser back with a code: %v %s", err, resp.Status)
	}
	return b, loc
}

func get(t *testing.T, c *http.Client, u string) {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
}

func TestWrongStateIsRefused(t *testing.T) {
	h := newHarness(t, nil)

	t.Run("state changed", func(t *testing.T) {
		b, cb := h.toCallback(t, "alice")
		q := cb.Query()
		q.Set("state", q.Get("state")[:20]+strings.Repeat("A", len(q.Get("state"))-20))
		cb.RawQuery = q.Encode()
		get(t, b, cb.String())
		if _, err := h.result(); !errors.Is(err, oidc.ErrStateMismatch) {
			t.Fatalf("err = %v, want ErrStateMismatch", err)
		}
	})
	t.Run("another browser", func(t *testing.T) {
		_, cb := h.toCallback(t, "alice")
		get(t, oidctest.Browser(), cb.String()) // an attacker's callback URL in the victim's browser
		_, err := h.result()
		if !errors.Is(err, oidc.ErrStateMismatch) || !strings.Contains(err.Error(), "no login cookie") {
			t.Fatalf("err = %v, want ErrStateMismatch for a missing cookie", err)
		}
	})
	t.Run("callback replayed", func(t *testing.T) {
		b, cb := h.toCallback(t, "alice")
		get(t, b, cb.String())
		if _, err := h.result(); err != nil {
			t.Fatalf("first callback: %v", err)
		}
		get(t, b, cb.String())
		if _, err := h.result(); !errors.Is(err, oidc.ErrStateMismatch) {
			t.Fatalf("replayed callback: err = %v, want ErrStateMismatch (the cookie is single use)", err)
		}
	})
	t.Run("cookie forged", func(t *testing.T) {
		b, cb := h.toCallback(t, "alice")
		u, _ := url.Parse(h.srv.URL + "/auth/oidc/callback")
		for _, c := range b.Jar.Cookies(u) {
			raw, _ := base64.RawURLEncoding.DecodeString(c.Value)
			raw[len(raw)-1] ^= 1
			c.Value = base64.RawURLEncoding.EncodeToString(raw)
			c.Path = "/auth/oidc/callback"
			b.Jar.SetCookies(u, []*http.Cookie{c})
		}
		get(t, b, cb.String())
		_, err := h.result()
		if !errors.Is(err, oidc.ErrStateMismatch) || !strings.Contains(err.Error(), "does not open") {
			t.Fatalf("err = %v, want ErrStateMismatch for an altered cookie", err)
		}
	})
	t.Run("too slow", func(t *testing.T) {
		b, cb := h.toCallback(t, "alice")
		h.clock.Store(int64(11 * time.Minute))
		defer h.clock.Store(0)
		get(t, b, cb.String())
		if _, err := h.result(); !errors.Is(err, oidc.ErrLoginExpired) {
			t.Fatalf("err = %v, want ErrLoginExpired", err)
		}
	})
}

func TestProviderDenialIsReported(t *testing.T) {
	h := newHarness(t, nil)
	if _, _, err := h.p.Deny(context.Background(), oidctest.Browser(), h.srv.URL+"/auth/oidc/login"); err != nil {
		t.Fatal(err)
	}
	_, err := h.result()
	var pe *oidc.ProviderError
	if !errors.Is(err, oidc.ErrAccessDenied) || !errors.As(err, &pe) || pe.Description != "the user cancelled the sign-in" {
		t.Fatalf("err = %v, want ErrAccessDenied with the provider's description", err)
	}
	if errors.Is(err, oidc.ErrProvider) {
		t.Error("access_denied also matches ErrProvider")
	}
}

// resign returns the JWT raw with its payload edited by edit and signed by key under kid.
func resign(t *testing.T, raw string, key any, alg jose.SignatureAlgorithm, kid string, edit func(map[string]any)) string {
	t.Helper()
	parts := strings.Split(raw, ".")
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var claims map[string]any
	if err := json.Unmarshal(payload, &claims); err != nil {
		t.Fatal(err)
	}
	edit(claims)
	payload, _ = json.Marshal(claims)
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: jose.JSONWebKey{Key: key, KeyID: kid}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	s, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func editPayload(t *testing.T, raw string, edit func(map[string]any)) string {
	t.Helper()
	parts := strings.Split(raw, ".")
	payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
	var claims map[string]any
	if err := json.Unmarshal(payload, &claims); err != nil {
		t.Fatal(err)
	}
	edit(claims)
	payload, _ = json.Marshal(claims)
	parts[1] = base64.RawURLEncoding.EncodeToString(payload)
	return strings.Join(parts, ".")
}

func TestTamperedIDTokenIsRefused(t *testing.T) {
	h := newHarness(t, nil)
	attacker, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	var replay string
	cases := []struct {
		name   string
		tamper func(t *testing.T, idToken string) string
		want   string
	}{
		{"claims edited, signature kept", func(t *testing.T, id string) string {
			return editPayload(t, id, func(c map[string]any) { c["groups"] = []string{"iomt-admins"} })
		}, "signature"},
		{"signed by another key under the provider's key ID", func(t *testing.T, id string) string {
			return resign(t, id, attacker, jose.RS256, h.p.KeyID(), func(c map[string]any) { c["sub"] = "sub-mallory" })
		}, "signature"},
		{"signed with HMAC under the client secret", func(t *testing.T, id string) string {
			return resign(t, id, []byte(h.p.ClientSecret), jose.HS256, h.p.KeyID(), func(map[string]any) {})
		}, "malformed"},
		{"unsigned", func(t *testing.T, id string) string {
			parts := strings.Split(id, ".")
			return base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none"}`)) + "." + parts[1] + "."
		}, "malformed"},
		{"a valid token of an earlier sign-in (nonce replay)", func(*testing.T, string) string { return replay }, "nonce"},
	}
	// A genuine ID token, for the replay.
	h.net.setTamper(func(m map[string]any) { replay, _ = m["id_token"].(string) })
	if _, err := h.logIn(t, "alice", "/"); err != nil {
		t.Fatal(err)
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h.net.setTamper(func(m map[string]any) { m["id_token"] = c.tamper(t, m["id_token"].(string)) })
			_, err := h.logIn(t, "alice", "/")
			if !errors.Is(err, oidc.ErrInvalidToken) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want ErrInvalidToken mentioning %q", err, c.want)
			}
		})
	}
	t.Run("no ID token", func(t *testing.T) {
		h.net.setTamper(func(m map[string]any) { delete(m, "id_token") })
		if _, err := h.logIn(t, "alice", "/"); !errors.Is(err, oidc.ErrInvalidToken) {
			t.Fatalf("err = %v, want ErrInvalidToken", err)
		}
	})
	t.Run("access token swapped (at_hash)", func(t *testing.T) {
		h.net.setTamper(func(m map[string]any) { m["access_token"] = m["access_token"].(string) + "x" })
		_, err := h.logIn(t, "alice", "/")
		if !errors.Is(err, oidc.ErrInvalidToken) || !strings.Contains(err.Error(), "at_hash") {
			t.Fatalf("err = %v, want ErrInvalidToken for at_hash", err)
		}
	})
}

func TestExpiredIDTokenIsRefused(t *testing.T) {
	h := newHarness(t, nil)
	h.clock.Store(int64(6 * time.Minute)) // the provider's ID tokens live 5 minutes
	_, err := h.logIn(t, "alice", "/")
	if !errors.Is(err, oidc.ErrTokenExpired) {
		t.Fatalf("err = %v, want ErrTokenExpired", err)
	}
}

func TestUserWithoutMappedGroupIsRefused(t *testing.T) {
	h := newHarness(t, nil)
	for _, login := range []string{"bob", "carol"} {
		_, err := h.logIn(t, login, "/")
		if !errors.Is(err, oidc.ErrNoRole) || !strings.Contains(err.Error(), `user "`+login+`"`) ||
			!strings.Contains(err.Error(), "iomt-clinicians") {
			t.Errorf("%s: err = %v, want ErrNoRole naming the user and the mapped groups", login, err)
		}
	}
}

func TestGroupsAreReadFromUserinfoWhenTheIDTokenHasNone(t *testing.T) {
	h := newHarness(t, nil)
	id, err := h.logIn(t, "dave", "/")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(id.Roles, []iomt.Role{iomt.RoleAuditor}) {
		t.Fatalf("roles = %v, want auditor from the userinfo groups", id.Roles)
	}
}

func TestAccessTokenIsVerifiedAndScopesReturned(t *testing.T) {
	h := newHarness(t, func(c *oidc.Config) { c.AccessTokenAudiences = []string{"iomt-api"} })
	h.p.Audiences = []string{"iomt-api"}
	ctx := context.Background()
	at, idt, err := h.p.UserAccessToken(ctx, "alice", "user/Observation.rs", "patient/Patient.r")
	if err != nil {
		t.Fatal(err)
	}
	id, scopes, err := h.rp.VerifyAccessToken(ctx, at)
	if err != nil {
		t.Fatalf("VerifyAccessToken: %v", err)
	}
	if id.Subject != "sub-alice" || id.Login != "alice" || !slices.Equal(id.Roles, []iomt.Role{iomt.RoleClinician}) || id.Issuer != h.p.Issuer {
		t.Errorf("identity %+v", id)
	}
	for _, s := range []string{"user/Observation.rs", "patient/Patient.r", "openid"} {
		if !slices.Contains(scopes, s) {
			t.Errorf("scopes %v lack %s", scopes, s)
		}
	}

	refused := map[string]struct {
		raw  string
		want error
	}{
		"an ID token":       {idt, oidc.ErrInvalidToken},
		"payload edited":    {editPayload(t, at, func(c map[string]any) { c["scope"] = "system/*.cruds" }), oidc.ErrInvalidToken},
		"not a JWT":         {"opaque-token", oidc.ErrInvalidToken},
		"empty":             {"", oidc.ErrInvalidToken},
		"header not base64": {"!!!.e30.e30", oidc.ErrInvalidToken},
		"huge":              {strings.Repeat("a", 20000), oidc.ErrInvalidToken},
	}
	for name, c := range refused {
		if _, _, err := h.rp.VerifyAccessToken(ctx, c.raw); !errors.Is(err, c.want) {
			t.Errorf("%s: err = %v, want %v", name, err, c.want)
		}
	}

	t.Run("another audience", func(t *testing.T) {
		other := newHarness(t, func(c *oidc.Config) { c.AccessTokenAudiences = []string{"billing"} })
		other.p.Audiences = []string{"iomt-api"}
		at, _, err := other.p.UserAccessToken(ctx, "alice", "user/Observation.rs")
		if err != nil {
			t.Fatal(err)
		}
		_, _, err = other.rp.VerifyAccessToken(ctx, at)
		if !errors.Is(err, oidc.ErrInvalidToken) || !strings.Contains(err.Error(), "not for iomt") {
			t.Fatalf("err = %v, want ErrInvalidToken for the audience", err)
		}
	})
	t.Run("another issuer", func(t *testing.T) {
		other := newHarness(t, nil)
		at, _, err := other.p.UserAccessToken(ctx, "alice", "user/Observation.rs")
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := h.rp.VerifyAccessToken(ctx, at); !errors.Is(err, oidc.ErrInvalidToken) {
			t.Fatalf("err = %v, want ErrInvalidToken", err)
		}
	})
	t.Run("expired", func(t *testing.T) {
		h.clock.Store(int64(6 * time.Minute))
		defer h.clock.Store(0)
		if _, _, err := h.rp.VerifyAccessToken(ctx, at); !errors.Is(err, oidc.ErrTokenExpired) {
			t.Fatalf("err = %v, want ErrTokenExpired", err)
		}
	})
	t.Run("user without a mapped group", func(t *testing.T) {
		at, _, err := h.p.UserAccessToken(ctx, "bob", "user/Observation.rs")
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := h.rp.VerifyAccessToken(ctx, at); !errors.Is(err, oidc.ErrNoRole) {
			t.Fatalf("err = %v, want ErrNoRole", err)
		}
	})
}

func TestUnreachableKeysAreAProviderErrorNotABadToken(t *testing.T) {
	h := newHarness(t, nil)
	ctx := context.Background()
	at, _, err := h.p.UserAccessToken(ctx, "alice", "user/Observation.rs")
	if err != nil {
		t.Fatal(err)
	}
	h.net.mu.Lock()
	h.net.keysDown = true
	h.net.mu.Unlock()
	_, _, err = h.rp.VerifyAccessToken(ctx, at)
	if !errors.Is(err, oidc.ErrProvider) || errors.Is(err, oidc.ErrInvalidToken) || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("err = %v, want ErrProvider (so the API can answer 503, not 401)", err)
	}
}

func TestServiceTokenIsVerified(t *testing.T) {
	h := newHarness(t, nil)
	ctx := context.Background()
	h.p.SetService("lab-system", "iomt-services")
	at, err := h.p.ServiceToken(ctx, "lab-system", "system/Observation.rs")
	if err != nil {
		t.Fatal(err)
	}
	id, scopes, err := h.rp.VerifyAccessToken(ctx, at)
	if err != nil {
		t.Fatal(err)
	}
	if id.Subject != "lab-system" || id.Login != "lab-system" || !slices.Equal(id.Roles, []iomt.Role{iomt.RoleService}) ||
		!slices.Equal(scopes, []string{"system/Observation.rs"}) {
		t.Errorf("identity %+v scopes %v", id, scopes)
	}
}

func TestVerifiedAccessTokensAreRememberedForTheirTTL(t *testing.T) {
	// Keys are trusted 10 s: a token verified again after that would fetch them.
	h := newHarness(t, func(c *oidc.Config) { c.AccessTokenCacheTTL = 30 * time.Second; c.KeyMaxAge = 10 * time.Second })
	ctx := context.Background()
	at, _, err := h.p.UserAccessToken(ctx, "alice", "user/Observation.rs")
	if err != nil {
		t.Fatal(err)
	}
	id, scopes, err := h.rp.VerifyAccessToken(ctx, at)
	if err != nil {
		t.Fatal(err)
	}
	id.Roles[0], scopes[0] = "edited", "edited" // a caller's edits reach no other caller
	h.p.RotateKey(t, false)
	h.clock.Store(int64(20 * time.Second))
	id, scopes, err = h.rp.VerifyAccessToken(ctx, at)
	if err != nil || id.Roles[0] != iomt.RoleClinician || scopes[0] == "edited" {
		t.Fatalf("within the TTL: %+v %v %v", id, scopes, err)
	}
	if n := h.net.keyFetches(); n != 1 {
		t.Errorf("%d key fetches within the TTL, want 1", n)
	}
	h.clock.Store(int64(31 * time.Second))
	if _, _, err := h.rp.VerifyAccessToken(ctx, at); !errors.Is(err, oidc.ErrInvalidToken) {
		t.Fatalf("after the TTL, a token of a withdrawn key: err = %v, want ErrInvalidToken", err)
	}
}

func TestRotatedKeyIsPickedUp(t *testing.T) {
	h := newHarness(t, func(c *oidc.Config) { c.KeyMaxAge = time.Minute; c.AccessTokenCacheTTL = -1 })
	ctx := context.Background()
	token := func() string {
		t.Helper()
		at, _, err := h.p.UserAccessToken(ctx, "alice", "user/Observation.rs")
		if err != nil {
			t.Fatal(err)
		}
		return at
	}
	old := token()
	if _, _, err := h.rp.VerifyAccessToken(ctx, old); err != nil {
		t.Fatal(err)
	}
	if n := h.net.keyFetches(); n != 1 {
		t.Fatalf("%d key fetches, want 1", n)
	}
	// Forged tokens do not make the RP ask the provider for its keys again.
	for range 5 {
		_, _, _ = h.rp.VerifyAccessToken(ctx, editPayload(t, old, func(c map[string]any) { c["sub"] = "x" }))
	}
	if n := h.net.keyFetches(); n != 1 {
		t.Fatalf("%d key fetches after forged tokens, want still 1", n)
	}

	h.p.RotateKey(t, false) // the old key is withdrawn at once
	fresh := token()
	// Within KeyRefreshInterval of the last fetch, an unknown key ID is not fetched for.
	_, _, err := h.rp.VerifyAccessToken(ctx, fresh)
	if !errors.Is(err, oidc.ErrInvalidToken) || !strings.Contains(err.Error(), "no key") {
		t.Fatalf("err = %v right after rotation, want ErrInvalidToken (no key yet)", err)
	}
	h.clock.Store(int64(11 * time.Second))
	if _, _, err := h.rp.VerifyAccessToken(ctx, fresh); err != nil {
		t.Fatalf("token signed with the rotated key: %v", err)
	}
	if n := h.net.keyFetches(); n != 2 {
		t.Errorf("%d key fetches, want 2", n)
	}
	// The withdrawn key is gone from the RP's cache too.
	if _, _, err := h.rp.VerifyAccessToken(ctx, old); !errors.Is(err, oidc.ErrInvalidToken) {
		t.Errorf("token of the withdrawn key: err = %v, want ErrInvalidToken", err)
	}
	// A browser sign-in after the rotation works as well.
	if _, err := h.logIn(t, "alice", "/"); err != nil {
		t.Fatalf("sign-in after rotation: %v", err)
	}

	// A graceful rotation (the old key still published) is picked up the same way.
	h.p.RotateKey(t, true)
	h.clock.Store(int64(22 * time.Second))
	if _, _, err := h.rp.VerifyAccessToken(ctx, token()); err != nil {
		t.Fatalf("after a graceful rotation: %v", err)
	}
	// A key the provider withdraws stops working when the cached keys reach KeyMaxAge.
	h.p.RotateKey(t, false)
	if _, _, err := h.rp.VerifyAccessToken(ctx, fresh); err != nil {
		t.Fatalf("a cached key stopped working before KeyMaxAge: %v", err)
	}
	h.clock.Store(int64(22*time.Second + 61*time.Second))
	if _, _, err := h.rp.VerifyAccessToken(ctx, fresh); !errors.Is(err, oidc.ErrInvalidToken) {
		t.Fatalf("a withdrawn key still works after KeyMaxAge: err = %v", err)
	}
}

func TestNewRefusesBadConfiguration(t *testing.T) {
	p := oidctest.Start(t, alice)
	ctx := context.Background()
	good := oidc.Config{Issuer: p.Issuer, ClientID: p.ClientID, ClientSecret: p.ClientSecret, RedirectURL: "http://127.0.0.1/cb", Mapping: mapping}
	if _, err := oidc.New(ctx, good); err != nil {
		t.Fatalf("good config: %v", err)
	}
	for name, tc := range map[string]struct {
		edit func(*oidc.Config)
		want error
	}{
		"http issuer off loopback": {func(c *oidc.Config) { c.Issuer = "http://idp.example.org" }, iomt.ErrInvalid},
		"no client":                {func(c *oidc.Config) { c.ClientID = "" }, iomt.ErrInvalid},
		"relative redirect":        {func(c *oidc.Config) { c.RedirectURL = "/cb" }, iomt.ErrInvalid},
		"no roles":                 {func(c *oidc.Config) { c.Mapping = oidc.Mapping{} }, iomt.ErrInvalid},
		"unknown role":             {func(c *oidc.Config) { c.Mapping.Roles = map[string]iomt.Role{"g": "nurse"} }, iomt.ErrInvalid},
		"short cookie key":         {func(c *oidc.Config) { c.CookieKey = []byte("short") }, iomt.ErrInvalid},
		"issuer mismatch":          {func(c *oidc.Config) { c.Issuer = strings.Replace(p.Issuer, "127.0.0.1", "localhost", 1) }, oidc.ErrProvider},
		"nothing there":            {func(c *oidc.Config) { c.Issuer = "http://127.0.0.1:1" }, oidc.ErrProvider},
	} {
		c := good
		c.Mapping.Roles = map[string]iomt.Role{"iomt-clinicians": iomt.RoleClinician}
		tc.edit(&c)
		if _, err := oidc.New(ctx, c); !errors.Is(err, tc.want) {
			t.Errorf("%s: err = %v, want %v", name, err, tc.want)
		}
	}
}

// BenchmarkVerifyAccessToken measures the check of a bearer JWT on the request path (RS256
// signature, claims, mapping), with the provider's keys cached.
func BenchmarkVerifyAccessToken(b *testing.B) {
	b.Run("verified", func(b *testing.B) { benchmarkVerify(b, -1) })
	b.Run("remembered", func(b *testing.B) { benchmarkVerify(b, time.Minute) })
}

func benchmarkVerify(b *testing.B, ttl time.Duration) {
	h := newHarness(b, func(c *oidc.Config) { c.AccessTokenCacheTTL = ttl })
	ctx := context.Background()
	at, _, err := h.p.UserAccessToken(ctx, "alice", "user/Observation.rs")
	if err != nil {
		b.Fatal(err)
	}
	if _, _, err := h.rp.VerifyAccessToken(ctx, at); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	// The machine is shared: CPU time per operation says more than wall time.
	cpu0 := cpuTime()
	for b.Loop() {
		if _, _, err := h.rp.VerifyAccessToken(ctx, at); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
}

// cpuTime is the process's user and system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
