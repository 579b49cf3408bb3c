package oidc

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/iomt/iomt"
)

// SecretEnv is the environment variable LoadConfig reads the client secret from when the
// file names no client_secret_file.
const SecretEnv = "IOMT_OIDC_CLIENT_SECRET"

// maxConfigBytes bounds the configuration file read.
const maxConfigBytes = 1 << 20

// fileConfig is the configuration file (YAML, or JSON, which YAML reads too).
type fileConfig struct {
	Issuer               string   `yaml:"issuer"`
	ClientID             string   `yaml:"client_id"`
	ClientSecretFile     string   `yaml:"client_secret_file"`
	RedirectURL          string   `yaml:"redirect_url"`
	Scopes               []string `yaml:"scopes"`
	Tenant               string   `yaml:"tenant"`
	AccessTokenAudiences []string `yaml:"access_token_audiences"`
	CookieKeyFile        string   `yaml:"cookie_key_file"`
	LoginTimeout         string   `yaml:"login_timeout"`
	Mapping              `yaml:",inline"`
}

// parseConfig reads a configuration file's content (see README.md for its format). It does
// not read the files it names; LoadConfig does. Unknown keys are refused, so that a
// misspelt key is not silently ignored.
func parseConfig(data []byte) (Config, fileRefs, error) {
	if len(data) > maxConfigBytes {
		return Config{}, fileRefs{}, fmt.Errorf("%w: oidc config: %d bytes, at most %d", iomt.ErrInvalid, len(data), maxConfigBytes)
	}
	var probe map[string]any
	if err := yaml.Unmarshal(data, &probe); err != nil {
		return Config{}, fileRefs{}, fmt.Errorf("%w: oidc config: %w", iomt.ErrInvalid, err)
	}
	if _, ok := probe["client_secret"]; ok {
		return Config{}, fileRefs{}, fmt.Errorf("%w: oidc config: the client secret is not kept in this file: name a client_secret_file, or set %s", iomt.ErrInvalid, SecretEnv)
	}
	var fc fileConfig
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&fc); err != nil && !errors.Is(err, io.EOF) {
		return Config{}, fileRefs{}, fmt.Errorf("%w: oidc config: %w", iomt.ErrInvalid, err)
	}
	cfg := Config{
		Issuer: fc.Issuer, ClientID: fc.ClientID, RedirectURL: fc.RedirectURL, Scopes: fc.Scopes,
		Mapping: fc.Mapping, Tenant: fc.Tenant, AccessTokenAudiences: fc.AccessTokenAudiences,
	}
	var missing []string
	for _, f := range []struct{ key, v string }{{"issuer", fc.Issuer}, {"client_id", fc.ClientID}, {"redirect_url", fc.RedirectURL}} {
		if f.v == "" {
			missing = append(missing, f.key)
		}
	}
	if len(missing) > 0 {
		return Config{}, fileRefs{}, fmt.Errorf("%w: oidc config: %s missing", iomt.ErrInvalid, strings.Join(missing, ", "))
	}
	if fc.LoginTimeout != "" {
		d, err := time.ParseDuration(fc.LoginTimeout)
		if err != nil || d < time.Minute || d > time.Hour {
			return Config{}, fileRefs{}, fmt.Errorf("%w: oidc config: login_timeout %q must be a duration between 1m and 1h", iomt.ErrInvalid, fc.LoginTimeout)
		}
		cfg.LoginTimeout = d
	}
	if err := checkIssuer(cfg.Issuer); err != nil {
		return Config{}, fileRefs{}, err
	}
	if err := cfg.Mapping.Check(); err != nil {
		return Config{}, fileRefs{}, err
	}
	return cfg, fileRefs{secret: fc.ClientSecretFile, cookieKey: fc.CookieKeyFile}, nil
}

// fileRefs are the files a configuration names.
type fileRefs struct{ secret, cookieKey string }

// LoadConfig reads the configuration file at path (the --oidc-config flag), the client
// secret from its client_secret_file or else from $IOMT_OIDC_CLIENT_SECRET (getenv, e.g.
// os.Getenv), and the cookie key from its cookie_key_file if it names one.
func LoadConfig(path string, getenv func(string) string) (Config, error) {
	data, err := readSmall(path, maxConfigBytes)
	if err != nil {
		return Config{}, fmt.Errorf("oidc config: %w", err)
	}
	cfg, refs, err := parseConfig(data)
	if err != nil {
		return Config{}, fmt.Errorf("%s: %w", path, err)
	}
	if refs.secret != "" {
		s, err := readSmall(refs.secret, 64<<10)
		if err != nil {
			return Config{}, fmt.Errorf("oidc client secret: %w", err)
		}
		cfg.ClientSecret = strings.TrimSpace(string(s))
		if cfg.ClientSecret == "" {
			return Config{}, fmt.Errorf("%w: oidc client secret file %s is empty", iomt.ErrInvalid, refs.secret)
		}
	} else if getenv != nil {
		cfg.ClientSecret = getenv(SecretEnv)
	}
	if refs.cookieKey != "" {
		k, err := readSmall(refs.cookieKey, 64<<10)
		if err != nil {
			return Config{}, fmt.Errorf("oidc cookie key: %w", err)
		}
		if k = bytes.TrimSpace(k); len(k) < 32 {
			return Config{}, fmt.Errorf("%w: oidc cookie key file %s holds %d bytes, at least 32 are needed (e.g. openssl rand -base64 32)", iomt.ErrInvalid, refs.cookieKey, len(k))
		}
		cfg.CookieKey = k
	}
	return cfg, nil
}

func readSmall(path string, max int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("%w: %s is larger than %d bytes", iomt.ErrInvalid, path, max)
	}
	return b, nil
}
