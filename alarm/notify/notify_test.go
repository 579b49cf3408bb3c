package notify

import (
	"context"
	"encoding/json"
	"errors"
	"io"
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
	mu   sync.Mutex
	msgs []mail
}

type mail struct {
	from string
	to   []string
	data string
	user string
}

type smtpSession struct {
	box *mailbox
	cur mail
}

func (b *mailbox) NewSession(*smtp.Conn) (smtp.Session, error) { return &smtpSession{box: b}, nil }

func (s *smtpSession) AuthMechanisms() []string { return []string{sasl.Plain} }
func (s *smtpSession) Auth(string) (sasl.Server, error) {
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
	s.box.mu.Lock()
	s.box.msgs = append(s.box.msgs, s.cur)
	s.box.mu.Unlock()
	return nil
}
func (s *smtpSession) Reset()        { s.cur = mail{user: s.cur.user} }
func (s *smtpSession) Logout() error { return nil }

func TestEmailReachesSMTPServer(t *testing.T) {
	box := &mailbox{}
	srv := smtp.NewServer(box)
	srv.Domain = "localhost"
	srv.AllowInsecureAuth = true // loopback only; production relays use STARTTLS
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()

	m := &Email{Addr: ln.Addr().String(), From: "alarms@iomt.example", Username: "iomt", Password: "relay-pw"}
	d := alarm.Delivery{ID: "dl_mail", Reason: alarm.Escalated, Channel: alarm.Email, Address: "phil@example.org", Member: "phil", Role: "physician", Tier: 2}
	if err := m.Notify(context.Background(), d, testAlarm); err != nil {
		t.Fatal(err)
	}
	box.mu.Lock()
	defer box.mu.Unlock()
	if len(box.msgs) != 1 {
		t.Fatalf("%d messages", len(box.msgs))
	}
	got := box.msgs[0]
	for _, want := range []string{"Subject: ESCALATED [HIGH] p1: SpO2 82 % (below 85 %)", "Message-ID: <dl_mail@iomt>", "To: phil@example.org",
		"Priority: high", "physician, escalation tier 3 (escalated)", "Alarm ID: al_1"} {
		if !strings.Contains(got.data, want) {
			t.Errorf("message lacks %q:\n%s", want, got.data)
		}
	}
	if got.from != "alarms@iomt.example" || len(got.to) != 1 || got.to[0] != "phil@example.org" || got.user != "iomt" {
		t.Errorf("envelope %+v", got)
	}

	bad := &Email{Addr: ln.Addr().String(), From: "alarms@iomt.example", Username: "iomt", Password: "wrong"}
	err = bad.Notify(context.Background(), d, testAlarm)
	if err == nil || !strings.Contains(err.Error(), "authenticate as iomt") || strings.Contains(err.Error(), "wrong") {
		t.Errorf("bad password: %v", err)
	}
	if err := m.Notify(context.Background(), alarm.Delivery{ID: "x", Address: "a@b\r\nBcc: evil@x"}, testAlarm); err == nil {
		t.Error("header injection through the address accepted")
	}
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
