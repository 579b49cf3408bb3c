package ingest_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/iomt/iomt/ingest"
)

// A device authenticates with its password and token until its credentials are rotated (the
// old ones fail at once, the new ones work), revoked (nothing works, not even a certificate),
// disabled or deleted; every refusal says why, without the secret.
func TestCredentialLifecycle(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	auth := ingest.Authenticator{Registry: f.store}
	d := f.dev
	old, err := ingest.NewCredentials(&d)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.store.SetDeviceCredentials(ctx, d.ID, d.MQTTPasswordHash, d.TokenHash); err != nil {
		t.Fatal(err)
	}
	ok := func(what string, creds ingest.Credentials) {
		t.Helper()
		if _, err := auth.MQTT(ctx, d.ID, creds.MQTTPassword); err != nil {
			t.Fatalf("%s: MQTT: %v", what, err)
		}
		if _, err := auth.Token(ctx, creds.Token); err != nil {
			t.Fatalf("%s: token: %v", what, err)
		}
		if _, err := auth.Certificate(ctx, d.ID); err != nil {
			t.Fatalf("%s: certificate: %v", what, err)
		}
	}
	refused := func(what string, creds ingest.Credentials, reason string) {
		t.Helper()
		for name, err := range map[string]error{
			"MQTT":  func() error { _, err := auth.MQTT(ctx, d.ID, creds.MQTTPassword); return err }(),
			"token": func() error { _, err := auth.Token(ctx, creds.Token); return err }(),
		} {
			if !errors.Is(err, ingest.ErrBadCredentials) || !strings.Contains(err.Error(), reason) {
				t.Errorf("%s: %s: %v, want ErrBadCredentials saying %q", what, name, err, reason)
			}
			if err != nil && (strings.Contains(err.Error(), creds.MQTTPassword) || strings.Contains(err.Error(), creds.Token)) {
				t.Errorf("%s: %s: the error shows the secret: %v", what, name, err)
			}
		}
	}
	ok("issued", old)

	nw, err := ingest.NewCredentials(&d)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.store.SetDeviceCredentials(ctx, d.ID, d.MQTTPasswordHash, d.TokenHash); err != nil {
		t.Fatal(err)
	}
	refused("old after rotation", old, "wrong")
	ok("rotated", nw)

	if err := f.store.SetDeviceDisabled(ctx, d.ID, true); err != nil {
		t.Fatal(err)
	}
	refused("disabled", nw, "is disabled")
	if _, err := auth.Certificate(ctx, d.ID); err == nil || !strings.Contains(err.Error(), "is disabled") {
		t.Errorf("certificate of a disabled device: %v", err)
	}
	if err := f.store.SetDeviceDisabled(ctx, d.ID, false); err != nil {
		t.Fatal(err)
	}
	ok("enabled again", nw)

	if err := f.store.SetDeviceCredentials(ctx, d.ID, nil, nil); err != nil {
		t.Fatal(err)
	}
	refused("revoked", nw, "are revoked")
	if _, err := auth.Certificate(ctx, d.ID); err == nil || !strings.Contains(err.Error(), "are revoked") {
		t.Errorf("certificate of a revoked device: %v", err)
	}

	if err := f.store.DeleteDevice(ctx, d.ID); err != nil {
		t.Fatal(err)
	}
	refused("deleted", nw, "unknown device")
	if _, err := auth.Certificate(ctx, ""); !errors.Is(err, ingest.ErrBadCredentials) {
		t.Errorf("certificate without a common name: %v", err)
	}
}

// Ten failures from one source within a minute block it for five minutes, logged once; other
// sources are not blocked, failures older than the window do not count, and the block ends.
func TestThrottle(t *testing.T) {
	now := time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)
	var logs bytes.Buffer
	th := ingest.NewThrottle(ingest.ThrottleOptions{Now: func() time.Time { return now }, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if ingest.SourceOf("192.0.2.7:51000") != "192.0.2.7" || ingest.SourceOf("[2001:db8::1]:8883") != "2001:db8::1" {
		t.Fatal("SourceOf does not strip the port")
	}
	for i := range 9 {
		th.Failed("192.0.2.7", "d1", "mqtt")
		now = now.Add(time.Second)
		if _, b := th.Blocked("192.0.2.7"); b {
			t.Fatalf("blocked after %d failures", i+1)
		}
	}
	// An old failure falls out of the window: nine in the last minute is still not ten.
	now = now.Add(51 * time.Second)
	th.Failed("192.0.2.7", "d1", "mqtt")
	if _, b := th.Blocked("192.0.2.7"); b {
		t.Fatal("blocked by failures older than the window")
	}
	th.Failed("192.0.2.7", "d2", "http")
	until, b := th.Blocked("192.0.2.7")
	if !b || !until.Equal(now.Add(5*time.Minute)) {
		t.Fatalf("after ten failures in a minute: blocked %v until %v", b, until)
	}
	for range 20 {
		th.Failed("192.0.2.7", "d3", "mqtt") // while blocked: not logged again
	}
	if n := strings.Count(logs.String(), "device authentication throttled"); n != 1 {
		t.Fatalf("block logged %d times, want once:\n%s", n, logs.String())
	}
	if !strings.Contains(logs.String(), "source=192.0.2.7") || !strings.Contains(logs.String(), "device=d2") {
		t.Errorf("log lacks source or device: %s", logs.String())
	}
	if _, b := th.Blocked("192.0.2.8"); b {
		t.Fatal("another source is blocked")
	}
	now = now.Add(5 * time.Minute)
	if _, b := th.Blocked("192.0.2.7"); b {
		t.Fatal("still blocked after the block time")
	}
	var nilT *ingest.Throttle
	nilT.Failed("x", "d", "mqtt")
	if _, b := nilT.Blocked("x"); b {
		t.Fatal("a nil throttle blocks")
	}
}

// The sources tracked stay bounded under a spray of addresses; blocked ones are kept.
func TestThrottleBounded(t *testing.T) {
	now := time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)
	th := ingest.NewThrottle(ingest.ThrottleOptions{MaxSources: 8, MaxFailures: 2, Now: func() time.Time { return now }})
	th.Failed("bad", "d", "mqtt")
	th.Failed("bad", "d", "mqtt")
	for i := range 1000 {
		th.Failed(string(rune('a'+i%26))+time.Duration(i).String(), "d", "mqtt")
	}
	if _, b := th.Blocked("bad"); !b {
		t.Fatal("pruning forgot a blocked source")
	}
}

// BenchmarkThrottleBlocked is what every MQTT CONNECT and HTTP ingest request pays for the
// throttle, with 10,000 sources tracked.
func BenchmarkThrottleBlocked(b *testing.B) {
	th := ingest.NewThrottle(ingest.ThrottleOptions{})
	for i := range 10000 {
		th.Failed(fmt.Sprintf("10.0.%d.%d", i/256, i%256), "d", "mqtt")
	}
	b.ReportAllocs()
	for b.Loop() {
		th.Blocked("10.1.0.1")
	}
}
