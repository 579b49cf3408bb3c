package oidc

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/iomt/iomt"
)

const exampleYAML = `# iomt single sign-on
issuer: https://idp.example.org/realms/hospital
client_id: iomt
client_secret_file: SECRET
redirect_url: https://iomt.example.org/auth/oidc/callback
scopes: [openid, profile, email, groups]
tenant: north
access_token_audiences: [iomt-api]
login_timeout: 5m
groups_claim: realm_access.roles
roles:
  iomt-clinicians: clinician
  iomt-admins: admin
teams:
  icu-nurses: icu
team_prefix: "team:"
`

const exampleJSON = `{
  "issuer": "https://idp.example.org",
  "client_id": "iomt",
  "redirect_url": "https://iomt.example.org/auth/oidc/callback",
  "roles": {"iomt-carers": "carer"}
}`

func TestLoadConfigReadsYAMLAndTheSecretFile(t *testing.T) {
	dir := t.TempDir()
	secret := filepath.Join(dir, "secret")
	if err := os.WriteFile(secret, []byte("s3cr3t\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "oidc.yaml")
	if err := os.WriteFile(path, []byte(strings.Replace(exampleYAML, "SECRET", secret, 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := LoadConfig(path, func(string) string { return "from-env" })
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Issuer != "https://idp.example.org/realms/hospital" || cfg.ClientID != "iomt" || cfg.ClientSecret != "s3cr3t" ||
		cfg.RedirectURL != "https://iomt.example.org/auth/oidc/callback" || cfg.Tenant != "north" ||
		!slices.Equal(cfg.Scopes, []string{"openid", "profile", "email", "groups"}) ||
		!slices.Equal(cfg.AccessTokenAudiences, []string{"iomt-api"}) || cfg.LoginTimeout != 5*time.Minute {
		t.Errorf("config %+v", cfg)
	}
	m := cfg.Mapping
	if m.GroupsClaim != "realm_access.roles" || m.Roles["iomt-admins"] != iomt.RoleAdmin || m.Teams["icu-nurses"] != "icu" || m.TeamPrefix != "team:" {
		t.Errorf("mapping %+v", m)
	}
	// The dotted groups claim reaches into the token.
	roles, teams, err := m.apply(must(m.groupsFrom(map[string]any{"realm_access": map[string]any{"roles": []any{"iomt-admins", "team:ward-1"}}})))
	if err != nil || !slices.Equal(roles, []iomt.Role{iomt.RoleAdmin}) || !slices.Equal(teams, []string{"ward-1"}) {
		t.Errorf("roles %v teams %v err %v", roles, teams, err)
	}
}

func must(groups []string, _ bool, err error) []string {
	if err != nil {
		panic(err)
	}
	return groups
}

func TestLoadConfigReadsJSONAndTheSecretFromTheEnvironment(t *testing.T) {
	path := filepath.Join(t.TempDir(), "oidc.json")
	if err := os.WriteFile(path, []byte(exampleJSON), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := LoadConfig(path, func(k string) string {
		if k == SecretEnv {
			return "env-secret"
		}
		return ""
	})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ClientSecret != "env-secret" || cfg.Mapping.Roles["iomt-carers"] != iomt.RoleCarer {
		t.Errorf("config %+v", cfg)
	}
}

func TestConfigRefusals(t *testing.T) {
	base := "issuer: https://idp.example.org\nclient_id: iomt\nredirect_url: https://iomt.example.org/cb\nroles: {g: clinician}\n"
	for name, c := range map[string]struct{ text, want string }{
		"secret inline":   {base + "client_secret: hunter2\n", "client_secret_file"},
		"misspelt key":    {base + "team_prefx: t\n", "team_prefx"},
		"unknown role":    {strings.Replace(base, "clinician", "surgeon", 1), `unknown role "surgeon"`},
		"no roles":        {strings.Replace(base, "roles: {g: clinician}\n", "", 1), "roles is empty"},
		"no issuer":       {strings.Replace(base, "issuer: https://idp.example.org\n", "", 1), "issuer missing"},
		"plain http":      {strings.Replace(base, "https://idp", "http://idp", 1), "must be https"},
		"bad timeout":     {base + "login_timeout: 3d\n", "login_timeout"},
		"long timeout":    {base + "login_timeout: 5h\n", "login_timeout"},
		"not YAML":        {"issuer: [", "oidc config"},
		"bad claim path":  {base + "groups_claim: a..b\n", "groups_claim"},
		"team with a NUL": {base + "teams: {g: \"a\\0b\"}\n", "control character"},
	} {
		_, _, err := parseConfig([]byte(c.text))
		if !errors.Is(err, iomt.ErrInvalid) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want ErrInvalid mentioning %q", name, err, c.want)
		}
	}

	dir := t.TempDir()
	path := filepath.Join(dir, "oidc.yaml")
	if err := os.WriteFile(path, []byte(base+"client_secret_file: "+filepath.Join(dir, "missing")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadConfig(path, nil); err == nil || !strings.Contains(err.Error(), "client secret") {
		t.Errorf("missing secret file: err = %v", err)
	}
	short := filepath.Join(dir, "key")
	_ = os.WriteFile(short, []byte("short"), 0o600)
	if err := os.WriteFile(path, []byte(base+"cookie_key_file: "+short+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadConfig(path, nil); !errors.Is(err, iomt.ErrInvalid) || !strings.Contains(err.Error(), "at least 32") {
		t.Errorf("short cookie key: err = %v", err)
	}
}

func TestGroupsClaimShapes(t *testing.T) {
	m := Mapping{Roles: map[string]iomt.Role{"a": iomt.RoleClinician}}
	for name, c := range map[string]struct {
		claims map[string]any
		want   []string
		err    bool
	}{
		"list":           {map[string]any{"groups": []any{"a", "b"}}, []string{"a", "b"}, false},
		"spaced string":  {map[string]any{"groups": "a b,c"}, []string{"a", "b", "c"}, false},
		"absent":         {map[string]any{}, nil, false},
		"number":         {map[string]any{"groups": 3.0}, nil, true},
		"list of object": {map[string]any{"groups": []any{map[string]any{}}}, nil, true},
	} {
		got, _, err := m.groupsFrom(c.claims)
		if (err != nil) != c.err || !slices.Equal(got, c.want) {
			t.Errorf("%s: groups %v err %v", name, got, err)
		}
		if err != nil && !errors.Is(err, ErrClaims) {
			t.Errorf("%s: err %v is not ErrClaims", name, err)
		}
	}
}

func TestIdentityClaimsAreChecked(t *testing.T) {
	m := Mapping{Roles: map[string]iomt.Role{"a": iomt.RoleClinician}}
	base := func() map[string]any {
		return map[string]any{"iss": "https://idp", "sub": "s1", "preferred_username": "u", "groups": []any{"a"}}
	}
	id, err := m.identityFrom(base())
	if err != nil || id.Login != "u" {
		t.Fatalf("identity %+v err %v", id, err)
	}
	c := base()
	delete(c, "preferred_username")
	c["email"] = "u@example.org"
	if id, err := m.identityFrom(c); err != nil || id.Login != "u@example.org" {
		t.Errorf("email as login: %+v %v", id, err)
	}
	for name, edit := range map[string]func(map[string]any){
		"no sub":          func(c map[string]any) { delete(c, "sub") },
		"no login":        func(c map[string]any) { delete(c, "preferred_username") },
		"control in name": func(c map[string]any) { c["name"] = "Eve\x1b[31m" },
		"long login":      func(c map[string]any) { c["preferred_username"] = strings.Repeat("x", 300) },
	} {
		c := base()
		edit(c)
		if _, err := m.identityFrom(c); !errors.Is(err, ErrClaims) {
			t.Errorf("%s: err = %v, want ErrClaims", name, err)
		}
	}
}

func TestLoginCookieSealing(t *testing.T) {
	s, err := newSealer(make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_800_000_000, 0)
	st := loginState{State: "st", Nonce: "n", Verifier: "v", ReturnTo: "/x", Expires: now.Unix() + 60}
	v := s.seal("a", st)
	if got, err := s.open("a", v, now); err != nil || got != st {
		t.Fatalf("open = %+v, %v", got, err)
	}
	if _, err := s.open("b", v, now); !errors.Is(err, ErrStateMismatch) {
		t.Errorf("a cookie moved to another name opened: %v", err)
	}
	if _, err := s.open("a", v, now.Add(2*time.Minute)); !errors.Is(err, ErrLoginExpired) {
		t.Errorf("expired: %v", err)
	}
	other, _ := newSealer(append(make([]byte, 31), 1))
	if _, err := other.open("a", v, now); !errors.Is(err, ErrStateMismatch) {
		t.Errorf("another key opened it: %v", err)
	}
}
