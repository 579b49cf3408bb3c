package node

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"time"

	"github.com/iomt/iomt"
	"github.com/iomt/iomt/api"
	"github.com/iomt/iomt/audit"
	"github.com/iomt/iomt/identity"
	"github.com/iomt/iomt/identity/oidc"
	"github.com/iomt/iomt/policy"
)

// PeopleConfig configures sign-in and access.
type PeopleConfig struct {
	// BootstrapToken, if set, is a bearer token with every permission in the default tenant,
	// for provisioning and scripts. Read it from a file or the environment, never argv.
	BootstrapToken string
	// IdleTimeout and SessionLifetime bound sessions (default 15 min and 12 h).
	IdleTimeout, SessionLifetime time.Duration
	// MFARoles must sign in with a TOTP second factor.
	MFARoles []iomt.Role
	// OIDC, if set, signs people in through the hospital's OpenID provider and accepts its
	// access tokens (see identity/oidc).
	OIDC *oidc.Config
	// AuditKeyFile is the Ed25519 key that signs the audit trail's checkpoints (created,
	// mode 0600, with its public key beside it as audit.pub); default DataDir/audit.key.
	AuditKeyFile string
	// PolicyRefresh is how often the policy re-reads teams and patients, so changes made on
	// other nodes reach this one (default 10 s).
	PolicyRefresh time.Duration
}

// people is the component that knows who is calling: identity (sessions, tokens), the
// policy, and the audit trail they are recorded in.
type people struct {
	identity *identity.Service
	policy   *policy.Policy
	auditor  api.Auditor
	recorder *audit.Recorder
	sso      *sso // nil without single sign-on
}

// close writes the audit trail's last checkpoint.
func (p *people) close() error {
	if p.recorder == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.recorder.Close(ctx); err != nil {
		return fmt.Errorf("audit trail: %w", err)
	}
	return nil
}

// startPeople opens the audit trail, loads the policy and keeps it fresh until ctx ends.
func startPeople(ctx context.Context, st iomt.Store, ncfg Config, log *slog.Logger) (*people, error) {
	cfg := ncfg.People
	keyFile := cfg.AuditKeyFile
	if keyFile == "" {
		keyFile = filepath.Join(ncfg.DataDir, audit.KeyFile)
	}
	signer, err := audit.LoadSigner(keyFile)
	if err != nil {
		return nil, fmt.Errorf("audit key: %w", err)
	}
	pol := policy.New()
	id, err := identity.New(identity.Config{Store: st, IdleTimeout: cfg.IdleTimeout, Lifetime: cfg.SessionLifetime,
		MFARoles: cfg.MFARoles, Logger: log.With("component", "identity"),
		TeamsChanged: func(ctx context.Context) {
			if err := pol.Reload(ctx, st, time.Now()); err != nil {
				log.Warn("policy reload after single sign-on", "err", err)
			}
		}})
	if err != nil {
		return nil, err
	}
	if err := pol.Reload(ctx, st, time.Now()); err != nil {
		return nil, err
	}
	every := cfg.PolicyRefresh
	if every <= 0 {
		every = 10 * time.Second
	}
	go func() {
		t := time.NewTicker(every)
		defer t.Stop()
		sweep := time.Now()
		for {
			select {
			case <-ctx.Done():
				return
			case now := <-t.C:
				if err := pol.Reload(ctx, st, now); err != nil && ctx.Err() == nil {
					log.Warn("policy reload", "err", err)
				}
				// Ended sessions are refused when used; the sweep keeps the table small.
				if now.Sub(sweep) > 5*time.Minute {
					sweep = now
					if _, err := st.DeleteSessions(ctx, iomt.SessionFilter{ExpiredAt: now}); err != nil && ctx.Err() == nil {
						log.Warn("session sweep", "err", err)
					}
				}
			}
		}
	}()
	var single *sso
	if cfg.OIDC != nil {
		if single, err = startSSO(ctx, cfg.OIDC, id); err != nil {
			return nil, err
		}
	}
	// Last: the recorder runs until close, which nothing calls if Start fails before here.
	rec := audit.NewRecorder(st, audit.Options{Signer: signer, Node: ncfg.NodeID, Logger: log.With("component", "audit")})
	return &people{identity: id, policy: pol, auditor: rec, recorder: rec, sso: single}, nil
}

// Identity returns the node's sign-in service (for `iomt demo` and tests that create users).
func (n *Node) Identity() *identity.Service { return n.people.identity }

// Policy returns the node's access policy.
func (n *Node) Policy() *policy.Policy { return n.people.policy }

// ReloadPolicy re-reads teams and patients now.
func (n *Node) ReloadPolicy(ctx context.Context) error {
	if err := n.people.policy.Reload(ctx, n.store, time.Now()); err != nil {
		return fmt.Errorf("node: reload policy: %w", err)
	}
	return nil
}

// fhirPrincipal hands FHIR the caller the API authenticated.
func fhirPrincipal(r *http.Request) (policy.Principal, bool) { return api.PrincipalFrom(r.Context()) }

// Routes returns the API's route table, each route with its policy.
func (n *Node) Routes() []api.Route { return n.routes }

// ssoConfig is what the API gets of single sign-on: nothing without it.
func (p *people) ssoConfig() (api.SSOProvider, func(context.Context, string) (policy.Principal, error)) {
	if p.sso == nil {
		return nil, nil
	}
	return p.sso, p.sso.verifyJWT
}
