package notify

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"errors"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/iomt/iomt/alarm"
)

var (
	testAlarm = alarm.Alarm{ID: "al_1", Tenant: "default", Patient: "p1", Device: "ox-1", Rule: "spo2-low", RuleVersion: 1,
		Priority: alarm.High, State: alarm.Active, Raised: time.Date(2026, 11, 24, 8, 0, 0, 0, time.UTC), Value: 82, Limit: 85,
		Message: "SpO2 82 % (below 85 %)"}
	secret = []byte("s3cret-for-tests")
)

// receiver is a webhook endpoint that fails its first requests, verifies signatures and
// de-duplicates on the delivery ID, as a careful receiver does.
type receiver struct {
	mu       sync.Mutex
	failures int
	attempts int
	seen     map[string]Payload
	refused  []string
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.attempts++
	if rc.failures > 0 {
		rc.failures--
		http.Error(w, "busy", http.StatusServiceUnavailable)
		return
	}
	if err := Verify(secret, r.Header.Get(HeaderSignature), r.Header.Get(HeaderTimestamp), body, time.Now(), 5*time.Minute); err != nil {
		rc.refused = append(rc.refused, err.Error())
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return
	}
	id := r.Header.Get(HeaderDelivery)
	if _, dup := rc.seen[id]; !dup {
		var p Payload
		if err := json.Unmarshal(body, &p); err != nil || p.Delivery != id {
			http.Error(w, "bad payload", http.StatusBadRequest)
			return
		}
		rc.seen[id] = p
	}
	w.WriteHeader(http.StatusNoContent) // a duplicate is acknowledged, not processed again
}

func TestWebhookSignedRetriedDeduplicated(t *testing.T) {
	rc := &receiver{failures: 2, seen: map[string]Payload{}}
	srv := httptest.NewServer(rc)
	defer srv.Close()
	w := &Webhook{Secret: func(string) ([]byte, error) { return secret, nil }, Backoff: 10 * time.Millisecond}
	d := alarm.Delivery{ID: "dl_abc", Alarm: testAlarm.ID, Reason: alarm.Raised, Channel: alarm.Webhook, Address: srv.URL, Member: "cat"}
	if err := w.Notify(context.Background(), d, testAlarm); err != nil {
		t.Fatal(err)
	}
	// The same delivery again (the node restarted before recording success): no duplicate.
	if err := w.Notify(context.Background(), d, testAlarm); err != nil {
		t.Fatal(err)
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if rc.attempts != 4 || len(rc.seen) != 1 || len(rc.refused) != 0 {
		t.Fatalf("attempts %d, distinct %d, refused %v", rc.attempts, len(rc.seen), rc.refused)
	}
	if p := rc.seen["dl_abc"]; p.Alarm.ID != "al_1" || p.Alarm.Priority != alarm.High || p.Member != "cat" {
		t.Errorf("payload %+v", p)
	}
}

func TestWebhookRefusals(t *testing.T) {
	body := []byte(`{"x":1}`)
	now := time.Now()
	sig := Sign(secret, now.Unix(), body)
	ts := func(t time.Time) string { return itoa(t.Unix()) }
	for _, tc := range []struct {
		name, sig, ts, want string
		secret, body        []byte
	}{
		{"wrong secret", sig, itoa(now.Unix()), "does not match", []byte("other"), body},
		{"tampered body", sig, itoa(now.Unix()), "does not match", secret, []byte(`{"x":2}`)},
		{"replayed later", Sign(secret, now.Add(-time.Hour).Unix(), body), ts(now.Add(-time.Hour)), "beyond the tolerance", secret, body},
		{"bad timestamp", sig, "yesterday", "bad X-Iomt-Timestamp", secret, body},
	} {
		err := Verify(tc.secret, tc.sig, tc.ts, tc.body, now, 5*time.Minute)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
	if err := Verify(secret, sig, itoa(now.Unix()), body, now, 5*time.Minute); err != nil {
		t.Error(err)
	}

	// A permanent refusal is not retried; a receiver that stays down is given up on.
	var n int
	var mu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		n++
		mu.Unlock()
		if r.URL.Path == "/gone" {
			http.Error(w, "no such hook", http.StatusNotFound)
			return
		}
		http.Error(w, "down", http.StatusBadGateway)
	}))
	defer srv.Close()
	w := &Webhook{Secret: func(string) ([]byte, error) { return secret, nil }, Backoff: time.Millisecond, Attempts: 3}
	err := w.Notify(context.Background(), alarm.Delivery{ID: "dl_1", Address: srv.URL + "/gone"}, testAlarm)
	var perm *PermanentError
	if !errors.As(err, &perm) || perm.Status != 404 || n != 1 {
		t.Errorf("404: %v after %d attempts", err, n)
	}
	n = 0
	err = w.Notify(context.Background(), alarm.Delivery{ID: "dl_2", Address: srv.URL + "/down"}, testAlarm)
	if err == nil || !strings.Contains(err.Error(), "gave up after 3 attempts") || n != 3 {
		t.Errorf("502: %v after %d attempts", err, n)
	}
	if strings.Contains(err.Error(), string(secret)) {
		t.Error("secret in an error")
	}
}

