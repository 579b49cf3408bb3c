package oidc

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/iomt/iomt"
)

// FuzzParseConfig: the configuration file never panics the parser, and what it accepts
// is a mapping New accepts.
func FuzzParseConfig(f *testing.F) {
	f.Add([]byte(exampleYAML))
	f.Add([]byte(exampleJSON))
	f.Add([]byte("roles: {a: admin}\nteams: {b: \"\"}"))
	f.Add([]byte("issuer: http://127.0.0.1:1\nclient_id: x\nredirect_url: http://x/cb\nroles: {a: carer}\ngroups_claim: a.b.c"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, _, err := parseConfig(data)
		if err != nil {
			if !errors.Is(err, iomt.ErrInvalid) {
				t.Fatalf("error without ErrInvalid: %v", err)
			}
			return
		}
		if err := cfg.Mapping.Check(); err != nil {
			t.Fatalf("accepted a mapping Check refuses: %v", err)
		}
		if cfg.Issuer == "" || cfg.ClientID == "" || cfg.RedirectURL == "" {
			t.Fatalf("accepted a config without issuer, client or redirect: %+v", cfg)
		}
	})
}

// FuzzClaims: any claims (as a provider might send, after signature checks) map to an
// identity that iomt can store, or to a refusal; never a panic.
func FuzzClaims(f *testing.F) {
	f.Add(`{"iss":"https://idp","sub":"s","preferred_username":"u","groups":["g1","team:w"]}`, "groups", "team:")
	f.Add(`{"sub":"s","email":"e@x","realm_access":{"roles":"g1 g2"}}`, "realm_access.roles", "")
	f.Add(`{"sub":"s","preferred_username":"u","groups":[1,2]}`, "groups", "t")
	f.Add(`{"sub":"s","preferred_username":"u","scope":"a b","scp":["c"]}`, "a.b", "")
	f.Fuzz(func(t *testing.T, claimsJSON, groupsClaim, prefix string) {
		var claims map[string]any
		if json.Unmarshal([]byte(claimsJSON), &claims) != nil {
			return
		}
		m := Mapping{GroupsClaim: groupsClaim, TeamPrefix: prefix,
			Roles: map[string]iomt.Role{"g1": iomt.RoleClinician, "g2": iomt.RoleAuditor}, Teams: map[string]string{"g2": "audit"}}
		if m.Check() != nil {
			return
		}
		_, _ = scopesFrom(claims)
		id, err := m.identityFrom(claims)
		if err != nil {
			if !errors.Is(err, ErrClaims) && !errors.Is(err, ErrNoRole) {
				t.Fatalf("unexpected error kind: %v", err)
			}
			return
		}
		if id.Issuer == "" {
			id.Issuer = "https://idp" // set from the verified token in Finish and VerifyAccessToken
		}
		u := iomt.User{ID: "u1", Tenant: "t", Login: id.Login, Name: id.Name, Roles: id.Roles, Issuer: id.Issuer, Subject: id.Subject}
		if err := iomt.CheckUser(u); err != nil {
			t.Fatalf("an accepted identity makes a user iomt refuses: %v (%+v)", err, id)
		}
		for _, team := range id.Teams {
			if team == "" || iomt.CheckText("team", team, iomt.MaxNameLen) != nil {
				t.Fatalf("bad team %q", team)
			}
		}
		if !slices.IsSorted(id.Roles) || !slices.IsSorted(id.Teams) {
			t.Fatalf("roles or teams unsorted: %v %v", id.Roles, id.Teams)
		}
	})
}

// FuzzLoginCookie: whatever a browser sends as the login cookie is refused with
// ErrStateMismatch (or ErrLoginExpired), never a panic, and never accepted unless sealed here.
func FuzzLoginCookie(f *testing.F) {
	s, _ := newSealer([]byte(strings.Repeat("k", 32)))
	now := time.Unix(1_800_000_000, 0)
	good := s.seal("iomt_oidc_abc", loginState{State: "abc", Nonce: "n", Verifier: "v", ReturnTo: "/", Expires: now.Unix() + 60})
	f.Add(good)
	f.Add("")
	f.Add("AAAA")
	f.Add(strings.Repeat("A", 4000))
	f.Fuzz(func(t *testing.T, value string) {
		st, err := s.open("iomt_oidc_abc", value, now)
		if err != nil {
			if !errors.Is(err, ErrStateMismatch) && !errors.Is(err, ErrLoginExpired) {
				t.Fatalf("unexpected error kind: %v", err)
			}
			return
		}
		if value != good && st.State != "abc" {
			t.Fatalf("a cookie not sealed here opened: %+v", st)
		}
	})
}

// FuzzAccessTokenHeader: the pre-check of a bearer token's header never panics.
func FuzzAccessTokenHeader(f *testing.F) {
	f.Add("eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.e30.sig")
	f.Add("e30")
	f.Add("!!.!!")
	f.Fuzz(func(t *testing.T, raw string) {
		if err := checkAccessTokenType(raw); err != nil && !errors.Is(err, ErrInvalidToken) {
			t.Fatalf("unexpected error kind: %v", err)
		}
		_ = localPath(raw)
	})
}
