package service

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/iomt/iomt"
	"github.com/iomt/iomt/alarm"
	"github.com/iomt/iomt/alarm/notify"
	"github.com/iomt/iomt/codes"
)

// eventConfig tells every node that a tenant's rules or the routing changed in the store.
const eventConfig = "alarm-config"

// Config documents: rules per tenant, routing for the deployment (tenant "").
const (
	KindRules   = "rules"
	KindRouting = "routing"
)

// CompileRules parses and compiles a rule set document; errors match iomt.ErrInvalid.
func CompileRules(doc []byte, cat *codes.Catalog) (*alarm.Rules, error) {
	rs, err := alarm.ParseRuleSetBytes(doc)
	if err != nil {
		return nil, err
	}
	return alarm.Compile(rs, cat)
}

// CompileRouting parses and validates a routing document; errors match iomt.ErrInvalid.
func CompileRouting(doc []byte) (*alarm.Router, error) {
	rc, err := alarm.ParseRouting(bytes.NewReader(doc))
	if err != nil {
		return nil, err
	}
	// NewRouter's errors already match iomt.ErrInvalid.
	return alarm.NewRouter(rc)
}

// CheckWebhooks refuses a routing document whose webhooks (members' contacts, teams' hooks)
// include plain http:// URLs on other machines, unless allowHTTP: alarms would cross the
// network in clear. Each offending URL is named; errors match iomt.ErrInvalid.
func CheckWebhooks(doc []byte, allowHTTP bool) error {
	rc, err := alarm.ParseRouting(bytes.NewReader(doc))
	if err != nil {
		return err
	}
	var errs []error
	for _, t := range rc.Teams {
		for _, m := range t.Members {
			for _, c := range m.Contacts {
				if c.Channel != alarm.Webhook {
					continue
				}
				if err := notify.CheckURL(c.Address, allowHTTP); err != nil {
					errs = append(errs, fmt.Errorf("team %s: member %s: %w", t.ID, m.ID, err))
				}
			}
		}
		for _, h := range t.Hooks {
			if err := notify.CheckURL(h, allowHTTP); err != nil {
				errs = append(errs, fmt.Errorf("team %s: hooks: %w", t.ID, err))
			}
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("alarm: routing: %w: %w", iomt.ErrInvalid, errors.Join(errs...))
	}
	return nil
}

// Load applies the newest stored rules of every tenant and the stored routing to the engine.
// Nodes call it at start and whenever another node saved a new version.
func (s *Service) Load(ctx context.Context) error {
	cat := s.cfg.Catalog
	cs, err := s.cfg.Store.AlarmConfigs(ctx)
	if err != nil {
		return fmt.Errorf("alarm service: load configuration: %w", err)
	}
	var errs []error
	for _, c := range cs {
		switch c.Kind {
		case KindRules:
			r, err := CompileRules(c.Doc, cat)
			if err != nil {
				errs = append(errs, fmt.Errorf("tenant %q rules version %d: %w", c.Tenant, c.Version, err))
				continue
			}
			if err := s.handleWait(ctx, s.e.SetRules(c.Tenant, r)); err != nil {
				errs = append(errs, err)
			}
		case KindRouting:
			r, err := CompileRouting(c.Doc)
			if err != nil {
				errs = append(errs, fmt.Errorf("routing version %d: %w", c.Version, err))
				continue
			}
			// Routing stored before webhooks were checked (or on a node that allowed plain
			// http) still applies, so its people are paged; the webhook notifier refuses the
			// insecure deliveries, and this says why.
			if err := CheckWebhooks(c.Doc, s.cfg.AllowInsecureWebhooks); err != nil {
				errs = append(errs, fmt.Errorf("routing version %d (applied; its insecure webhooks fail): %w", c.Version, err))
			}
			s.e.SetRouter(r)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("alarm service: stored configuration: %w", errors.Join(errs...))
	}
	return nil
}

// SaveRules compiles a tenant's new rule set, stores it as the version it names, applies it
// here and has every other node load it. Its errors match iomt.ErrInvalid (the document, with
// every *alarm.RuleError) or iomt.ErrDuplicate (that version exists).
func (s *Service) SaveRules(ctx context.Context, tenant string, doc []byte, who string) (iomt.AlarmConfig, error) {
	r, err := CompileRules(doc, s.cfg.Catalog)
	if err != nil {
		return iomt.AlarmConfig{}, err
	}
	c := iomt.AlarmConfig{Tenant: tenant, Kind: KindRules, Version: r.Version(), Doc: doc, Who: who, Saved: s.cfg.Clock().UTC()}
	if err := s.cfg.Store.SaveAlarmConfig(ctx, c); err != nil {
		return c, err
	}
	if err := s.handleWait(ctx, s.e.SetRules(tenant, r)); err != nil {
		return c, err
	}
	s.announce(ctx, c)
	return c, nil
}

// SaveRouting validates new routing, stores it as the next version, applies it here and has
// every other node load it.
func (s *Service) SaveRouting(ctx context.Context, doc []byte, who string) (iomt.AlarmConfig, error) {
	r, err := CompileRouting(doc)
	if err != nil {
		return iomt.AlarmConfig{}, err
	}
	if err := CheckWebhooks(doc, s.cfg.AllowInsecureWebhooks); err != nil {
		return iomt.AlarmConfig{}, err
	}
	prev, err := s.Current(ctx, "", KindRouting)
	if err != nil && !errors.Is(err, iomt.ErrNotFound) {
		return iomt.AlarmConfig{}, err
	}
	c := iomt.AlarmConfig{Kind: KindRouting, Version: prev.Version + 1, Doc: doc, Who: who, Saved: s.cfg.Clock().UTC()}
	if err := s.cfg.Store.SaveAlarmConfig(ctx, c); err != nil {
		return c, err
	}
	s.e.SetRouter(r)
	s.announce(ctx, c)
	return c, nil
}

// Current returns the newest stored document of a kind for a tenant (ErrNotFound if none was
// ever saved: the node's defaults apply).
func (s *Service) Current(ctx context.Context, tenant, kind string) (iomt.AlarmConfig, error) {
	cs, err := s.cfg.Store.AlarmConfigs(ctx)
	if err != nil {
		return iomt.AlarmConfig{}, err
	}
	for _, c := range cs {
		if c.Tenant == tenant && c.Kind == kind {
			return c, nil
		}
	}
	return iomt.AlarmConfig{}, fmt.Errorf("no %s saved for tenant %q: %w", kind, tenant, iomt.ErrNotFound)
}

func (s *Service) announce(ctx context.Context, c iomt.AlarmConfig) {
	err := s.cfg.Events.PublishEvent(ctx, iomt.Event{Tenant: c.Tenant, Kind: eventConfig, Time: time.Now(),
		Data: []byte(fmt.Sprintf(`{"kind":%q,"version":%d,"node":%q}`, c.Kind, c.Version, s.cfg.Node))})
	if err != nil {
		s.log.Warn("alarm configuration change not announced; other nodes load it at restart", "err", err)
	}
}
