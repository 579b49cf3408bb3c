package audit

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/iomt/iomt"
)

// File names of a node's audit key pair in its data directory.
const (
	KeyFile       = "audit.key" // Ed25519 private key, PKCS #8 PEM, mode 0600
	PublicKeyFile = "audit.pub" // its public key, PKIX PEM: what a verifier needs
)

// Signer signs checkpoints with a node's Ed25519 key.
type Signer struct {
	key   ed25519.PrivateKey
	keyID string
}

// NewSigner signs with key.
func NewSigner(key ed25519.PrivateKey) *Signer {
	return &Signer{key: key, keyID: KeyID(key.Public().(ed25519.PublicKey))}
}

// LoadSigner loads the private key at path (creating a new key pair if there is none, see
// LoadKey) and signs with it.
func LoadSigner(path string) (*Signer, error) {
	k, err := LoadKey(path)
	if err != nil {
		return nil, err
	}
	return NewSigner(k), nil
}

// KeyID names the signer's key in its checkpoints.
func (s *Signer) KeyID() string { return s.keyID }

// PublicKey is what verifiers need.
func (s *Signer) PublicKey() ed25519.PublicKey { return s.key.Public().(ed25519.PublicKey) }

// Sign states that the trail held seq records ending in hash at time t.
func (s *Signer) Sign(seq uint64, hash []byte, t time.Time) iomt.AuditCheckpoint {
	c := iomt.AuditCheckpoint{Seq: seq, Hash: bytes.Clone(hash), Time: t.UTC().Truncate(time.Millisecond), KeyID: s.keyID}
	c.Signature = ed25519.Sign(s.key, c.CheckpointMessage())
	return c
}

// KeyID is the hex SHA-256 of an Ed25519 public key, first 16 characters.
func KeyID(pub ed25519.PublicKey) string {
	h := sha256.Sum256(pub)
	return hex.EncodeToString(h[:])[:16]
}

// PublicKeyPath is where the public key of the private key at path is kept: beside it,
// audit.key → audit.pub.
func PublicKeyPath(path string) string {
	return strings.TrimSuffix(path, ".key") + ".pub"
}

// LoadKey reads the Ed25519 private key at path. If there is no file, it creates a new key
// there (mode 0600, in a directory created 0700 if needed) and its public key beside it
// (PublicKeyPath, 0644). A key file others may read is refused, as ssh does: whoever reads
// it can sign checkpoints over a rewritten trail.
func LoadKey(path string) (ed25519.PrivateKey, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return createKey(path)
	}
	if err != nil {
		return nil, fmt.Errorf("audit: read key: %w", err)
	}
	if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("audit: key %s is accessible by others (mode %04o): chmod 600 it", path, fi.Mode().Perm())
	}
	k, err := ParsePrivateKey(b)
	if err != nil {
		return nil, fmt.Errorf("audit: key %s: %w", path, err)
	}
	// The public key file is rewritten if missing, and must match if present: a verifier
	// trusting a stale one would reject this node's checkpoints.
	pubPath := PublicKeyPath(path)
	switch pb, err := os.ReadFile(pubPath); {
	case errors.Is(err, fs.ErrNotExist):
		if err := writePublicKey(pubPath, k.Public().(ed25519.PublicKey)); err != nil {
			return nil, err
		}
	case err != nil:
		return nil, fmt.Errorf("audit: read public key: %w", err)
	default:
		pub, err := ParsePublicKey(pb)
		if err != nil {
			return nil, fmt.Errorf("audit: public key %s: %w", pubPath, err)
		}
		if !pub.Equal(k.Public()) {
			return nil, fmt.Errorf("audit: public key %s (key id %s) is not the public key of %s (key id %s): one of them was replaced", pubPath, KeyID(pub), path, KeyID(k.Public().(ed25519.PublicKey)))
		}
	}
	return k, nil
}

func createKey(path string) (ed25519.PrivateKey, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("audit: create key: %w", err)
	}
	pub, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("audit: create key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, fmt.Errorf("audit: create key: %w", err)
	}
	// O_EXCL: two processes starting at once must not each write a key and sign with it.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return LoadKey(path)
	}
	if err != nil {
		return nil, fmt.Errorf("audit: create key: %w", err)
	}
	werr := pem.Encode(f, &pem.Block{Type: "PRIVATE KEY", Bytes: der})
	if werr == nil {
		werr = f.Sync()
	}
	if err := errors.Join(werr, f.Close()); err != nil {
		_ = os.Remove(path)
		return nil, fmt.Errorf("audit: create key %s: %w", path, err)
	}
	if err := writePublicKey(PublicKeyPath(path), pub); err != nil {
		return nil, err
	}
	return k, nil
}

func writePublicKey(path string, pub ed25519.PublicKey) error {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return fmt.Errorf("audit: write public key: %w", err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o644); err != nil {
		return fmt.Errorf("audit: write public key: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("audit: write public key: %w", err)
	}
	return nil
}

// ParsePrivateKey reads an Ed25519 private key in PKCS #8 PEM ("PRIVATE KEY"), as LoadKey
// writes it and `openssl genpkey -algorithm ed25519` does.
func ParsePrivateKey(b []byte) (ed25519.PrivateKey, error) {
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "PRIVATE KEY" {
		return nil, errors.New(`not a PEM "PRIVATE KEY" block`)
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("PKCS #8: %w", err)
	}
	ek, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("a %T, not an Ed25519 key", k)
	}
	return ek, nil
}

// ParsePublicKey reads an Ed25519 public key in PKIX PEM ("PUBLIC KEY"), as audit.pub holds
// it and `openssl pkey -pubout` writes it.
func ParsePublicKey(b []byte) (ed25519.PublicKey, error) {
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "PUBLIC KEY" {
		return nil, errors.New(`not a PEM "PUBLIC KEY" block`)
	}
	k, err := x509.ParsePKIXPublicKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("PKIX: %w", err)
	}
	ek, ok := k.(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("a %T, not an Ed25519 key", k)
	}
	return ek, nil
}

// ReadPublicKey reads a public key file (audit.pub).
func ReadPublicKey(path string) (ed25519.PublicKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("audit: read public key: %w", err)
	}
	k, err := ParsePublicKey(b)
	if err != nil {
		return nil, fmt.Errorf("audit: public key %s: %w", path, err)
	}
	return k, nil
}
