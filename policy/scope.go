package policy

import (
	"fmt"
	"net/url"
	"strings"
)

// Scope is one SMART on FHIR v2 scope: context/Resource.permissions[?query], such as
// "system/Observation.rs", "user/Patient.r" or "patient/Observation.rs?category=vital-signs".
// SMART v1's ".read", ".write" and ".*" are read as "rs", "cud" and "cruds".
type Scope struct {
	Context  string // patient, user or system
	Resource string // a FHIR resource type, or * for all
	Perms    string // a subset of c, r, u, d, s in that order
	// Query, if set, restricts the scope to requests that carry these search parameters
	// with these values (a search of vital-sign Observations, not of all of them).
	Query url.Values
}

// ParseScope reads one scope; it says what is wrong with one it cannot read.
func ParseScope(s string) (Scope, error) {
	raw := s
	var sc Scope
	if i := strings.IndexByte(s, '?'); i >= 0 {
		q, err := url.ParseQuery(s[i+1:])
		if err != nil || len(q) == 0 {
			return sc, fmt.Errorf("scope %q: the query after ? must be name=value pairs", raw)
		}
		sc.Query, s = q, s[:i]
	}
	ctx, rest, ok := strings.Cut(s, "/")
	if !ok {
		return sc, fmt.Errorf("scope %q: want context/Resource.permissions, such as system/Observation.rs", raw)
	}
	switch ctx {
	case "patient", "user", "system":
	default:
		return sc, fmt.Errorf("scope %q: context must be patient, user or system, got %q", raw, ctx)
	}
	res, perms, ok := strings.Cut(rest, ".")
	if !ok || res == "" {
		return sc, fmt.Errorf("scope %q: want Resource.permissions after the context", raw)
	}
	if res != "*" && !(res[0] >= 'A' && res[0] <= 'Z') {
		return sc, fmt.Errorf("scope %q: resource type %q must be a FHIR resource type (such as Observation) or *", raw, res)
	}
	switch perms {
	case "read":
		perms = "rs"
	case "write":
		perms = "cud"
	case "*":
		perms = "cruds"
	}
	if !validPerms(perms) {
		return sc, fmt.Errorf("scope %q: permissions must be letters of cruds in that order, each at most once, got %q", raw, perms)
	}
	sc.Context, sc.Resource, sc.Perms = ctx, res, perms
	return sc, nil
}

func validPerms(p string) bool {
	if p == "" {
		return false
	}
	order := "cruds"
	at := 0
	for _, c := range p {
		i := strings.IndexRune(order[at:], c)
		if i < 0 {
			return false
		}
		at += i + 1
	}
	return true
}

// ParseScopes reads a space-separated list, as OAuth carries them. Scopes that are not SMART
// resource scopes (openid, profile, groups, launch, offline_access, a provider's own) are
// skipped: they grant nothing here; a resource scope that is malformed is an error.
func ParseScopes(list string) ([]Scope, error) {
	out := []Scope{}
	for _, f := range strings.Fields(list) {
		if !IsResourceScope(f) {
			continue
		}
		s, err := ParseScope(f)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

// IsResourceScope reports whether s claims to be a SMART resource scope (patient/, user/ or
// system/ followed by a resource), as opposed to openid, launch/patient or a provider's own.
func IsResourceScope(s string) bool {
	ctx, rest, ok := strings.Cut(s, "/")
	return ok && (ctx == "patient" || ctx == "user" || ctx == "system") && strings.Contains(rest, ".")
}

// String writes the scope back in v2 syntax.
func (s Scope) String() string {
	out := s.Context + "/" + s.Resource + "." + s.Perms
	if len(s.Query) > 0 {
		out += "?" + s.Query.Encode()
	}
	return out
}

// Permits reports whether the scope allows interaction on resource, for a request without
// search parameters (a scope with a query permits only requests that carry it: PermitsQuery).
func (s Scope) Permits(resource, interaction string) bool {
	return s.PermitsQuery(resource, interaction, nil)
}

// PermitsQuery is Permits for a request with search parameters q.
func (s Scope) PermitsQuery(resource, interaction string, q url.Values) bool {
	if s.Resource != "*" && s.Resource != resource {
		return false
	}
	if interaction == "" || !strings.Contains(s.Perms, interaction) {
		return false
	}
	for k, want := range s.Query {
		got := q[k]
		if len(got) != 1 || len(want) != 1 || got[0] != want[0] {
			return false
		}
	}
	return true
}
