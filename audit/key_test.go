package audit_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/iomt/iomt/audit"
)

// LoadKey creates a key pair with the right modes once, loads the same key after, refuses a
// key others can read and a public key that is not the key's.
func TestLoadKey(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	path := filepath.Join(dir, audit.KeyFile)
	k, err := audit.LoadKey(path)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v (%v), want 0600", fi.Mode(), err)
	}
	pubPath := filepath.Join(dir, audit.PublicKeyFile)
	pub, err := audit.ReadPublicKey(pubPath)
	if err != nil || !pub.Equal(k.Public()) {
		t.Fatalf("public key %s: %v", pubPath, err)
	}
	again, err := audit.LoadKey(path)
	if err != nil || !again.Equal(k) {
		t.Fatalf("second load: a different key (%v)", err)
	}
	// A missing public key is written again.
	os.Remove(pubPath)
	if _, err := audit.LoadKey(path); err != nil {
		t.Fatal(err)
	}
	if pub, err := audit.ReadPublicKey(pubPath); err != nil || !pub.Equal(k.Public()) {
		t.Fatalf("public key not rewritten: %v", err)
	}
	// A public key of another key pair is refused.
	other := filepath.Join(t.TempDir(), "other.key")
	if _, err := audit.LoadKey(other); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(audit.PublicKeyPath(other))
	os.WriteFile(pubPath, b, 0o644)
	if _, err := audit.LoadKey(path); err == nil || !strings.Contains(err.Error(), "was replaced") {
		t.Fatalf("mismatched public key: %v", err)
	}
	// A key others may read is refused.
	os.Chmod(path, 0o640)
	if _, err := audit.LoadKey(path); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("readable key: %v", err)
	}
	// Garbage is refused with what is wrong.
	bad := filepath.Join(t.TempDir(), "bad.key")
	os.WriteFile(bad, []byte("not a key"), 0o600)
	if _, err := audit.LoadKey(bad); err == nil || !strings.Contains(err.Error(), "PRIVATE KEY") {
		t.Fatalf("garbage key: %v", err)
	}
}

// An OpenSSL-made Ed25519 key pair (openssl genpkey -algorithm ed25519; openssl pkey -pubout)
// is read, and a key of another algorithm is refused by name.
func TestParseKeys(t *testing.T) {
	const priv = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEINV8+CRId6HxJ1kTZVA5JSVZv3T2Cjx+wZ6zIIpNjrNL\n-----END PRIVATE KEY-----\n"
	k, err := audit.ParsePrivateKey([]byte(priv))
	if err != nil {
		t.Fatal(err)
	}
	const pub = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA2/dHVsoLYmpHnKS19xfqy2uiTdbNNfP2AYJhruagGB8=\n-----END PUBLIC KEY-----\n"
	p, err := audit.ParsePublicKey([]byte(pub))
	if err != nil {
		t.Fatal(err)
	}
	if !p.Equal(k.Public()) {
		t.Fatal("the public key is not the private key's")
	}
	const ecPub = "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEXnEa6R8zQycUjd37T5WrN3q8k6Vz\nRJYrvsnry/fcgtFWhdpsx5xFGaSQPuHeGtFjTD0WiEzZEE2q52ALrSGa4A==\n-----END PUBLIC KEY-----\n"
	if _, err := audit.ParsePublicKey([]byte(ecPub)); err == nil || !strings.Contains(err.Error(), "not an Ed25519 key") {
		t.Fatalf("EC key: %v", err)
	}
}

func FuzzParsePublicKey(f *testing.F) {
	f.Add([]byte("-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA2/dHVsoLYmpHnKS19xfqy2uiTdbNNfP2AYJhruagGB8=\n-----END PUBLIC KEY-----\n"))
	f.Add([]byte("-----BEGIN PUBLIC KEY-----\n\n-----END PUBLIC KEY-----\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		k, err := audit.ParsePublicKey(b)
		if err == nil && len(k) != 32 {
			t.Fatalf("accepted a %d-byte key", len(k))
		}
	})
}

func FuzzParsePrivateKey(f *testing.F) {
	f.Add([]byte("-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEINV8+CRId6HxJ1kTZVA5JSVZv3T2Cjx+wZ6zIIpNjrNL\n-----END PRIVATE KEY-----\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		k, err := audit.ParsePrivateKey(b)
		if err == nil && len(k) != 64 {
			t.Fatalf("accepted a %d-byte key", len(k))
		}
	})
}