func itoa(v int64) string { b, _ := json.Marshal(v); return string(b) }

// An in-process SMTP server (go-smtp) that requires authentication and keeps what it gets.
type mailbox struct {
	mu    sync.Mutex
	msgs  []mail
	auths int // authentication attempts, over TLS or not
}

type mail struct {
	from string
	to   []string
	data string
	user string
	tls  bool // the message came over STARTTLS
}

type smtpSession struct {
	box  *mailbox
	conn *smtp.Conn
	cur  mail
}

func (b *mailbox) NewSession(c *smtp.Conn) (smtp.Session, error) {
	return &smtpSession{box: b, conn: c}, nil
}

func (s *smtpSession) AuthMechanisms() []string { return []string{sasl.Plain} }
func (s *smtpSession) Auth(string) (sasl.Server, error) {
	s.box.mu.Lock()
	s.box.auths++
	s.box.mu.Unlock()
	return sasl.NewPlainServer(func(_, user, pass string) error {
		if user != "iomt" || pass != "relay-pw" {
			return errors.New("bad credentials")
		}
		s.cur.user = user
		return nil
	}), nil
}
func (s *smtpSession) Mail(from string, _ *smtp.MailOptions) error {
	if s.cur.user == "" {
		return smtp.ErrAuthRequired
	}
	s.cur.from = from
	return nil
}
func (s *smtpSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.cur.to = append(s.cur.to, to)
	return nil
}
func (s *smtpSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.cur.data = string(b)
	_, s.cur.tls = s.conn.TLSConnectionState()
	s.box.mu.Lock()
	s.box.msgs = append(s.box.msgs, s.cur)
	s.box.mu.Unlock()
	return nil
}
func (s *smtpSession) Reset()        { s.cur = mail{user: s.cur.user} }
func (s *smtpSession) Logout() error { return nil }

// startSMTP serves an SMTP relay on loopback; with tlsCfg it offers STARTTLS and takes
// credentials only over it.
func startSMTP(t *testing.T, tlsCfg *tls.Config) (*mailbox, string) {
	t.Helper()
	box := &mailbox{}
	srv := smtp.NewServer(box)
	srv.Domain = "localhost"
	srv.TLSConfig = tlsCfg
	srv.AllowInsecureAuth = tlsCfg == nil // a relay that cannot do TLS takes credentials in clear
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })
	return box, ln.Addr().String()
}

// testPKI makes a CA and a server certificate for 127.0.0.1: the relay's TLS configuration
// and a client configuration that trusts it.
func testPKI(t *testing.T) (server, client *tls.Config) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "notify test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "relay"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}},
		&tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
}

