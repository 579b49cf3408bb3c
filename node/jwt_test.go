package node_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/iomt/iomt"
	"github.com/iomt/iomt/identity/oidc"
	"github.com/iomt/iomt/internal/oidctest"
	"github.com/iomt/iomt/node"
)

// An access token from the hospital's OpenID provider acts for its user, with the token's
// SMART scopes on top of the user's own permissions: a Patient-read scope reads the user's
// team's patient, not its observations, and never another team's patient.
func TestProviderAccessToken(t *testing.T) {
	op := oidctest.Start(t, oidctest.User{Login: "olu", Name: "Olu", Groups: []string{"iomt-clinicians", "team:team-a"}})
	e := startWith(t, func(c *node.Config) {
		c.People.OIDC = &oidc.Config{Issuer: op.Issuer, ClientID: op.ClientID, ClientSecret: op.ClientSecret,
			RedirectURL: "http://127.0.0.1:1/auth/oidc/callback", Scopes: []string{"openid", "groups"},
			Mapping: oidc.Mapping{Roles: map[string]iomt.Role{"iomt-clinicians": iomt.RoleClinician}, TeamPrefix: "team:"}}
	})
	ctx := context.Background()
	var mine, theirs struct{ ID string }
	e.call("POST", "/api/v1/patients", adminToken, map[string]string{"name": "Mine"}, &mine)
	e.call("POST", "/api/v1/patients", adminToken, map[string]string{"name": "Theirs"}, &theirs)
	for id, p := range map[string]string{"team-a": mine.ID, "team-b": theirs.ID} {
		if err := e.n.Store().SaveCareTeam(ctx, iomt.CareTeam{ID: id, Tenant: iomt.DefaultTenant, Patients: []string{p}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.n.ReloadPolicy(ctx); err != nil {
		t.Fatal(err)
	}
	access, _, err := op.UserAccessToken(ctx, "olu", "groups", "user/Patient.r")
	if err != nil {
		t.Fatal(err)
	}
	get := func(path string) int {
		req, _ := http.NewRequest("GET", e.base+path, nil)
		req.Header.Set("Authorization", "Bearer "+access)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode == 401 {
			b := make([]byte, 512)
			n, _ := resp.Body.Read(b)
			t.Logf("401: %s", b[:n])
		}
		return resp.StatusCode
	}
	if got := get("/api/v1/patients/" + mine.ID); got != 200 {
		t.Fatalf("own team's patient with user/Patient.r: %d", got)
	}
	if got := get("/api/v1/patients/" + mine.ID + "/vitals"); got != 403 {
		t.Fatalf("observations with only user/Patient.r: %d, want 403", got)
	}
	if got := get("/api/v1/patients/" + theirs.ID); got != 403 {
		t.Fatalf("another team's patient: %d, want 403", got)
	}
	if got := get("/api/v1/users"); got != 403 {
		t.Fatalf("an admin route: %d, want 403", got)
	}
	access = access[:len(access)-4] + "AAAA"
	if got := get("/api/v1/patients/" + mine.ID); got != 401 {
		t.Fatalf("a tampered token: %d, want 401", got)
	}
}
