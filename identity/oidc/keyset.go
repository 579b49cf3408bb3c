package oidc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// keySet verifies JWS signatures against the provider's JWKS, fetched over HTTP and cached.
//
// go-oidc's RemoteKeySet fetches the JWKS again after every failed verification, so each
// forged or tampered token someone sends costs a request to the hospital's identity
// provider. This one fetches again only when a token names a key ID it does not hold (a
// rotation), at most once per minRefresh, and when the cache is older than maxAge (so a key
// the provider withdrew stops working), which is what picking up a rotated key needs.
type keySet struct {
	url        string
	client     *http.Client
	algs       []jose.SignatureAlgorithm
	now        func() time.Time
	minRefresh time.Duration
	maxAge     time.Duration

	mu      sync.Mutex
	keys    []jose.JSONWebKey
	fetched time.Time // when keys were fetched; zero: never
	tried   time.Time // when a fetch was last tried, successful or not
	fetch   *keyFetch // the fetch under way, shared by concurrent callers
	lastErr error     // of the last fetch
}

type keyFetch struct {
	done chan struct{}
	keys []jose.JSONWebKey
	err  error
}

// errKeysUnavailable starts every error of fetching the provider's keys. go-oidc's verifier
// wraps key set errors with %v, so verifyError recognises it by its text.
var errKeysUnavailable = errors.New("the provider's keys are unavailable")

// maxJWKSBytes bounds what is read of a JWKS response; real ones are a few KB.
const maxJWKSBytes = 1 << 20

// VerifySignature implements go-oidc's KeySet.
func (s *keySet) VerifySignature(ctx context.Context, raw string) ([]byte, error) {
	jws, err := jose.ParseSignedCompact(raw, s.algs)
	if err != nil {
		return nil, fmt.Errorf("malformed jwt: %w", err)
	}
	if len(jws.Signatures) != 1 {
		return nil, fmt.Errorf("jwt has %d signatures, want 1", len(jws.Signatures))
	}
	kid := jws.Signatures[0].Header.KeyID

	keys, stale, err := s.cached(ctx)
	if err != nil {
		return nil, err
	}
	if !hasKey(keys, kid) && stale {
		// A key ID we have not seen: the provider may have rotated its key.
		if keys, err = s.refresh(ctx); err != nil {
			return nil, err
		}
	}
	for i := range keys {
		if kid != "" && keys[i].KeyID != kid {
			continue
		}
		if payload, err := jws.Verify(&keys[i]); err == nil {
			return payload, nil
		}
	}
	if !hasKey(keys, kid) {
		return nil, fmt.Errorf("no key %q in the provider's key set", kid)
	}
	return nil, errors.New("signature does not verify")
}

func hasKey(keys []jose.JSONWebKey, kid string) bool {
	for _, k := range keys {
		if kid == "" || k.KeyID == kid {
			return true
		}
	}
	return false
}

// cached returns the cached keys, fetching them first when there are none or they are older
// than maxAge; stale reports whether a fetch for an unknown key ID is allowed now.
func (s *keySet) cached(ctx context.Context) (keys []jose.JSONWebKey, stale bool, err error) {
	s.mu.Lock()
	now := s.now()
	expired := s.fetched.IsZero() || now.Sub(s.fetched) > s.maxAge
	keys, stale = s.keys, now.Sub(s.tried) >= s.minRefresh
	lastErr := s.lastErr
	s.mu.Unlock()
	if expired && stale {
		if keys, err = s.refresh(ctx); err != nil {
			return nil, false, err
		}
		return keys, false, nil
	}
	if len(keys) == 0 && lastErr != nil {
		return nil, false, lastErr // the provider failed a moment ago: do not ask it again yet
	}
	return keys, stale, nil
}

// refresh fetches the JWKS, sharing one request among concurrent callers.
func (s *keySet) refresh(ctx context.Context) ([]jose.JSONWebKey, error) {
	s.mu.Lock()
	f := s.fetch
	if f == nil {
		f = &keyFetch{done: make(chan struct{})}
		s.fetch = f
		s.tried = s.now()
		// The fetch outlives a caller that gives up, so that the others still get its result.
		go func() {
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
			defer cancel()
			keys, err := s.get(fctx)
			s.mu.Lock()
			if err == nil {
				s.keys, s.fetched = keys, s.now()
			}
			s.lastErr = err
			s.fetch = nil
			s.mu.Unlock()
			f.keys, f.err = keys, err
			close(f.done)
		}()
	}
	s.mu.Unlock()
	select {
	case <-f.done:
		return f.keys, f.err
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: %w", errKeysUnavailable, ctx.Err())
	}
}

func (s *keySet) get(ctx context.Context) ([]jose.JSONWebKey, error) {
	keys, err := s.fetchKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errKeysUnavailable, err)
	}
	return keys, nil
}

func (s *keySet) fetchKeys(ctx context.Context) ([]jose.JSONWebKey, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSBytes))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", s.url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s answered %s", s.url, resp.Status)
	}
	return parseJWKS(body)
}

// parseJWKS reads a JSON Web Key Set, keeping the public signing keys and skipping keys of
// types or uses it cannot verify with (an encryption key, an unknown curve), as RFC 7517 §5
// asks.
func parseJWKS(body []byte) ([]jose.JSONWebKey, error) {
	var raw struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(body, &raw); err != nil {
		return nil, fmt.Errorf("the provider's key set is not JSON: %w", err)
	}
	keys := make([]jose.JSONWebKey, 0, len(raw.Keys))
	for _, r := range raw.Keys {
		var k jose.JSONWebKey
		if err := k.UnmarshalJSON(r); err != nil {
			continue
		}
		if k.Use == "enc" || !k.IsPublic() || !k.Valid() {
			continue
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, errors.New("the provider's key set holds no usable signing key")
	}
	return keys, nil
}
