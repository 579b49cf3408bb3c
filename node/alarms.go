package node

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/iomt/iomt"
	"github.com/iomt/iomt/alarm"
	"github.com/iomt/iomt/alarm/notify"
	"github.com/iomt/iomt/alarm/service"
	"github.com/iomt/iomt/certfile"
	"github.com/iomt/iomt/codes"
)

// AlarmsConfig configures the alarm service. Secrets are never logged.
type AlarmsConfig struct {
	// RulesFile is the rule set (YAML) for tenants without rules saved through the API;
	// default: the embedded adult defaults (alarm/defaults.yaml).
	RulesFile string
	// RoutingFile is the routing (teams, rosters, escalation policies) used until routing is
	// saved through the API; default: the dashboard only.
	RoutingFile string
	// WebhookSecret signs webhook deliveries (HMAC-SHA256); required for webhook contacts.
	WebhookSecret string
	// AllowInsecureWebhooks accepts webhooks to plain http:// URLs on other machines
	// (--allow-insecure-webhooks); by default routing naming one is refused.
	AllowInsecureWebhooks bool
	// SMTP relay for e-mail contacts (host:port), sender, optional credentials.
	SMTPAddr, SMTPFrom, SMTPUser, SMTPPassword string
	// SMTPCAFile verifies the relay's STARTTLS certificate (PEM); empty: the system roots.
	SMTPCAFile string
	// SMTPInsecurePlaintext sends e-mail to a relay that does not offer STARTTLS, in clear
	// (--smtp-insecure-plaintext); by default such a relay gets nothing.
	SMTPInsecurePlaintext bool
	// CommandTimeout is how long a device has to acknowledge a command (default 30 s).
	CommandTimeout time.Duration
}

// Event kinds the node uses to reach devices connected to any node.
const (
	eventDeviceCommand = "device-command"
	eventDeviceAck     = "device-ack"
	eventDeviceStatus  = "device-status"
	alarmGroup         = "alarms"
)

type deviceCommand struct {
	Tenant  string          `json:"tenant"`
	Device  string          `json:"device"`
	Payload json.RawMessage `json:"payload"`
}

type deviceStatus struct {
	Tenant  string            `json:"tenant"`
	Patient string            `json:"patient"`
	Status  iomt.DeviceStatus `json:"status"`
}

// alarmParts is what startAlarms builds.
type alarmParts struct {
	svc       *service.Service
	commander *notify.MQTTCommander
}

// startAlarms builds the engine, notifiers and service; the caller subscribes it to the bus.
func (n *Node) startAlarms(ctx context.Context, cfg AlarmsConfig, cat *codes.Catalog, events iomt.Events, reg prometheus.Registerer, log *slog.Logger) (*alarmParts, error) {
	// Without a rules file the engine compiles the embedded defaults itself.
	ecfg := alarm.Config{Logger: log}
	if cfg.RulesFile != "" {
		doc, err := os.ReadFile(cfg.RulesFile)
		if err != nil {
			return nil, fmt.Errorf("alarm rules: %w", err)
		}
		if ecfg.Rules, err = service.CompileRules(doc, cat); err != nil {
			return nil, fmt.Errorf("alarm rules %s: %w", cfg.RulesFile, err)
		}
	}
	if cfg.RoutingFile != "" {
		doc, err := os.ReadFile(cfg.RoutingFile)
		if err != nil {
			return nil, fmt.Errorf("alarm routing: %w", err)
		}
		r, err := service.CompileRouting(doc)
		if err == nil {
			err = service.CheckWebhooks(doc, cfg.AllowInsecureWebhooks)
		}
		if err != nil {
			return nil, fmt.Errorf("alarm routing %s: %w", cfg.RoutingFile, err)
		}
		ecfg.Router = r
	}
	engine, err := alarm.NewEngine(ecfg)
	if err != nil {
		return nil, err
	}

	// A command goes to every node as an event; the node holding the device's connection
	// delivers it (under the device's own tenant, looked up there). The device's ack comes
	// back the same way to the node that waits for it.
	commander := &notify.MQTTCommander{
		Timeout: cfg.CommandTimeout,
		Publish: func(tenant, device string, payload []byte) error {
			data, err := json.Marshal(deviceCommand{Tenant: tenant, Device: device, Payload: payload})
			if err != nil {
				return err
			}
			return events.PublishEvent(ctx, iomt.Event{Tenant: tenant, Kind: eventDeviceCommand, Time: time.Now(), Data: data})
		},
	}
	notifiers := map[alarm.Channel]notify.Notifier{
		alarm.DeviceCmd: &notify.DeviceNotifier{Commander: commander, Resolve: n.deviceOfKind},
	}
	// A channel without its settings still has a notifier: its deliveries fail, counted and
	// logged, rather than vanish while the alarm escalates.
	notifiers[alarm.Webhook] = notify.Unconfigured{Why: "webhook deliveries are signed: set --alarm-webhook-secret (IOMT_ALARM_WEBHOOK_SECRET)"}
	if cfg.WebhookSecret != "" {
		secret := []byte(cfg.WebhookSecret)
		notifiers[alarm.Webhook] = &notify.Webhook{Secret: func(string) ([]byte, error) { return secret, nil }, Logger: log,
			AllowHTTP: cfg.AllowInsecureWebhooks}
	}
	notifiers[alarm.Email] = notify.Unconfigured{Why: "e-mail needs a relay: set --smtp-addr (IOMT_SMTP_ADDR)"}
	if cfg.SMTPAddr != "" {
		m := &notify.Email{Addr: cfg.SMTPAddr, From: cfg.SMTPFrom, Username: cfg.SMTPUser, Password: cfg.SMTPPassword,
			InsecurePlaintext: cfg.SMTPInsecurePlaintext}
		if cfg.SMTPCAFile != "" {
			roots, err := certfile.Pool(cfg.SMTPCAFile)
			if err != nil {
				return nil, fmt.Errorf("smtp CA (--smtp-ca): %w", err)
			}
			m.TLS = &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
		}
		notifiers[alarm.Email] = m
		// Said at start rather than at the first alarm: a relay without STARTTLS, or with a
		// certificate that does not verify, would fail every alarm e-mail.
		go func() {
			if err := m.Check(ctx); err != nil && ctx.Err() == nil {
				log.Error("alarm e-mail will fail: the SMTP relay did not pass the check", "relay", cfg.SMTPAddr, "err", err)
			}
		}()
	}
	deliveries := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "iomt_alarm_deliveries_total", Help: "Alarm deliveries carried out by this node, by channel and outcome (ok, failed).",
	}, []string{"channel", "outcome"})
	if err := reg.Register(deliveries); err != nil {
		return nil, fmt.Errorf("alarm metrics: %w", err)
	}
	dispatcher := &notify.Dispatcher{Notifiers: notifiers, Done: func(d alarm.Delivery, err error) {
		outcome := "ok"
		if err != nil {
			outcome = "failed"
		}
		deliveries.WithLabelValues(string(d.Channel), outcome).Inc()
	}}

	o := n.bus.(owner)
	svc, err := service.New(service.Config{
		Engine: engine, Store: n.store, Events: events, Catalog: cat, Notify: dispatcher.Dispatch,
		Owned: func() []int { return o.Owned(alarmGroup) }, Partition: o.Partition,
		Tenant: func(ctx context.Context, patient string) (string, error) {
			p, err := n.store.Patient(ctx, patient)
			return p.Tenant, err
		},
		Node: n.cfg.NodeID, Logger: log.With("component", "alarms"), Registerer: reg,
		AllowInsecureWebhooks: cfg.AllowInsecureWebhooks,
	})
	if err != nil {
		return nil, err
	}
	if err := svc.Load(ctx); err != nil {
		// A stored document this version cannot compile must not keep the ward unmonitored:
		// the defaults apply to that tenant, loudly.
		log.Error("alarm configuration", "err", err)
	}
	return &alarmParts{svc: svc, commander: commander}, nil
}

