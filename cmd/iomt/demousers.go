package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/iomt/iomt"
	"github.com/iomt/iomt/identity"
	"github.com/iomt/iomt/node"
	"github.com/iomt/iomt/sim"
)

// demoAccounts creates the demo's people — a ward nurse whose team covers the whole ward, a
// carer the diabetic shares their data with, an administrator and an auditor — and returns
// their sign-in lines. Passwords are random, shown once on the terminal.
func demoAccounts(ctx context.Context, n *node.Node, beds []sim.Bed) (string, error) {
	ward := make([]string, len(beds))
	shared := ""
	for i, b := range beds {
		ward[i] = b.Patient
		if b.Scenario == "t1d-nocturnal-hypo" || (shared == "" && i == len(beds)-1) {
			shared = b.Patient
		}
	}
	people := []struct {
		login, name string
		roles       []iomt.Role
		team        string
	}{
		{"nurse", "Nurse Ada Okafor", []iomt.Role{iomt.RoleClinician}, "ward"},
		{"carer", "Sam (family carer)", []iomt.Role{iomt.RoleCarer}, "home"},
		{"admin", "Ward administrator", []iomt.Role{iomt.RoleAdmin}, ""},
		{"auditor", "Privacy officer", []iomt.Role{iomt.RoleAuditor}, ""},
	}
	teams := map[string]*iomt.CareTeam{
		"ward": {ID: "ward", Tenant: iomt.DefaultTenant, Name: "Demo ward", Patients: ward},
		"home": {ID: "home", Tenant: iomt.DefaultTenant, Name: "Shared with family", Patients: []string{shared}},
	}
	var lines strings.Builder
	lines.WriteString("  accounts    (passwords generated for this run)\n")
	for _, p := range people {
		pw := newToken()[:16]
		u, err := n.Identity().CreateUser(ctx, identity.NewUser{Login: p.login, Name: p.name, Roles: p.roles, Password: pw})
		if err != nil {
			return "", fmt.Errorf("demo account %s: %w", p.login, err)
		}
		if t := teams[p.team]; t != nil {
			t.Members = append(t.Members, u.ID)
		}
		fmt.Fprintf(&lines, "    %-8s %-18s %s\n", p.login, pw, strings.Trim(fmt.Sprint(p.roles), "[]"))
	}
	for _, t := range teams {
		t.UpdatedAt = time.Now().UTC().Truncate(time.Millisecond)
		if err := n.Store().SaveCareTeam(ctx, *t); err != nil {
			return "", fmt.Errorf("demo team %s: %w", t.ID, err)
		}
	}
	return lines.String(), n.ReloadPolicy(ctx)
}
