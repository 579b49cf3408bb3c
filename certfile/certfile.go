// Package certfile serves a TLS certificate and key from PEM files and picks up new ones
// without a restart: each handshake stats both files (two cheap system calls next to the
// handshake's cryptography) and, when either changed, loads the pair again. A new pair that
// does not load (a half-written file, a key that does not match) is logged and the previous
// pair goes on serving, so a botched renewal never takes HTTPS or MQTT down.
package certfile

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"
)

// Pair is a certificate and key loaded from files, reloaded when they change. Its methods are
// safe for concurrent use.
type Pair struct {
	certFile, keyFile string
	log               *slog.Logger

	mu     sync.Mutex
	cert   *tls.Certificate
	loaded stamp // the files as they were when cert was loaded
	failed stamp // the files as they were when loading last failed (logged once per change)
}

// stamp identifies a version of the two files cheaply.
type stamp struct {
	certMod, keyMod   time.Time
	certSize, keySize int64
	sum               [2][sha256.Size]byte // contents, while the files are fresh
}

// Load reads the pair once; an error names the files. log receives reload outcomes (nil: none).
func Load(certFile, keyFile string, log *slog.Logger) (*Pair, error) {
	if certFile == "" || keyFile == "" {
		return nil, errors.New("certfile: both a certificate file and a key file are needed")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	p := &Pair{certFile: certFile, keyFile: keyFile, log: log}
	st, err := p.stat()
	if err != nil {
		return nil, err
	}
	cert, err := p.load()
	if err != nil {
		return nil, err
	}
	p.cert, p.loaded = cert, st
	if now := time.Now(); now.After(cert.Leaf.NotAfter) {
		log.Warn("TLS certificate has expired: clients will refuse it", "cert", certFile, "not_after", cert.Leaf.NotAfter)
	} else if cert.Leaf.NotAfter.Sub(now) < 14*24*time.Hour {
		log.Warn("TLS certificate expires within two weeks: renew it (the new files are picked up without a restart)",
			"cert", certFile, "not_after", cert.Leaf.NotAfter)
	}
	return p, nil
}

func (p *Pair) stat() (stamp, error) {
	c, err := os.Stat(p.certFile)
	if err != nil {
		return stamp{}, fmt.Errorf("certfile: certificate: %w", err)
	}
	k, err := os.Stat(p.keyFile)
	if err != nil {
		return stamp{}, fmt.Errorf("certfile: key: %w", err)
	}
	st := stamp{certMod: c.ModTime(), keyMod: k.ModTime(), certSize: c.Size(), keySize: k.Size()}
	// Files changed within the file system's timestamp resolution may keep their time and
	// size (a renewal written twice in a second): while they are that fresh, their contents
	// are compared too.
	if time.Since(st.certMod) < 2*time.Second || time.Since(st.keyMod) < 2*time.Second {
		for i, f := range []string{p.certFile, p.keyFile} {
			b, err := os.ReadFile(f)
			if err != nil {
				return stamp{}, fmt.Errorf("certfile: %w", err)
			}
			st.sum[i] = sha256.Sum256(b)
		}
	}
	return st, nil
}

func (p *Pair) load() (*tls.Certificate, error) {
	cert, err := tls.LoadX509KeyPair(p.certFile, p.keyFile)
	if err != nil {
		return nil, fmt.Errorf("certfile: %s and %s: %w", p.certFile, p.keyFile, err)
	}
	if cert.Leaf == nil { // filled in by LoadX509KeyPair since Go 1.23; kept for clarity
		if cert.Leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return nil, fmt.Errorf("certfile: %s: %w", p.certFile, err)
		}
	}
	return &cert, nil
}

// Certificate returns the pair to serve, reloading it first if the files changed.
func (p *Pair) Certificate() *tls.Certificate {
	p.mu.Lock()
	defer p.mu.Unlock()
	st, err := p.stat()
	if err != nil || st == p.loaded || st == p.failed {
		// A file missing for a moment (being replaced) keeps the current pair; so does a
		// broken pair already reported.
		return p.cert
	}
	cert, err := p.load()
	if err != nil {
		// Renewals often write the certificate and the key one after the other: the next
		// change of either file is tried again.
		p.failed = st
		p.log.Error("TLS certificate files changed but do not load; still serving the previous certificate",
			"cert", p.certFile, "key", p.keyFile, "serving_serial", p.cert.Leaf.SerialNumber.String(), "err", err)
		return p.cert
	}
	old := p.cert.Leaf
	p.cert, p.loaded, p.failed = cert, st, stamp{}
	p.log.Info("TLS certificate reloaded", "cert", p.certFile, "serial", cert.Leaf.SerialNumber.String(),
		"previous_serial", old.SerialNumber.String(), "subject", cert.Leaf.Subject.String(), "not_after", cert.Leaf.NotAfter)
	return cert
}

// GetCertificate is for tls.Config.GetCertificate.
func (p *Pair) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return p.Certificate(), nil
}

// ServerConfig is a server configuration that serves the pair with TLS 1.2 at least.
func (p *Pair) ServerConfig() *tls.Config {
	return &tls.Config{GetCertificate: p.GetCertificate, MinVersion: tls.VersionTLS12}
}

// Pool reads a CA bundle (PEM) into a certificate pool, for verifying peers: a relay's
// STARTTLS certificate, devices' client certificates, a broker's server certificate.
func Pool(path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("certfile: CA bundle: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("certfile: CA bundle %s holds no PEM certificate", path)
	}
	return pool, nil
}
