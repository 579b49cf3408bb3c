package oidc

import (
	"crypto/sha256"
	"slices"
	"sync"
	"time"
)

// tokenCache remembers access tokens already verified, by their SHA-256, so that an
// integration sending the same bearer token on every request costs one RSA verification per
// TTL, not one per request (≈ 0.2 ms of CPU each on this machine). An entry lasts until the
// token's expiry or the TTL, whichever is first; the TTL also bounds how long a key the
// provider withdrew still vouches for tokens it signed.
type tokenCache struct {
	ttl time.Duration
	max int

	mu      sync.Mutex
	entries map[[sha256.Size]byte]cachedToken
}

type cachedToken struct {
	id     Identity
	scopes []string
	until  time.Time
}

func newTokenCache(ttl time.Duration, max int) *tokenCache {
	return &tokenCache{ttl: ttl, max: max, entries: make(map[[sha256.Size]byte]cachedToken)}
}

func (c *tokenCache) get(raw string, now time.Time) (Identity, []string, bool) {
	if c == nil {
		return Identity{}, nil, false
	}
	k := sha256.Sum256([]byte(raw))
	c.mu.Lock()
	e, ok := c.entries[k]
	c.mu.Unlock()
	if !ok || !now.Before(e.until) {
		return Identity{}, nil, false
	}
	return cloneIdentity(e.id), slices.Clone(e.scopes), true
}

func (c *tokenCache) put(raw string, id Identity, scopes []string, now time.Time) {
	if c == nil {
		return
	}
	until := now.Add(c.ttl)
	if id.Expiry.Before(until) {
		until = id.Expiry
	}
	k := sha256.Sum256([]byte(raw))
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries) >= c.max {
		for k, e := range c.entries {
			if !now.Before(e.until) {
				delete(c.entries, k)
			}
		}
		if len(c.entries) >= c.max {
			clear(c.entries) // a flood of distinct tokens: start again rather than grow
		}
	}
	c.entries[k] = cachedToken{id: cloneIdentity(id), scopes: slices.Clone(scopes), until: until}
}

// cloneIdentity copies the slices, so that a caller editing its Identity changes no other.
func cloneIdentity(id Identity) Identity {
	id.Roles, id.Teams, id.Groups = slices.Clone(id.Roles), slices.Clone(id.Teams), slices.Clone(id.Groups)
	return id
}
