package api

import (
	"errors"
	"net/http"

	"github.com/iomt/iomt/identity"
)

// SSOProvider is a single sign-on provider (OpenID Connect): Begin sends the browser to it,
// Finish reads its answer on the callback and says who signed in and where they were going.
type SSOProvider interface {
	Begin(w http.ResponseWriter, r *http.Request, returnTo string) error
	Finish(w http.ResponseWriter, r *http.Request) (ext identity.External, returnTo string, err error)
}

// ErrSSOUnavailable marks a provider that could not be reached: 503, not a refusal.
var ErrSSOUnavailable = errors.New("the identity provider cannot be reached")

// ssoLogin starts a single sign-on: GET /auth/oidc/login?return=/path.
func (s *Server) ssoLogin(w http.ResponseWriter, r *http.Request) {
	ret := r.URL.Query().Get("return")
	if ret == "" {
		ret = "/"
	}
	if err := s.SSO.Begin(w, r, ret); err != nil {
		if errors.Is(err, ErrSSOUnavailable) {
			writeProblem(w, r, http.StatusServiceUnavailable, err.Error())
			return
		}
		writeProblem(w, r, http.StatusBadRequest, err.Error())
	}
}

// ssoCallback finishes a single sign-on: the provider's answer becomes a session (the account
// is created at first sign-in and follows the provider's roles and groups after that).
func (s *Server) ssoCallback(w http.ResponseWriter, r *http.Request) {
	if s.Identity.Throttled(r.RemoteAddr) {
		writeProblem(w, r, http.StatusTooManyRequests, "too many failed attempts from this address; try again later")
		return
	}
	ext, ret, err := s.SSO.Finish(w, r)
	if err != nil {
		s.Identity.Failed(r.RemoteAddr) // forged or replayed callbacks count as guesses
		if rerr := s.RecordSignInFailure(r, err); rerr != nil {
			s.auditUnavailable(w, r, rerr)
			return
		}
		status := http.StatusUnauthorized
		if errors.Is(err, ErrSSOUnavailable) {
			status = http.StatusServiceUnavailable
		}
		writeProblem(w, r, status, "single sign-on failed: "+err.Error())
		return
	}
	if err := s.SignInExternal(w, r, ext); err != nil {
		if errors.Is(err, identity.ErrDisabled) {
			writeProblem(w, r, http.StatusUnauthorized, "single sign-on failed: "+err.Error())
			return
		}
		s.auditUnavailable(w, r, err)
		return
	}
	http.Redirect(w, r, ret, http.StatusSeeOther)
}
