package notify

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/smtp"
	"strings"
	"time"

	"github.com/iomt/iomt/alarm"
)

// Email sends a plain-text alarm notification through an SMTP relay over STARTTLS (the
// relay's certificate verified), with authentication when a username is set. A relay that
// does not offer STARTTLS is refused before anything is sent, unless InsecurePlaintext.
type Email struct {
	Addr     string // host:port of the relay
	From     string
	Username string
	Password string // never logged
	// TLS configures STARTTLS; nil: the relay's host name, system roots. A config without a
	// ServerName gets the relay's host name.
	TLS *tls.Config
	// InsecurePlaintext sends alarms to a relay that does not offer STARTTLS, in clear (a
	// relay on a protected network that cannot do TLS). Credentials are still never sent
	// in clear except to localhost (net/smtp's PlainAuth refuses).
	InsecurePlaintext bool
	Timeout           time.Duration // the whole exchange; default 30s
	Clock             func() time.Time
}

// ErrNoSTARTTLS is the error of a delivery to a relay that does not offer STARTTLS when
// plaintext is not allowed.
var ErrNoSTARTTLS = errors.New("relay does not offer STARTTLS")

// Notify sends one e-mail to d.Address. The Message-ID derives from the delivery ID, so a
// retried delivery is recognisable as the same message.
func (m *Email) Notify(ctx context.Context, d alarm.Delivery, a alarm.Alarm) error {
	if !strings.Contains(d.Address, "@") || strings.ContainsAny(d.Address, "\r\n<>") {
		return fmt.Errorf("email: bad address %q", d.Address)
	}
	ctx, cancel := context.WithTimeout(ctx, m.timeout())
	defer cancel()
	c, host, done, err := m.open(ctx)
	if err != nil {
		return err
	}
	defer done()
	if m.Username != "" {
		// PlainAuth itself refuses to send the password unencrypted except to localhost.
		if err := c.Auth(smtp.PlainAuth("", m.Username, m.Password, host)); err != nil {
			return fmt.Errorf("email: authenticate as %s: %w", m.Username, err)
		}
	}
	if err := c.Mail(m.From); err != nil {
		return fmt.Errorf("email: MAIL FROM: %w", err)
	}
	if err := c.Rcpt(d.Address); err != nil {
		return fmt.Errorf("email: RCPT TO %s: %w", d.Address, err)
	}
	w, err := c.Data()
	if err != nil {
		return fmt.Errorf("email: DATA: %w", err)
	}
	if _, err := w.Write(m.message(d, a)); err != nil {
		return fmt.Errorf("email: write: %w", err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("email: end of data: %w", err)
	}
	if err := c.Quit(); err != nil {
		return fmt.Errorf("email: QUIT: %w", err)
	}
	return nil
}

func (m *Email) timeout() time.Duration {
	if m.Timeout <= 0 {
		return 30 * time.Second
	}
	return m.Timeout
}

// open connects to the relay, greets it and starts TLS, or refuses a relay without STARTTLS
// unless InsecurePlaintext; done closes what it opened.
func (m *Email) open(ctx context.Context) (*smtp.Client, string, func(), error) {
	host, _, err := net.SplitHostPort(m.Addr)
	if err != nil {
		return nil, "", nil, fmt.Errorf("email: relay address %q: %w", m.Addr, err)
	}
	var dialer net.Dialer
	conn, err := dialer.DialContext(ctx, "tcp", m.Addr)
	if err != nil {
		return nil, "", nil, fmt.Errorf("email: connect to %s: %w", m.Addr, err)
	}
	// net/smtp has no context: the deadline bounds every step, and closing on cancel ends it.
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	client, err := smtp.NewClient(conn, host)
	if err != nil {
		stop()
		conn.Close()
		return nil, "", nil, fmt.Errorf("email: greeting from %s: %w", m.Addr, err)
	}
	closeAll := func() { stop(); client.Close() }
	if err := m.startTLS(client, host); err != nil {
		closeAll()
		return nil, "", nil, err
	}
	return client, host, closeAll, nil
}

func (m *Email) startTLS(c *smtp.Client, host string) error {
	if err := c.Hello("iomt"); err != nil {
		return fmt.Errorf("email: HELO: %w", err)
	}
	if ok, _ := c.Extension("STARTTLS"); !ok {
		if m.InsecurePlaintext {
			return nil
		}
		// Nothing is sent: neither the credentials nor the alarm (patient, readings).
		return fmt.Errorf("email: %s: %w: refusing to send credentials or alarms in clear "+
			"(allow it with --smtp-insecure-plaintext only for a relay on a protected network)", m.Addr, ErrNoSTARTTLS)
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if m.TLS != nil {
		cfg = m.TLS.Clone()
	}
	if cfg.ServerName == "" {
		cfg.ServerName = host
	}
	if err := c.StartTLS(cfg); err != nil {
		return fmt.Errorf("email: STARTTLS with %s: %w", m.Addr, err)
	}
	return nil
}

// Check connects to the relay as a delivery would (greeting, STARTTLS and its certificate)
// and leaves without authenticating or sending anything, so a node can say at start that
// alarm e-mail would fail, and why.
func (m *Email) Check(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, m.timeout())
	defer cancel()
	c, _, done, err := m.open(ctx)
	if err != nil {
		return err
	}
	defer done()
	if err := c.Quit(); err != nil {
		return fmt.Errorf("email: QUIT: %w", err)
	}
	return nil
}

// Subject is the e-mail subject of an alarm notification.
func Subject(d alarm.Delivery, a alarm.Alarm) string {
	s := fmt.Sprintf("[%s] %s: %s", strings.ToUpper(a.Priority.String()), a.Patient, a.Message)
	if d.Reason == alarm.Escalated {
		s = "ESCALATED " + s
	}
	return oneLine(s)
}

func oneLine(s string) string { return strings.NewReplacer("\r", " ", "\n", " ").Replace(s) }

func (m *Email) message(d alarm.Delivery, a alarm.Alarm) []byte {
	clock := m.Clock
	if clock == nil {
		clock = time.Now
	}
	var b strings.Builder
	hdr := func(k, v string) { b.WriteString(k + ": " + oneLine(v) + "\r\n") }
	hdr("From", m.From)
	hdr("To", d.Address)
	hdr("Subject", Subject(d, a))
	hdr("Date", clock().Format(time.RFC1123Z))
	hdr("Message-ID", "<"+d.ID+"@iomt>")
	hdr("X-Iomt-Delivery", d.ID)
	hdr("X-Iomt-Alarm", a.ID)
	hdr("MIME-Version", "1.0")
	hdr("Content-Type", "text/plain; charset=utf-8")
	b.WriteString("\r\n")
	line := func(k, v string) {
		if v != "" {
			b.WriteString(k + ": " + oneLine(v) + "\r\n")
		}
	}
	line("Alarm", a.Message)
	line("Priority", a.Priority.String())
	line("Patient", a.Patient)
	line("Device", a.Device)
	line("Rule", fmt.Sprintf("%s (rule set v%d)", a.Rule, a.RuleVersion))
	line("Raised", a.Raised.UTC().Format(time.RFC3339))
	line("State", string(a.State))
	line("Why you", fmt.Sprintf("%s, escalation tier %d (%s)", d.Role, d.Tier+1, d.Reason))
	line("Alarm ID", a.ID)
	b.WriteString("\r\nAcknowledge it on the dashboard; until then it escalates to the next tier.\r\n")
	return []byte(b.String())
}
