package identity_test

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/iomt/iomt"
	"github.com/iomt/iomt/identity"
	"github.com/iomt/iomt/store/embedded"
)

// A short idle timeout (a kiosk's, or a test's) ends idle sessions and only those: a session
// used every second stays open, and Alive (a stream's check) is not a use.
func TestShortIdleTimeout(t *testing.T) {
	ctx := context.Background()
	c := newClock()
	st, err := embedded.Open(t.TempDir(), embedded.Options{NoSync: true, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	s, err := identity.New(identity.Config{Store: st, Now: c.now, IdleTimeout: 3 * time.Second, CacheTTL: time.Nanosecond})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateUser(ctx, identity.NewUser{Login: "ida", Roles: []iomt.Role{iomt.RoleClinician}, Password: pw}); err != nil {
		t.Fatal(err)
	}
	in, err := s.SignIn(ctx, signIn("ida", pw))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		c.add(time.Second)
		if _, _, err := s.Authenticate(ctx, in.Token); err != nil {
			t.Fatalf("used every second, after %d s: %v", i+1, err)
		}
	}
	for i := range 3 {
		c.add(time.Second)
		if err := s.Alive(ctx, in.Session.ID); err != nil {
			t.Fatalf("checked after %d s idle: %v", i+1, err)
		}
	}
	c.add(time.Second)
	if _, _, err := s.Authenticate(ctx, in.Token); !errors.Is(err, identity.ErrExpired) {
		t.Fatalf("after 4 s of checks and no use: %v, want ErrExpired", err)
	}
	if err := s.Alive(ctx, in.Session.ID); !errors.Is(err, identity.ErrExpired) {
		t.Fatalf("Alive of an ended session: %v, want ErrExpired", err)
	}
}
