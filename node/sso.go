package node

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/iomt/iomt/api"
	"github.com/iomt/iomt/identity"
	"github.com/iomt/iomt/identity/oidc"
	"github.com/iomt/iomt/policy"
)

// sso adapts the OpenID Connect relying party to the API: the browser's sign-in and the
// bearer JWTs of integrations that act for a user.
type sso struct {
	rp       *oidc.RP
	identity *identity.Service
}

func startSSO(ctx context.Context, cfg *oidc.Config, id *identity.Service) (*sso, error) {
	rp, err := oidc.New(ctx, *cfg)
	if err != nil {
		return nil, fmt.Errorf("single sign-on: %w", err)
	}
	return &sso{rp: rp, identity: id}, nil
}

func external(id oidc.Identity) identity.External {
	return identity.External{Tenant: id.Tenant, Issuer: id.Issuer, Subject: id.Subject, Login: id.Login, Name: id.Name,
		Roles: id.Roles, Teams: id.Teams}
}

// unavailable marks a provider failure as the API's 503, not a refusal of the user.
func unavailable(err error) error {
	if errors.Is(err, oidc.ErrProvider) {
		return fmt.Errorf("%w: %w", api.ErrSSOUnavailable, err)
	}
	return err
}

func (s *sso) Begin(w http.ResponseWriter, r *http.Request, returnTo string) error {
	return unavailable(s.rp.Begin(w, r, returnTo))
}

func (s *sso) Finish(w http.ResponseWriter, r *http.Request) (identity.External, string, error) {
	id, err := s.rp.Finish(w, r)
	if err != nil {
		return identity.External{}, "", unavailable(err)
	}
	return external(id), id.ReturnTo, nil
}

// verifyJWT authenticates a bearer access token from the provider: the user it names (their
// account kept in line with the token's groups) with the token's SMART scopes on top of
// their own permissions.
func (s *sso) verifyJWT(ctx context.Context, raw string) (policy.Principal, error) {
	id, scopes, err := s.rp.VerifyAccessToken(ctx, raw)
	if err != nil {
		return policy.Principal{}, err
	}
	u, err := s.identity.SyncExternal(ctx, external(id))
	if err != nil {
		return policy.Principal{}, err
	}
	if u.Disabled {
		return policy.Principal{}, identity.ErrDisabled
	}
	p := identity.Principal(u, policy.KindUser, "jwt")
	if p.Scopes, err = policy.ParseScopes(strings.Join(scopes, " ")); err != nil {
		return policy.Principal{}, fmt.Errorf("token scopes: %w", err)
	}
	return p, nil
}
