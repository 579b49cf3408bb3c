package ingest

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"github.com/iomt/iomt"
)

// ErrBadCredentials is returned for an unknown device or a wrong secret; the two are not told
// apart to the caller, only in the server's log.
var ErrBadCredentials = errors.New("bad device credentials")

// Credentials are a device's secrets, shown once when the device is created.
type Credentials struct {
	MQTTPassword string
	// Token authenticates HTTP ingest: "<device id>.<secret>", so the device can be found
	// without scanning.
	Token string
}

// NewCredentials makes fresh secrets for device id and stores their digests in d.
func NewCredentials(d *iomt.Device) (Credentials, error) {
	pw, err := secret()
	if err != nil {
		return Credentials{}, err
	}
	tok, err := secret()
	if err != nil {
		return Credentials{}, err
	}
	d.MQTTPasswordHash = digest(pw)
	d.TokenHash = digest(tok)
	return Credentials{MQTTPassword: pw, Token: d.ID + "." + tok}, nil
}

func secret() (string, error) {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generate secret: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// Secrets are 192-bit random values, so a plain SHA-256 digest is as strong as a slow
// password hash and keeps thousands of reconnecting devices cheap to verify.
func digest(s string) []byte {
	h := sha256.Sum256([]byte(s))
	return h[:]
}

func matches(hash []byte, s string) bool {
	return len(hash) == sha256.Size && subtle.ConstantTimeCompare(hash, digest(s)) == 1
}

// Authenticator checks device secrets against the registry. It keeps no copy of them: each
// authentication reads the device's record, so a rotation, revocation, disabling or deletion
// holds from the next one on, on every node sharing the registry.
type Authenticator struct{ Registry iomt.Registry }

// device reads device id and refuses it, with ErrBadCredentials, when it is unknown, disabled
// or revoked (no credentials: nothing, not even a client certificate, lets it in until its
// credentials are rotated).
func (a Authenticator) device(ctx context.Context, id string) (iomt.Device, error) {
	d, err := a.Registry.Device(ctx, id)
	if err != nil {
		if errors.Is(err, iomt.ErrNotFound) {
			return iomt.Device{}, fmt.Errorf("%w: unknown device %q", ErrBadCredentials, id)
		}
		return iomt.Device{}, err
	}
	if d.Disabled {
		return iomt.Device{}, fmt.Errorf("%w: device %q is disabled", ErrBadCredentials, id)
	}
	if Revoked(d) {
		return iomt.Device{}, fmt.Errorf("%w: the credentials of device %q are revoked", ErrBadCredentials, id)
	}
	return d, nil
}

// Revoked says whether a device's credentials were revoked (it has none).
func Revoked(d iomt.Device) bool { return len(d.MQTTPasswordHash) == 0 && len(d.TokenHash) == 0 }

// MQTT checks a CONNECT's username (the device id) and password.
func (a Authenticator) MQTT(ctx context.Context, username, password string) (iomt.Device, error) {
	d, err := a.device(ctx, username)
	if err != nil {
		return iomt.Device{}, err
	}
	if !matches(d.MQTTPasswordHash, password) {
		return iomt.Device{}, fmt.Errorf("%w: wrong password for device %q", ErrBadCredentials, username)
	}
	return d, nil
}

// Certificate authenticates the device a verified client certificate names (its subject CN):
// the certificate stands for the password, the device must still be registered, enabled and
// not revoked.
func (a Authenticator) Certificate(ctx context.Context, commonName string) (iomt.Device, error) {
	if commonName == "" {
		return iomt.Device{}, fmt.Errorf("%w: the client certificate has no subject common name", ErrBadCredentials)
	}
	return a.device(ctx, commonName)
}

// Token checks an HTTP ingest token.
func (a Authenticator) Token(ctx context.Context, token string) (iomt.Device, error) {
	id, sec, ok := strings.Cut(token, ".")
	if !ok || id == "" {
		return iomt.Device{}, fmt.Errorf("%w: token is not of the form <device>.<secret>", ErrBadCredentials)
	}
	d, err := a.device(ctx, id)
	if err != nil {
		return iomt.Device{}, err
	}
	if !matches(d.TokenHash, sec) {
		return iomt.Device{}, fmt.Errorf("%w: wrong token for device %q", ErrBadCredentials, id)
	}
	return d, nil
}

// TokenDevice returns the device id an HTTP ingest token claims to be (for logs), or "".
func TokenDevice(token string) string {
	id, _, ok := strings.Cut(token, ".")
	if !ok {
		return ""
	}
	return id
}