// deviceOfKind finds the patient's bound device of a kind, for device commands.
func (n *Node) deviceOfKind(ctx context.Context, patient, kind string) (string, error) {
	ds, err := n.store.Devices(ctx, iomt.DeviceFilter{Patient: patient})
	if err != nil {
		return "", err
	}
	for _, d := range ds {
		if d.Kind == kind {
			return d.ID, nil
		}
	}
	return "", fmt.Errorf("patient %s has no device of kind %s: %w", patient, kind, iomt.ErrNotFound)
}

// onDeviceEvent carries device commands to this node's broker and acks to the commander.
func (n *Node) onDeviceEvent(parts *alarmParts, e iomt.Event) {
	switch e.Kind {
	case eventDeviceCommand:
		var c deviceCommand
		if err := json.Unmarshal(e.Data, &c); err != nil {
			return
		}
		d, err := n.store.Device(context.Background(), c.Device)
		if err != nil {
			n.log.Warn("device command", "device", c.Device, "err", err)
			return
		}
		if err := n.broker.SendCommand(d.Tenant, c.Device, c.Payload); err != nil {
			n.log.Warn("device command", "device", c.Device, "err", err)
		}
	case eventDeviceAck:
		var c deviceCommand
		if err := json.Unmarshal(e.Data, &c); err != nil {
			return
		}
		// Every node hears every ack; only the one waiting for the command knows it.
		_ = parts.commander.HandleAck(c.Device, c.Payload)
	}
}

// statusTap tells the alarm service of battery reports as ingest records device status.
type statusTap struct {
	iomt.Registry
	events iomt.Events
	log    *slog.Logger
}

func (t statusTap) UpdateDeviceStatus(ctx context.Context, ss []iomt.DeviceStatus) error {
	err := t.Registry.UpdateDeviceStatus(ctx, ss)
	for _, s := range ss {
		if s.Battery == nil {
			continue
		}
		d, derr := t.Registry.Device(ctx, s.Device)
		if derr != nil || d.Patient == "" {
			continue
		}
		data, jerr := json.Marshal(deviceStatus{Tenant: d.Tenant, Patient: d.Patient, Status: s})
		if jerr == nil {
			jerr = t.events.PublishEvent(ctx, iomt.Event{Tenant: d.Tenant, Patient: d.Patient, Kind: eventDeviceStatus, Time: s.LastSeen, Data: data})
		}
		if jerr != nil {
			t.log.Warn("battery report not told to the alarm service", "device", s.Device, "err", jerr)
		}
	}
	return err
}
