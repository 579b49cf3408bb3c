package web_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"strconv"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/iomt/iomt"
	"github.com/iomt/iomt/identity/oidc"
	"github.com/iomt/iomt/internal/oidctest"
	"github.com/iomt/iomt/node"
	"github.com/iomt/iomt/sim"
)

// A real OpenID provider signs a clinician in through the dashboard in Chromium: the account
// is made at first sign-on from the provider's groups, and the ward shows their team's
// patients only.
func TestSingleSignOnShowsOnlyTheTeamsPatients(t *testing.T) {
	chromium(t)
	if testing.Short() {
		t.Skip("browser test skipped with -short")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // the node takes the address; the provider must know the callback first
	op := oidctest.Start(t, oidctest.User{Login: "olu", Name: "Olu Adeyemi", Groups: []string{"iomt-clinicians", "team:ward-1"}})
	redirect := "http://" + addr + "/auth/oidc/callback"
	op.AllowRedirect(redirect)
	n, err := node.Start(context.Background(), node.Config{
		DataDir: t.TempDir(), HTTPAddr: addr, MQTTAddr: "127.0.0.1:0", NoSync: true,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		People: node.PeopleConfig{BootstrapToken: "test-bootstrap-token", OIDC: &oidc.Config{
			Issuer: op.Issuer, ClientID: op.ClientID, ClientSecret: op.ClientSecret, RedirectURL: redirect,
			Scopes:  []string{"openid", "profile", "email", "groups"},
			Mapping: oidc.Mapping{Roles: map[string]iomt.Role{"iomt-clinicians": iomt.RoleClinician}, TeamPrefix: "team:"},
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	base := "http://" + n.HTTPAddr()
	beds, err := sim.Provision(context.Background(), sim.API{Base: base, Token: "test-bootstrap-token"}, []sim.Bed{
		{Scenario: "stable-adult", Seed: 1}, {Scenario: "stable-adult", Seed: 2}, {Scenario: "stable-adult", Seed: 3},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i, tm := range []iomt.CareTeam{
		{ID: "ward-1", Tenant: iomt.DefaultTenant, Name: "Ward 1", Patients: []string{beds[0].Patient}},
		{ID: "ward-2", Tenant: iomt.DefaultTenant, Name: "Ward 2", Patients: []string{beds[1].Patient, beds[2].Patient}},
	} {
		if err := n.Store().SaveCareTeam(ctx, tm); err != nil {
			t.Fatalf("team %d: %v", i, err)
		}
	}
	if err := n.ReloadPolicy(ctx); err != nil {
		t.Fatal(err)
	}

	p := openBrowser(t, base+"/")
	p.poll("the single sign-on button", `!!document.querySelector("#sso") && !document.querySelector("#sso").hidden`)
	p.do("choose single sign-on", chromedp.Click(chromedp.CSS("#sso")))
	p.poll("the provider's login page", `location.href.startsWith(`+strconv.Quote(op.Issuer)+`) && !!document.querySelector("#username")`)
	p.do("sign in at the provider", append(append(fill("#username", "olu"), fill("#password", oidctest.DefaultPassword)...),
		chromedp.Click(chromedp.CSS("#login")))...)
	p.poll("back on the dashboard, signed in", `location.href.startsWith(`+strconv.Quote(base)+`) && (document.querySelector("#whoami")?.textContent || "").includes("Olu Adeyemi")`)
	p.poll("the ward shows one patient", `document.querySelectorAll(".tile").length === 1`)
	if got := p.eval(`document.querySelector(".tile").dataset.patient`); got != beds[0].Patient {
		t.Fatalf("the ward shows patient %s, want %s (team ward-1's)", got, beds[0].Patient)
	}
	// The account was made at first sign-on, with the role and the team the groups map to.
	us, err := n.Store().Users(ctx, iomt.UserFilter{Tenant: iomt.DefaultTenant, Login: "olu"})
	if err != nil || len(us) != 1 || !us[0].HasRole(iomt.RoleClinician) || us[0].Issuer != op.Issuer {
		t.Fatalf("account after single sign-on: %+v %v", us, err)
	}
	ts, _ := n.Store().CareTeams(ctx, iomt.CareTeamFilter{Member: us[0].ID})
	if len(ts) != 1 || ts[0].ID != "ward-1" {
		t.Fatalf("teams of the single sign-on user: %+v", ts)
	}
	// Another team's patient is refused, and the page says how to open it in an emergency.
	p.navigate(base + "/patient.html?id=" + beds[1].Patient)
	p.poll("refused with the way to break the glass", `!document.querySelector("#denied").hidden && document.querySelector("#denied-detail").textContent.includes("break-glass")`)
}
