package oidc

import (
	"errors"
	"fmt"
)

// Errors of a sign-in or a bearer token, to be told apart with errors.Is. Every error that
// Finish and VerifyAccessToken return wraps one of them, with the detail in its message.
var (
	// ErrStateMismatch: the callback's state is not the one this browser was sent with (no
	// login cookie, a cookie of another login, or a forged or damaged one). The user should
	// start the sign-in again; it is also what a login CSRF attempt looks like.
	ErrStateMismatch = errors.New("oidc: state mismatch")
	// ErrLoginExpired: the user took longer than the login timeout at the provider.
	ErrLoginExpired = errors.New("oidc: sign-in took too long")
	// ErrAccessDenied: the provider answered error=access_denied (the user cancelled or the
	// provider refused them). The ProviderError in the chain has the provider's description.
	ErrAccessDenied = errors.New("oidc: access denied by the identity provider")
	// ErrProvider: the provider answered the callback with another OAuth error, or could not
	// be reached, or refused the code exchange.
	ErrProvider = errors.New("oidc: identity provider error")
	// ErrInvalidToken: a token's signature, issuer, audience, nonce, type or form is wrong.
	ErrInvalidToken = errors.New("oidc: invalid token")
	// ErrTokenExpired: a token was valid but has expired.
	ErrTokenExpired = errors.New("oidc: token expired")
	// ErrClaims: a verified token lacks a claim iomt needs (sub, a login) or holds one it
	// cannot accept (control characters, over-long).
	ErrClaims = errors.New("oidc: unusable claims")
	// ErrNoRole: the user's groups map to no iomt role, so iomt refuses them.
	ErrNoRole = errors.New("oidc: no iomt role for this user")
	// ErrBadReturnTo: Begin was given a return address that is not a local path.
	ErrBadReturnTo = errors.New("oidc: return address must be a local path")
)

// ProviderError is an OAuth 2.0 error the provider sent to the callback (RFC 6749 §4.1.2.1).
// It matches ErrAccessDenied for code access_denied and ErrProvider for every other code.
type ProviderError struct {
	Code        string // e.g. access_denied, login_required, server_error
	Description string // error_description, as the provider wrote it
}

func (e *ProviderError) Error() string {
	if e.Description == "" {
		return fmt.Sprintf("oidc: identity provider answered %s", e.Code)
	}
	return fmt.Sprintf("oidc: identity provider answered %s: %s", e.Code, e.Description)
}

// Is makes errors.Is(err, ErrAccessDenied) and errors.Is(err, ErrProvider) work.
func (e *ProviderError) Is(target error) bool {
	if e.Code == "access_denied" {
		return target == ErrAccessDenied
	}
	return target == ErrProvider
}
