package fhir

import (
	"net/http"
	"slices"
)

// SMARTConfig describes the OAuth 2.0 / OpenID Connect authorization server whose access
// tokens this server accepts, as /.well-known/smart-configuration publishes it (SMART App
// Launch 2). The zero value says that no provider is configured: clients then use API tokens
// an admin issued, and the document lists only what is true without one.
type SMARTConfig struct {
	// Issuer and JWKSURI are the OpenID provider's; both set: capability sso-openid-connect.
	Issuer  string
	JWKSURI string
	// AuthorizationEndpoint and TokenEndpoint both set: capability launch-standalone
	// (authorization code with PKCE S256).
	AuthorizationEndpoint string
	TokenEndpoint         string
	RevocationEndpoint    string
	IntrospectionEndpoint string
	// GrantTypes the token endpoint supports; authorization_code if empty and a token
	// endpoint is set.
	GrantTypes []string
	// TokenEndpointAuthMethods the provider accepts from clients: none gives capability
	// client-public, client_secret_basic or client_secret_post client-confidential-symmetric,
	// private_key_jwt client-confidential-asymmetric.
	TokenEndpointAuthMethods []string
	// Capabilities adds what the fields cannot tell (such as permission-offline).
	Capabilities []string
}

// smartDocument is the JSON of /.well-known/smart-configuration.
type smartDocument struct {
	Issuer                   string   `json:"issuer,omitempty"`
	JWKSURI                  string   `json:"jwks_uri,omitempty"`
	AuthorizationEndpoint    string   `json:"authorization_endpoint,omitempty"`
	TokenEndpoint            string   `json:"token_endpoint,omitempty"`
	RevocationEndpoint       string   `json:"revocation_endpoint,omitempty"`
	IntrospectionEndpoint    string   `json:"introspection_endpoint,omitempty"`
	GrantTypesSupported      []string `json:"grant_types_supported,omitempty"`
	TokenEndpointAuthMethods []string `json:"token_endpoint_auth_methods_supported,omitempty"`
	ResponseTypesSupported   []string `json:"response_types_supported,omitempty"`
	ScopesSupported          []string `json:"scopes_supported"`
	Capabilities             []string `json:"capabilities"`
	CodeChallengeMethods     []string `json:"code_challenge_methods_supported"`
}

// scopeResources are the SMART resource scopes this server applies: the resource types it
// serves with the interactions each supports (no delete).
var scopeResources = []struct{ typ, perms string }{
	{"Patient", "crus"}, {"Device", "crus"}, {"DeviceMetric", "rs"}, {"Observation", "rs"},
}

func (c SMARTConfig) document() smartDocument {
	d := smartDocument{Issuer: c.Issuer, JWKSURI: c.JWKSURI, AuthorizationEndpoint: c.AuthorizationEndpoint,
		TokenEndpoint: c.TokenEndpoint, RevocationEndpoint: c.RevocationEndpoint, IntrospectionEndpoint: c.IntrospectionEndpoint,
		GrantTypesSupported: c.GrantTypes, TokenEndpointAuthMethods: c.TokenEndpointAuthMethods,
		CodeChallengeMethods: []string{"S256"},
		// Scopes are read in v2 syntax (with queries such as ?category=vital-signs) and in
		// v1's .read/.write, whoever issued the token.
		Capabilities: []string{"permission-v1", "permission-v2"}}
	if c.TokenEndpoint != "" && len(d.GrantTypesSupported) == 0 {
		d.GrantTypesSupported = []string{"authorization_code"}
	}
	sso := c.Issuer != "" && c.JWKSURI != ""
	if sso {
		d.Capabilities = append(d.Capabilities, "sso-openid-connect")
		d.ScopesSupported = append(d.ScopesSupported, "openid", "fhirUser", "profile")
	}
	if c.AuthorizationEndpoint != "" && c.TokenEndpoint != "" {
		d.Capabilities = append(d.Capabilities, "launch-standalone", "permission-user")
		d.ResponseTypesSupported = []string{"code"}
	}
	for _, m := range c.TokenEndpointAuthMethods {
		switch m {
		case "none":
			d.Capabilities = append(d.Capabilities, "client-public")
		case "client_secret_basic", "client_secret_post":
			d.Capabilities = append(d.Capabilities, "client-confidential-symmetric")
		case "private_key_jwt":
			d.Capabilities = append(d.Capabilities, "client-confidential-asymmetric")
		}
	}
	d.Capabilities = append(d.Capabilities, c.Capabilities...)
	slices.Sort(d.Capabilities)
	d.Capabilities = slices.Compact(d.Capabilities)
	for _, ctx := range []string{"user", "system"} {
		for _, r := range scopeResources {
			d.ScopesSupported = append(d.ScopesSupported, ctx+"/"+r.typ+"."+r.perms)
		}
		d.ScopesSupported = append(d.ScopesSupported, ctx+"/Observation.rs?category=vital-signs")
	}
	return d
}

// smartConfiguration answers GET /.well-known/smart-configuration, without authentication:
// clients read it to learn how to get a token.
func (s *server) smartConfiguration(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		s.fail(w, r, methodNotAllowed(w, "GET"))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	// Browser apps discover the server from their own origin; the document holds no secret.
	w.Header().Set("Access-Control-Allow-Origin", "*")
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(s.smart)
	}
}
