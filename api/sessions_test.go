package api_test

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/iomt/iomt"
	"github.com/iomt/iomt/api"
	"github.com/iomt/iomt/identity"
	"github.com/iomt/iomt/policy"
	"github.com/iomt/iomt/store/embedded"
)

// sessionServer is an API with built-in accounts and live streams, and a clinician, Ann.
type sessionServer struct {
	srv *httptest.Server
	id  *identity.Service
	ann iomt.User
}

const annPassword = "correct horse battery"

func newSessionServer(t *testing.T, idle time.Duration) *sessionServer {
	t.Helper()
	st, err := embedded.Open(t.TempDir(), embedded.Options{NoSync: true, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	id, err := identity.New(identity.Config{Store: st, IdleTimeout: idle, CacheTTL: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	h, err := api.New(api.Config{Store: st, BootstrapToken: token, Policy: policy.New(), Auditor: &auditLog{}, Identity: id, Live: api.NewLive()})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	ann, err := id.CreateUser(context.Background(), identity.NewUser{Login: "ann", Roles: []iomt.Role{iomt.RoleClinician}, Password: annPassword})
	if err != nil {
		t.Fatal(err)
	}
	return &sessionServer{srv: srv, id: id, ann: ann}
}

// signIn signs Ann in through the API and returns her session cookie.
func (s *sessionServer) signIn(t *testing.T) string {
	t.Helper()
	resp, err := http.Post(s.srv.URL+"/api/v1/auth/signin", "application/json", strings.NewReader(`{"login":"ann","password":"`+annPassword+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	for _, c := range resp.Cookies() {
		if c.Name == api.SessionCookie && resp.StatusCode == http.StatusOK {
			return c.Value
		}
	}
	t.Fatalf("sign-in: HTTP %d, no session cookie", resp.StatusCode)
	return ""
}

// get sends GET path with the session cookie.
func (s *sessionServer) get(t *testing.T, path, cookie string) *http.Response {
	t.Helper()
	req, err := http.NewRequest("GET", s.srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.AddCookie(&http.Cookie{Name: api.SessionCookie, Value: cookie})
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// openStream opens the ward's live stream with cookie and returns a channel closed when the
// server ends it.
func (s *sessionServer) openStream(t *testing.T, cookie string) <-chan struct{} {
	t.Helper()
	resp := s.get(t, "/api/v1/stream", cookie)
	t.Cleanup(func() { resp.Body.Close() })
	rd := bufio.NewReader(resp.Body)
	if line, err := rd.ReadString('\n'); resp.StatusCode != http.StatusOK || !strings.HasPrefix(line, ": streaming") {
		t.Fatalf("stream: HTTP %d %q %v", resp.StatusCode, line, err)
	}
	ended := make(chan struct{})
	go func() {
		_, _ = io.Copy(io.Discard, rd)
		close(ended)
	}()
	return ended
}

func within(t *testing.T, ended <-chan struct{}, d time.Duration, what string) {
	t.Helper()
	select {
	case <-ended:
	case <-time.After(d):
		t.Fatalf("%s: the stream still runs after %s", what, d)
	}
}

// A live stream ends with its session: once signed out elsewhere, and once idle — an open
// stream is not a use that keeps the session open.
func TestStreamEndsWithItsSession(t *testing.T) {
	s := newSessionServer(t, time.Hour)
	cookie := s.signIn(t)
	ended := s.openStream(t, cookie)
	select {
	case <-ended:
		t.Fatal("the stream ended while its session was open")
	case <-time.After(500 * time.Millisecond):
	}
	if _, err := s.id.SignOutEverywhere(context.Background(), s.ann.ID); err != nil {
		t.Fatal(err)
	}
	within(t, ended, 5*time.Second, "signed out everywhere")

	s = newSessionServer(t, time.Second)
	start := time.Now()
	ended = s.openStream(t, s.signIn(t))
	within(t, ended, 5*time.Second, "idle for a second")
	if d := time.Since(start); d < time.Second {
		t.Fatalf("the stream ended after %s, before the session's idle timeout", d)
	}
}

// Requests with the cookie of a session that ended are refused but not counted against the
// address as guesses: the workstation can still sign in. Wrong bearer tokens still are.
func TestEndedSessionsAreNotGuesses(t *testing.T) {
	s := newSessionServer(t, time.Hour)
	cookie := s.signIn(t)
	if _, err := s.id.SignOutEverywhere(context.Background(), s.ann.ID); err != nil {
		t.Fatal(err)
	}
	for i := range 2 * s.id.Config().SourceFailures {
		resp := s.get(t, "/api/v1/me", cookie)
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("request %d with an ended session: HTTP %d, want 401", i, resp.StatusCode)
		}
	}
	s.signIn(t)
	for range s.id.Config().SourceFailures {
		req, _ := http.NewRequest("GET", s.srv.URL+"/api/v1/me", nil)
		req.Header.Set("Authorization", "Bearer not-a-token")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	resp := s.get(t, "/api/v1/me", cookie)
	resp.Body.Close()
	if resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("after %d wrong bearer tokens: HTTP %d, want 429", s.id.Config().SourceFailures, resp.StatusCode)
	}
}

// A live stream opened with an API token ends when the token is revoked.
func TestStreamEndsWithItsToken(t *testing.T) {
	s := newSessionServer(t, time.Hour)
	ctx := context.Background()
	svc, err := s.id.CreateUser(ctx, identity.NewUser{Login: "bridge", Roles: []iomt.Role{iomt.RoleService}})
	if err != nil {
		t.Fatal(err)
	}
	secret, tok, err := s.id.IssueToken(ctx, svc.ID, "bridge", []string{"system/Observation.rs"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("GET", s.srv.URL+"/api/v1/stream", nil)
	req.Header.Set("Authorization", "Bearer "+secret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	rd := bufio.NewReader(resp.Body)
	if line, err := rd.ReadString('\n'); resp.StatusCode != http.StatusOK || !strings.HasPrefix(line, ": streaming") {
		t.Fatalf("stream: HTTP %d %q %v", resp.StatusCode, line, err)
	}
	ended := make(chan struct{})
	go func() {
		_, _ = io.Copy(io.Discard, rd)
		close(ended)
	}()
	select {
	case <-ended:
		t.Fatal("the stream ended while its token was valid")
	case <-time.After(400 * time.Millisecond):
	}
	if _, err := s.id.RevokeToken(ctx, tok.ID); err != nil {
		t.Fatal(err)
	}
	within(t, ended, 5*time.Second, "after the token was revoked")
}
