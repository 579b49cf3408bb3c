package node_test

import (
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/iomt/iomt/gateway/uplink/uplinktest"
	"github.com/iomt/iomt/node"
)

// Webhooks to plain http:// on another machine are refused where they are configured: a
// routing file at start, and routing saved through the API (422, with the URL and the flag),
// unless --allow-insecure-webhooks. Nothing is sent to them in these tests.
func TestInsecureWebhooksRefused(t *testing.T) {
	alarms := hookedAlarms(t, "http://pager.example.org/hook")
	cfg := node.Config{DataDir: t.TempDir(), HTTPAddr: "127.0.0.1:0", MQTTAddr: "127.0.0.1:0", People: node.PeopleConfig{BootstrapToken: adminToken}, Alarms: alarms}
	backends(t, &cfg)
	n, err := node.Start(t.Context(), cfg)
	if err == nil {
		n.Close()
		t.Fatal("a node started with routing to a plain http:// webhook on another machine")
	}
	for _, want := range []string{"alarm routing", `"http://pager.example.org/hook"`, "plain http:// to another machine", "--allow-insecure-webhooks"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("refusal %q lacks %q", err, want)
		}
	}
	alarms.AllowInsecureWebhooks = true
	startWith(t, func(c *node.Config) { c.Alarms = alarms }) // allowed: it starts

	e := startWith(t, nil)
	doc := func(hook, contact string) []byte {
		return []byte("teams:\n  - id: ward\n    escalation: {}\n    hooks: [\"" + hook + "\"]\n    members:\n" +
			"      - {id: ann, role: nurse, contacts: [{channel: webhook, address: \"" + contact + "\"}]}\n")
	}
	var problem struct{ Detail string }
	code := e.call("PUT", "/api/v1/alarm-routing", adminToken, doc("https://pager.example.org/hook", "http://10.20.30.40/ann"), &problem)
	if code != 422 || !strings.Contains(problem.Detail, "member ann") || !strings.Contains(problem.Detail, "http://10.20.30.40/ann") ||
		!strings.Contains(problem.Detail, "--allow-insecure-webhooks") {
		t.Errorf("insecure member webhook saved: %d %+v", code, problem)
	}
	if code := e.call("PUT", "/api/v1/alarm-routing", adminToken, doc("https://pager.example.org/hook", "https://pager.example.org/ann"), nil); code/100 != 2 {
		t.Errorf("https webhooks: %d", code)
	}
	if code := e.call("PUT", "/api/v1/alarm-routing", adminToken, doc("http://127.0.0.1:9/hook", "http://localhost:9/ann"), nil); code/100 != 2 {
		t.Errorf("loopback http webhooks: %d", code)
	}
}

// relay is an SMTP relay (go-smtp) that keeps what it is sent and whether it came over TLS.
type relay struct {
	mu   sync.Mutex
	msgs []bool // one per message: over TLS?
	addr string
}

type relaySession struct {
	r *relay
	c *smtp.Conn
}

func (r *relay) NewSession(c *smtp.Conn) (smtp.Session, error) { return &relaySession{r, c}, nil }
func (s *relaySession) Mail(string, *smtp.MailOptions) error   { return nil }
func (s *relaySession) Rcpt(string, *smtp.RcptOptions) error   { return nil }
func (s *relaySession) Reset()                                 {}
func (s *relaySession) Logout() error                          { return nil }
func (s *relaySession) Data(rd io.Reader) error {
	if _, err := io.ReadAll(rd); err != nil {
		return err
	}
	_, isTLS := s.c.TLSConnectionState()
	s.r.mu.Lock()
	s.r.msgs = append(s.r.msgs, isTLS)
	s.r.mu.Unlock()
	return nil
}

func (r *relay) received() []bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]bool(nil), r.msgs...)
}

func startRelay(t *testing.T, tlsCfg *tls.Config) *relay {
	t.Helper()
	r := &relay{}
	srv := smtp.NewServer(r)
	srv.Domain, srv.TLSConfig = "localhost", tlsCfg
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r.addr = ln.Addr().String()
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })
	return r
}

