package oidc

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/iomt/iomt"
)

// Mapping turns a verified token's claims into iomt roles and care teams.
type Mapping struct {
	// GroupsClaim names the claim that holds the user's groups (default "groups"). A dotted
	// path reaches into objects, e.g. "realm_access.roles" for Keycloak realm roles. The
	// claim may be a list of strings or one string of space- or comma-separated names.
	GroupsClaim string `yaml:"groups_claim" json:"groups_claim"`
	// LoginClaim names the claim used as the user's login (default: preferred_username,
	// then email when that is absent).
	LoginClaim string `yaml:"login_claim" json:"login_claim"`
	// Roles maps a group to the iomt role it grants. A user with several mapped groups gets
	// every role they map to; one with none is refused (ErrNoRole).
	Roles map[string]iomt.Role `yaml:"roles" json:"roles"`
	// Teams maps a group to the ID of a care team the user is a member of.
	Teams map[string]string `yaml:"teams" json:"teams"`
	// TeamPrefix, if set, makes every group that starts with it a care team whose ID is the
	// rest of the name: with "team:", group "team:ward-3" is team "ward-3".
	TeamPrefix string `yaml:"team_prefix" json:"team_prefix"`
}

const defaultGroupsClaim = "groups"

// Check refuses a mapping that grants an unknown role, names an empty group or team, or
// could grant nothing.
func (m Mapping) Check() error {
	if len(m.Roles) == 0 {
		return fmt.Errorf("%w: oidc mapping: roles is empty, so every user would be refused; map at least one group to a role", iomt.ErrInvalid)
	}
	for g, r := range m.Roles {
		if g == "" {
			return fmt.Errorf("%w: oidc mapping: roles has an empty group name", iomt.ErrInvalid)
		}
		if !slices.Contains(iomt.Roles(), r) {
			return fmt.Errorf("%w: oidc mapping: group %q maps to unknown role %q (one of admin, clinician, carer, auditor, service)", iomt.ErrInvalid, g, r)
		}
	}
	for g, t := range m.Teams {
		if g == "" || t == "" {
			return fmt.Errorf("%w: oidc mapping: teams has an empty group (%q) or team ID (%q)", iomt.ErrInvalid, g, t)
		}
		if err := iomt.CheckText("oidc mapping team", t, iomt.MaxNameLen); err != nil {
			return err
		}
	}
	if p := m.GroupsClaim; p != "" && (strings.HasPrefix(p, ".") || strings.HasSuffix(p, ".") || strings.Contains(p, "..")) {
		return fmt.Errorf("%w: oidc mapping: groups_claim %q is not a claim name or dotted path", iomt.ErrInvalid, p)
	}
	return nil
}

// apply maps groups to sorted, distinct roles and teams. It refuses (ErrNoRole) a user whose
// groups grant no role.
func (m Mapping) apply(groups []string) (roles []iomt.Role, teams []string, err error) {
	for _, g := range groups {
		if r, ok := m.Roles[g]; ok && !slices.Contains(roles, r) {
			roles = append(roles, r)
		}
		if t, ok := m.Teams[g]; ok && !slices.Contains(teams, t) {
			teams = append(teams, t)
		}
		if m.TeamPrefix != "" {
			if t, ok := strings.CutPrefix(g, m.TeamPrefix); ok && t != "" && !slices.Contains(teams, t) {
				if iomt.CheckText("team", t, iomt.MaxNameLen) != nil {
					continue // a group name iomt cannot hold as an ID grants nothing
				}
				teams = append(teams, t)
			}
		}
	}
	if len(roles) == 0 {
		mapped := make([]string, 0, len(m.Roles))
		for g := range m.Roles {
			mapped = append(mapped, g)
		}
		sort.Strings(mapped)
		return nil, nil, fmt.Errorf("%w: none of the user's groups %q is mapped to a role (mapped groups: %s)",
			ErrNoRole, groups, strings.Join(mapped, ", "))
	}
	slices.Sort(roles)
	slices.Sort(teams)
	return roles, teams, nil
}

// groupsFrom reads the groups claim out of decoded claims. An absent claim is no groups
// (found false); a claim of another shape is an error.
func (m Mapping) groupsFrom(claims map[string]any) (groups []string, found bool, err error) {
	path := m.GroupsClaim
	if path == "" {
		path = defaultGroupsClaim
	}
	var v any = claims
	for part := range strings.SplitSeq(path, ".") {
		obj, ok := v.(map[string]any)
		if !ok {
			return nil, false, nil
		}
		if v, ok = obj[part]; !ok {
			return nil, false, nil
		}
	}
	switch v := v.(type) {
	case nil:
		return nil, false, nil
	case string:
		return strings.FieldsFunc(v, func(r rune) bool { return r == ' ' || r == ',' }), true, nil
	case []any:
		if len(v) > iomt.MaxListItems {
			return nil, true, fmt.Errorf("%w: claim %q lists %d groups, at most %d are read", ErrClaims, path, len(v), iomt.MaxListItems)
		}
		groups = make([]string, 0, len(v))
		for i, g := range v {
			s, ok := g.(string)
			if !ok {
				return nil, true, fmt.Errorf("%w: claim %q item %d is a %T, not a string", ErrClaims, path, i, g)
			}
			groups = append(groups, s)
		}
		return groups, true, nil
	default:
		return nil, true, fmt.Errorf("%w: claim %q is a %T, not a list of group names", ErrClaims, path, v)
	}
}

// identityFrom builds an Identity from the verified claims of an ID or access token (iss and
// sub already checked by the verifier).
func (m Mapping) identityFrom(claims map[string]any) (Identity, error) {
	str := func(name string) string { s, _ := claims[name].(string); return s }
	id := Identity{Issuer: str("iss"), Subject: str("sub"), Name: str("name"), Email: str("email")}
	if id.Subject == "" {
		return Identity{}, fmt.Errorf("%w: the token has no sub claim", ErrClaims)
	}
	if m.LoginClaim != "" {
		id.Login = str(m.LoginClaim)
	} else if id.Login = str("preferred_username"); id.Login == "" {
		id.Login = id.Email
	}
	if id.Login == "" {
		want := m.LoginClaim
		if want == "" {
			want = "preferred_username or email"
		}
		return Identity{}, fmt.Errorf("%w: the token of subject %q has no %s claim to use as a login (ask the provider for the profile or email scope)", ErrClaims, id.Subject, want)
	}
	for _, f := range []struct{ name, v string }{{"sub", id.Subject}, {"login", id.Login}, {"name", id.Name}, {"email", id.Email}} {
		if err := iomt.CheckText(f.name, f.v, iomt.MaxNameLen); err != nil {
			return Identity{}, fmt.Errorf("%w: %w", ErrClaims, err)
		}
	}
	groups, _, err := m.groupsFrom(claims)
	if err != nil {
		return Identity{}, err
	}
	// Groups iomt could not store (control characters, over-long) map to nothing and are
	// left out of what the audit trail is given.
	id.Groups = slices.DeleteFunc(slices.Clone(groups), func(g string) bool { return iomt.CheckText("group", g, iomt.MaxNameLen) != nil })
	if id.Roles, id.Teams, err = m.apply(groups); err != nil {
		return Identity{}, fmt.Errorf("user %q of %s: %w", id.Login, id.Issuer, err)
	}
	return id, nil
}
