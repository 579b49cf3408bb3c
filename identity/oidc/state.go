package oidc

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// loginState is what the browser carries between Begin and Finish, sealed in a cookie with
// AES-256-GCM under the RP's key: it can neither read it (the PKCE verifier stays secret) nor
// change it. Keeping it in the browser rather than in a server-side map lets any node of a
// cluster finish a sign-in another began, given the same key.
type loginState struct {
	State    string `json:"s"`
	Nonce    string `json:"n"`
	Verifier string `json:"v"`
	ReturnTo string `json:"r"`
	Expires  int64  `json:"e"` // Unix seconds
}

// cookiePrefix starts the name of each login cookie; the rest is the start of the state, so
// that two sign-ins begun in two tabs do not overwrite each other's cookie.
const (
	cookiePrefix   = "iomt_oidc_"
	cookieStateLen = 16
	// maxCookieLen bounds a login cookie read back; the ones Begin writes are ~300 bytes.
	maxCookieLen = 2048
)

func cookieName(state string) string {
	if len(state) > cookieStateLen {
		state = state[:cookieStateLen]
	}
	return cookiePrefix + state
}

// randomString returns n random bytes, base64url-encoded.
func randomString(n int) string {
	return base64.RawURLEncoding.EncodeToString(randomBytes(n))
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (it crashes the program instead)
	return b
}

// sealer seals and opens login states.
type sealer struct{ aead cipher.AEAD }

func newSealer(key []byte) (sealer, error) {
	if len(key) != 32 {
		return sealer{}, fmt.Errorf("oidc: the cookie key must be 32 bytes, it is %d", len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return sealer{}, fmt.Errorf("oidc: cookie key: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return sealer{}, fmt.Errorf("oidc: cookie key: %w", err)
	}
	return sealer{aead}, nil
}

// seal encrypts st, binding it to the cookie's name.
func (s sealer) seal(name string, st loginState) string {
	plain, _ := json.Marshal(st) // a struct of strings and an int always marshals
	nonce := randomBytes(s.aead.NonceSize())
	return base64.RawURLEncoding.EncodeToString(s.aead.Seal(nonce, nonce, plain, []byte(name)))
}

// open decrypts a cookie value sealed under name, and checks that it has not expired.
func (s sealer) open(name, value string, now time.Time) (loginState, error) {
	if len(value) > maxCookieLen {
		return loginState{}, fmt.Errorf("%w: the login cookie is %d bytes long", ErrStateMismatch, len(value))
	}
	raw, err := base64.RawURLEncoding.DecodeString(value)
	if err != nil || len(raw) < s.aead.NonceSize() {
		return loginState{}, fmt.Errorf("%w: the login cookie is not one this server wrote", ErrStateMismatch)
	}
	ns := s.aead.NonceSize()
	plain, err := s.aead.Open(nil, raw[:ns], raw[ns:], []byte(name))
	if err != nil {
		return loginState{}, fmt.Errorf("%w: the login cookie does not open with this server's key (altered, or sealed by a server with another key)", ErrStateMismatch)
	}
	var st loginState
	if err := json.Unmarshal(plain, &st); err != nil {
		return loginState{}, fmt.Errorf("%w: the login cookie holds no login state", ErrStateMismatch)
	}
	if st.State == "" || st.Nonce == "" || st.Verifier == "" {
		return loginState{}, errors.Join(ErrStateMismatch, errors.New("the login cookie lacks state, nonce or verifier"))
	}
	if now.Unix() > st.Expires {
		return loginState{}, fmt.Errorf("%w: the sign-in began at the provider more than the login timeout ago (%s); start again",
			ErrLoginExpired, time.Unix(st.Expires, 0).UTC().Format(time.RFC3339))
	}
	return st, nil
}
