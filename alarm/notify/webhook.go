package notify

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/iomt/iomt/alarm"
	"github.com/iomt/iomt/loopback"
)

// Webhook headers.
const (
	HeaderDelivery  = "X-Iomt-Delivery"  // stable across retries: receivers de-duplicate on it
	HeaderTimestamp = "X-Iomt-Timestamp" // Unix seconds when this attempt was signed
	HeaderSignature = "X-Iomt-Signature" // "sha256=" + hex HMAC-SHA256 of timestamp + "." + body
	HeaderAttempt   = "X-Iomt-Attempt"
)

// Webhook POSTs a JSON Payload, signed with HMAC-SHA256, retrying with exponential backoff and
// full jitter on network errors, 408, 429 and 5xx, up to Attempts times.
type Webhook struct {
	// Secret returns the signing secret for a URL (one per receiver). It is never logged.
	Secret   func(url string) ([]byte, error)
	Client   *http.Client  // default: 10 s timeout
	Attempts int           // default 5
	Backoff  time.Duration // first retry waits up to this; default 500ms
	MaxDelay time.Duration // longest wait between attempts; default 30s
	Clock    func() time.Time
	Logger   *slog.Logger
	// AllowHTTP lets deliveries go to plain http:// URLs on other machines, in clear. Without
	// it they are refused (routing that names one is refused when saved; this catches
	// routing stored before).
	AllowHTTP bool
}

// ErrInsecureURL is the error of a webhook or export to a plain http:// URL on another
// machine when that is not allowed.
var ErrInsecureURL = errors.New("plain http:// to another machine")

// CheckURL refuses a webhook URL that would carry alarms in clear across a network (a plain
// http:// URL whose host is not this machine) unless allowHTTP; the error names the flag.
func CheckURL(raw string, allowHTTP bool) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("webhook URL %q: %w", raw, err)
	}
	if !allowHTTP && loopback.PlainHTTP(u) {
		return fmt.Errorf("webhook URL %q is %w: alarms (patient, readings) would cross the network in clear; "+
			"use https://, or allow it with --allow-insecure-webhooks only on a network protected otherwise", raw, ErrInsecureURL)
	}
	return nil
}

// Sign is the signature header value of body signed at ts.
func Sign(secret []byte, ts int64, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(strconv.FormatInt(ts, 10)))
	m.Write([]byte{'.'})
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// Verify checks a webhook request's signature and that it was signed within tolerance of now,
// so a captured request cannot be replayed later. Receivers (and tests) use it.
func Verify(secret []byte, signature, timestamp string, body []byte, now time.Time, tolerance time.Duration) error {
	ts, err := strconv.ParseInt(timestamp, 10, 64)
	if err != nil {
		return fmt.Errorf("webhook: bad %s %q", HeaderTimestamp, timestamp)
	}
	if d := now.Sub(time.Unix(ts, 0)); d > tolerance || d < -tolerance {
		return fmt.Errorf("webhook: signed %s from now, beyond the tolerance of %s", d.Round(time.Second), tolerance)
	}
	if !hmac.Equal([]byte(signature), []byte(Sign(secret, ts, body))) {
		return errors.New("webhook: signature does not match")
	}
	return nil
}

// PermanentError is a refusal that retrying will not change (a 4xx other than 408 and 429).
type PermanentError struct {
	Status int
	Body   string
}

func (e *PermanentError) Error() string {
	return fmt.Sprintf("webhook: refused with %d: %s", e.Status, e.Body)
}

// Notify delivers one webhook.
func (w *Webhook) Notify(ctx context.Context, d alarm.Delivery, a alarm.Alarm) error {
	client := w.Client
	if client == nil {
		client = &http.Client{Timeout: 10 * time.Second}
	}
	attempts := w.Attempts
	if attempts <= 0 {
		attempts = 5
	}
	backoff, maxDelay := w.Backoff, w.MaxDelay
	if backoff <= 0 {
		backoff = 500 * time.Millisecond
	}
	if maxDelay <= 0 {
		maxDelay = 30 * time.Second
	}
	clock := w.Clock
	if clock == nil {
		clock = time.Now
	}
	log := w.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if w.Secret == nil {
		return errors.New("webhook: no secret configured")
	}
	if err := CheckURL(d.Address, w.AllowHTTP); err != nil {
		return err // nothing was sent; retrying would not change it
	}
	secret, err := w.Secret(d.Address)
	if err != nil {
		return fmt.Errorf("webhook: secret for %s: %w", d.Address, err)
	}
	body, err := json.Marshal(Payload{Delivery: d.ID, Reason: string(d.Reason), Tier: d.Tier, Member: d.Member,
		Role: d.Role, Team: d.Team, Sent: clock().UTC(), Alarm: a})
	if err != nil {
		return fmt.Errorf("webhook: encode: %w", err)
	}
	var last error
	for i := range attempts {
		if i > 0 {
			// Full jitter: receivers recovering from an outage are not hit by every sender at once.
			wait := rand.N(min(maxDelay, backoff<<(i-1)) + 1)
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return fmt.Errorf("webhook %s: %w (last error: %w)", d.ID, ctx.Err(), last)
			case <-t.C:
			}
		}
		last = w.attempt(ctx, client, d, secret, body, i+1, clock())
		if last == nil {
			return nil
		}
		var perm *PermanentError
		if errors.As(last, &perm) {
			return last
		}
		log.Warn("webhook attempt failed", "delivery", d.ID, "url", d.Address, "attempt", i+1, "err", last)
	}
	return fmt.Errorf("webhook %s: gave up after %d attempts: %w", d.ID, attempts, last)
}

func (w *Webhook) attempt(ctx context.Context, c *http.Client, d alarm.Delivery, secret, body []byte, n int, now time.Time) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.Address, bytes.NewReader(body))
	if err != nil {
		return &PermanentError{Body: err.Error()}
	}
	ts := now.Unix()
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "iomt-alarm/1")
	req.Header.Set(HeaderDelivery, d.ID)
	req.Header.Set(HeaderTimestamp, strconv.FormatInt(ts, 10))
	req.Header.Set(HeaderSignature, Sign(secret, ts, body))
	req.Header.Set(HeaderAttempt, strconv.Itoa(n))
	resp, err := c.Do(req)
	if err != nil {
		return fmt.Errorf("webhook: post: %w", err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	switch s := resp.StatusCode; {
	case s >= 200 && s < 300:
		return nil
	case s == http.StatusRequestTimeout || s == http.StatusTooManyRequests || s >= 500:
		return fmt.Errorf("webhook: %d: %s", s, strings.TrimSpace(string(msg)))
	default:
		return &PermanentError{Status: s, Body: strings.TrimSpace(string(msg))}
	}
}