func TestEmailReachesSMTPServer(t *testing.T) {
	serverTLS, clientTLS := testPKI(t)
	box, addr := startSMTP(t, serverTLS)
	m := &Email{Addr: addr, From: "alarms@iomt.example", Username: "iomt", Password: "relay-pw", TLS: clientTLS}
	d := alarm.Delivery{ID: "dl_mail", Reason: alarm.Escalated, Channel: alarm.Email, Address: "phil@example.org", Member: "phil", Role: "physician", Tier: 2}
	if err := m.Notify(context.Background(), d, testAlarm); err != nil {
		t.Fatal(err)
	}
	box.mu.Lock()
	msgs := box.msgs
	box.mu.Unlock()
	if len(msgs) != 1 {
		t.Fatalf("%d messages", len(msgs))
	}
	got := msgs[0]
	for _, want := range []string{"Subject: ESCALATED [HIGH] p1: SpO2 82 % (below 85 %)", "Message-ID: <dl_mail@iomt>", "To: phil@example.org",
		"Priority: high", "physician, escalation tier 3 (escalated)", "Alarm ID: al_1"} {
		if !strings.Contains(got.data, want) {
			t.Errorf("message lacks %q:\n%s", want, got.data)
		}
	}
	if got.from != "alarms@iomt.example" || len(got.to) != 1 || got.to[0] != "phil@example.org" || got.user != "iomt" || !got.tls {
		t.Errorf("envelope %+v", got)
	}

	bad := &Email{Addr: addr, From: "alarms@iomt.example", Username: "iomt", Password: "wrong", TLS: clientTLS}
	err := bad.Notify(context.Background(), d, testAlarm)
	if err == nil || !strings.Contains(err.Error(), "authenticate as iomt") || strings.Contains(err.Error(), "wrong") {
		t.Errorf("bad password: %v", err)
	}
	if err := m.Notify(context.Background(), alarm.Delivery{ID: "x", Address: "a@b\r\nBcc: evil@x"}, testAlarm); err == nil {
		t.Error("header injection through the address accepted")
	}
}

// A relay that does not offer STARTTLS gets nothing, neither credentials nor the alarm,
// unless plaintext is allowed; a relay whose certificate is not trusted gets nothing either.
func TestEmailRequiresSTARTTLS(t *testing.T) {
	d := alarm.Delivery{ID: "dl_tls", Reason: alarm.Raised, Channel: alarm.Email, Address: "ann@example.org", Member: "ann", Role: "nurse"}
	box, addr := startSMTP(t, nil)
	m := &Email{Addr: addr, From: "alarms@iomt.example", Username: "iomt", Password: "relay-pw"}
	err := m.Notify(context.Background(), d, testAlarm)
	if !errors.Is(err, ErrNoSTARTTLS) || !strings.Contains(err.Error(), "refusing to send credentials or alarms in clear") ||
		!strings.Contains(err.Error(), "--smtp-insecure-plaintext") || !strings.Contains(err.Error(), addr) {
		t.Errorf("plaintext relay: %v", err)
	}
	box.mu.Lock()
	if len(box.msgs) != 0 || box.auths != 0 {
		t.Errorf("the plaintext relay got %d messages and %d authentication attempts", len(box.msgs), box.auths)
	}
	box.mu.Unlock()

	// The check a node makes at start says the same, and sends nothing either.
	if err := m.Check(context.Background()); !errors.Is(err, ErrNoSTARTTLS) {
		t.Errorf("check of a plaintext relay: %v", err)
	}
	// Allowed: delivered in clear (net/smtp sends the password in clear only to localhost).
	m.InsecurePlaintext = true
	if err := m.Notify(context.Background(), d, testAlarm); err != nil {
		t.Fatal(err)
	}
	box.mu.Lock()
	if len(box.msgs) != 1 || box.msgs[0].tls || !strings.Contains(box.msgs[0].data, "SpO2 82 %") {
		t.Errorf("allowed plaintext: %+v", box.msgs)
	}
	box.mu.Unlock()

	// STARTTLS offered, but with a certificate nobody trusts: refused at the handshake.
	serverTLS, _ := testPKI(t)
	_, clientTLS := testPKI(t)
	box2, addr2 := startSMTP(t, serverTLS)
	m2 := &Email{Addr: addr2, From: "alarms@iomt.example", Username: "iomt", Password: "relay-pw", TLS: clientTLS}
	if err := m2.Notify(context.Background(), d, testAlarm); err == nil || !strings.Contains(err.Error(), "STARTTLS with "+addr2) ||
		!strings.Contains(err.Error(), "certificate") {
		t.Errorf("untrusted relay: %v", err)
	}
	if err := m2.Check(context.Background()); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("check of an untrusted relay: %v", err)
	}
	// A relay that passes the check gets no credentials and no message from it.
	good, trusting := testPKI(t)
	box3, addr3 := startSMTP(t, good)
	if err := (&Email{Addr: addr3, Username: "iomt", Password: "relay-pw", TLS: trusting}).Check(context.Background()); err != nil {
		t.Errorf("check of a good relay: %v", err)
	}
	box3.mu.Lock()
	if len(box3.msgs) != 0 || box3.auths != 0 {
		t.Errorf("the check sent %d messages and %d authentications", len(box3.msgs), box3.auths)
	}
	box3.mu.Unlock()
	box2.mu.Lock()
	if len(box2.msgs) != 0 || box2.auths != 0 {
		t.Errorf("the untrusted relay got %d messages and %d authentication attempts", len(box2.msgs), box2.auths)
	}
	box2.mu.Unlock()
}

