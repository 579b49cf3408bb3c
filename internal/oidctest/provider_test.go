package oidctest

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"golang.org/x/oauth2"
)

func TestDiscoveryAdvertisesTheEndpointsAndPKCE(t *testing.T) {
	p := Start(t)
	resp, err := http.Get(p.Issuer + "/.well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var d struct {
		Issuer string   `json:"issuer"`
		JWKS   string   `json:"jwks_uri"`
		PKCE   []string `json:"code_challenge_methods_supported"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&d); err != nil {
		t.Fatal(err)
	}
	if d.Issuer != p.Issuer || d.JWKS != p.Issuer+"/keys" || len(d.PKCE) == 0 || d.PKCE[0] != "S256" {
		t.Errorf("discovery %+v", d)
	}
}

func TestLoginFormRefusesAWrongPassword(t *testing.T) {
	p := Start(t, User{Login: "ann", Groups: []string{"g"}})
	conf := oauth2.Config{ClientID: p.ClientID, RedirectURL: unusedRedirect,
		Endpoint: oauth2.Endpoint{AuthURL: p.Issuer + "/authorize"}, Scopes: []string{"openid"}}
	start := conf.AuthCodeURL("state-123", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()))
	resp, body, err := p.LogIn(context.Background(), Browser(), start, "ann", "wrong")
	if err == nil || resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, "Wrong user name or password") ||
		!strings.Contains(body, `id="username"`) {
		t.Fatalf("wrong password: err %v, status %v, body %s", err, resp.Status, body)
	}
	if len(p.Logins()) != 0 {
		t.Errorf("logins %v", p.Logins())
	}
	if _, _, err := p.UserAccessToken(context.Background(), "ann"); err != nil {
		t.Fatalf("right password: %v", err)
	}
}

func TestAuthorizationWithoutPKCEIsRefused(t *testing.T) {
	p := Start(t, User{Login: "ann"})
	c := Browser()
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := c.Get(p.Issuer + "/authorize?" + url.Values{
		"client_id": {p.ClientID}, "redirect_uri": {unusedRedirect}, "response_type": {"code"},
		"scope": {"openid"}, "state": {"s"},
	}.Encode())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, err := resp.Location()
	if err != nil || loc.Query().Get("error") != "invalid_request" || !strings.Contains(loc.Query().Get("error_description"), "PKCE") {
		t.Fatalf("authorization without PKCE: %s %v", resp.Status, loc)
	}
}