// Alarm e-mail goes over STARTTLS, the relay verified against --smtp-ca; a relay that offers
// no STARTTLS gets nothing (the delivery fails, counted) unless --smtp-insecure-plaintext.
func TestAlarmEmailRequiresSTARTTLS(t *testing.T) {
	pki := uplinktest.NewPKI(t, "unused")
	cert, err := tls.LoadX509KeyPair(pki.ServerCert, pki.ServerKey)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	rules, routes := filepath.Join(dir, "rules.yaml"), filepath.Join(dir, "routing.yaml")
	routing := `default_team: ward
policies:
  - id: now
    tiers: [{roles: [nurse]}]
teams:
  - id: ward
    escalation: {high: now, medium: now}
    members:
      - {id: ann, role: nurse, contacts: [{channel: email, address: ann@example.org}]}
`
	if errors.Join(os.WriteFile(rules, []byte(alarmRulesYAML), 0o600), os.WriteFile(routes, []byte(routing), 0o600)) != nil {
		t.Fatal("writing the alarm configuration")
	}
	raise := func(e *env) {
		t.Helper()
		_, dev := e.ward()
		body := []byte(`[{"bn":"urn:dev:id:` + dev.ID + `:","bt":` + strconv.FormatInt(time.Now().Unix(), 10) + `,"n":"59408-5","u":"%","v":84}]`)
		if code := e.call("POST", "/api/v1/ingest", dev.Token, body, nil); code != 200 {
			t.Fatalf("ingest: %d", code)
		}
	}
	waitMail := func(r *relay) []bool {
		t.Helper()
		for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			if m := r.received(); len(m) > 0 {
				return m
			}
		}
		t.Fatal("no alarm e-mail reached the relay")
		return nil
	}

	secure := startRelay(t, &tls.Config{Certificates: []tls.Certificate{cert}})
	e := startWith(t, func(c *node.Config) {
		c.Alarms = node.AlarmsConfig{RulesFile: rules, RoutingFile: routes, SMTPAddr: secure.addr, SMTPFrom: "alarms@iomt.test", SMTPCAFile: pki.CAFile}
	})
	raise(e)
	if m := waitMail(secure); !m[0] {
		t.Error("alarm e-mail sent without TLS to a relay offering STARTTLS")
	}

	plain := startRelay(t, nil)
	var logs syncBuffer
	e = startWith(t, func(c *node.Config) {
		c.Alarms = node.AlarmsConfig{RulesFile: rules, RoutingFile: routes, SMTPAddr: plain.addr, SMTPFrom: "alarms@iomt.test"}
		c.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	})
	raise(e)
	e.waitMetric(t, `iomt_alarm_deliveries_total{channel="email",outcome="failed"}`, 15*time.Second)
	if m := plain.received(); len(m) != 0 {
		t.Errorf("a relay without STARTTLS received %d alarm e-mails", len(m))
	}
	// The node said so at start, before any alarm.
	if l := logs.String(); !strings.Contains(l, "alarm e-mail will fail") || !strings.Contains(l, "does not offer STARTTLS") {
		t.Errorf("no error at start about the relay:\n%s", l)
	}

	e = startWith(t, func(c *node.Config) {
		c.Alarms = node.AlarmsConfig{RulesFile: rules, RoutingFile: routes, SMTPAddr: plain.addr, SMTPFrom: "alarms@iomt.test", SMTPInsecurePlaintext: true}
	})
	raise(e)
	if m := waitMail(plain); m[0] {
		t.Error("the plaintext relay reports TLS")
	}

	cfg := node.Config{DataDir: t.TempDir(), HTTPAddr: "127.0.0.1:0", MQTTAddr: "127.0.0.1:0", People: node.PeopleConfig{BootstrapToken: adminToken},
		Alarms: node.AlarmsConfig{SMTPAddr: secure.addr, SMTPCAFile: pki.ServerKey}}
	if n, err := node.Start(t.Context(), cfg); err == nil {
		n.Close()
		t.Error("a node started with a key for --smtp-ca")
	} else if !strings.Contains(err.Error(), "--smtp-ca") {
		t.Errorf("bad --smtp-ca: %v", err)
	}
}

// The EHR export to plain http:// on another machine stops the node at start with the reason,
// unless --fhir-export-allow-http. (No reading is ingested: nothing is exported anywhere.)
func TestPlainHTTPExportRefused(t *testing.T) {
	cfg := node.Config{DataDir: t.TempDir(), HTTPAddr: "127.0.0.1:0", MQTTAddr: "127.0.0.1:0", People: node.PeopleConfig{BootstrapToken: adminToken},
		FHIRExport: node.FHIRExportConfig{URL: "http://ehr.example.org/fhir"}}
	if n, err := node.Start(t.Context(), cfg); err == nil {
		n.Close()
		t.Fatal("a node started exporting to a plain http:// EHR on another machine")
	} else if !strings.Contains(err.Error(), "plain http to another machine") || !strings.Contains(err.Error(), "--fhir-export-allow-http") {
		t.Errorf("refusal: %v", err)
	}
	startWith(t, func(c *node.Config) {
		c.FHIRExport = node.FHIRExportConfig{URL: "http://ehr.example.org/fhir", AllowHTTP: true}
	})
}