func TestDispatcher(t *testing.T) {
	var got []string
	n := notifierFunc(func(_ context.Context, d alarm.Delivery, _ alarm.Alarm) error {
		got = append(got, d.ID)
		if d.ID == "bad" {
			return errors.New("boom")
		}
		return nil
	})
	ds := &Dispatcher{Notifiers: map[alarm.Channel]Notifier{alarm.Email: n}}
	err := ds.Dispatch(context.Background(), alarm.Change{Alarm: testAlarm, Deliveries: []alarm.Delivery{
		{ID: "a", Channel: alarm.Email, Member: "ann"}, {ID: "d", Channel: alarm.Dashboard}, {ID: "bad", Channel: alarm.Email, Member: "ned"}}})
	if len(got) != 2 || err == nil || !strings.Contains(err.Error(), "delivery bad (email to ned): boom") {
		t.Errorf("%v %v", got, err)
	}
}

type notifierFunc func(context.Context, alarm.Delivery, alarm.Alarm) error

func (f notifierFunc) Notify(ctx context.Context, d alarm.Delivery, a alarm.Alarm) error {
	return f(ctx, d, a)
}

// A channel the node was not set up for fails each delivery with the reason, so the
// dispatcher reports (and its Done counts) a failure rather than skipping it.
func TestUnconfiguredChannel(t *testing.T) {
	var outcomes []error
	ds := &Dispatcher{
		Notifiers: map[alarm.Channel]Notifier{alarm.Webhook: Unconfigured{Why: "set --alarm-webhook-secret"}},
		Done:      func(_ alarm.Delivery, err error) { outcomes = append(outcomes, err) },
	}
	err := ds.Dispatch(context.Background(), alarm.Change{Alarm: testAlarm, Deliveries: []alarm.Delivery{
		{ID: "w", Channel: alarm.Webhook, Address: "https://pager.example/hook"}}})
	if !errors.Is(err, ErrNotConfigured) || !strings.Contains(err.Error(), "set --alarm-webhook-secret") ||
		len(outcomes) != 1 || !errors.Is(outcomes[0], ErrNotConfigured) {
		t.Errorf("err %v, outcomes %v", err, outcomes)
	}
}

// A webhook to plain http:// on another machine is refused before anything is dialled,
// unless allowed; on loopback it goes.
func TestWebhookRefusesPlainHTTP(t *testing.T) {
	var dialled []string
	client := &http.Client{Transport: &http.Transport{DialContext: func(_ context.Context, _, addr string) (net.Conn, error) {
		dialled = append(dialled, addr)
		return nil, errors.New("test: nothing leaves this machine")
	}}}
	w := &Webhook{Secret: func(string) ([]byte, error) { return secret, nil }, Client: client, Attempts: 1}
	err := w.Notify(context.Background(), alarm.Delivery{ID: "dl_http", Address: "http://pager.example.org/hook"}, testAlarm)
	if !errors.Is(err, ErrInsecureURL) || !strings.Contains(err.Error(), "--allow-insecure-webhooks") || len(dialled) != 0 {
		t.Errorf("plain http to another machine: %v (dialled %v)", err, dialled)
	}
	w.AllowHTTP = true
	if err := w.Notify(context.Background(), alarm.Delivery{ID: "dl_http", Address: "http://pager.example.org/hook"}, testAlarm); errors.Is(err, ErrInsecureURL) ||
		len(dialled) != 1 {
		t.Errorf("allowed: %v (dialled %v)", err, dialled)
	}
	for raw, want := range map[string]error{"https://pager.example.org/hook": nil, "http://127.0.0.1:8080/hook": nil,
		"http://localhost/hook": nil, "http://10.1.1.1/hook": ErrInsecureURL, "HTTP://pager.example.org/": ErrInsecureURL} {
		if err := CheckURL(raw, false); !errors.Is(err, want) || (want == nil && err != nil) {
			t.Errorf("CheckURL(%q) = %v, want %v", raw, err, want)
		}
	}
}
