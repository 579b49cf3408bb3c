package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/iomt/iomt"
	"github.com/iomt/iomt/identity"
	"github.com/iomt/iomt/policy"
)

// BreakGlassFor is how long an emergency access lasts unless the clinician asks for less.
const BreakGlassFor = time.Hour

func (s *Server) peopleRoutes() {
	h := func(f http.HandlerFunc) http.Handler { return f }
	for _, rt := range []Route{
		{Pattern: "GET /api/v1/auth/config", Need: policy.Public, Handler: h(s.authConfig)},
		// Sign-in records its own audit event: the guard has no principal yet.
		{Pattern: "POST /api/v1/auth/signin", Need: policy.Public, Handler: h(s.signIn)},
		{Pattern: "POST /api/v1/auth/signout", Need: policy.SignedIn, Action: "session.signout", Handler: h(s.signOut)},
		{Pattern: "GET /api/v1/me", Need: policy.SignedIn, Action: "session.read", Handler: h(s.me)},
		{Pattern: "POST /api/v1/users", Need: policy.Admin, Action: "user.create", Handler: h(s.createUser)},
		{Pattern: "GET /api/v1/users", Need: policy.Admin, Action: "user.list", Handler: h(s.listUsers)},
		{Pattern: "PATCH /api/v1/users/{user}", Need: policy.Admin, Action: "user.update", Handler: h(s.updateUser)},
		{Pattern: "POST /api/v1/users/{user}/totp", Need: policy.Admin, Action: "user.totp.enroll", Handler: h(s.enrollTOTP)},
		{Pattern: "POST /api/v1/users/{user}/signout", Need: policy.Admin, Action: "user.signout", Handler: h(s.signOutUser)},
		{Pattern: "POST /api/v1/users/{user}/tokens", Need: policy.Admin, Action: "token.issue", Handler: h(s.issueToken)},
		{Pattern: "GET /api/v1/tokens", Need: policy.Admin, Action: "token.list", Handler: h(s.listTokens)},
		{Pattern: "DELETE /api/v1/tokens/{token}", Need: policy.Admin, Action: "token.revoke", Handler: h(s.revokeToken)},
		{Pattern: "GET /api/v1/teams", Need: policy.Admin, Action: "team.list", Handler: h(s.listTeams)},
		{Pattern: "PUT /api/v1/teams/{team}", Need: policy.Admin, Action: "team.save", Handler: h(s.saveTeam)},
		{Pattern: "DELETE /api/v1/teams/{team}", Need: policy.Admin, Action: "team.delete", Handler: h(s.deleteTeam)},
		{Pattern: "GET /api/v1/audit", Need: policy.Audit, Action: "audit.read", Resource: "AuditEvent", Interaction: "s", Handler: h(s.readAudit)},
		{Pattern: "GET /api/v1/break-glass", Need: policy.Audit, Action: "breakglass.list", Resource: "AuditEvent", Interaction: "s", Handler: h(s.listBreakGlass)},
	} {
		s.handle(rt)
	}
	if s.SSO != nil {
		// Sign-in records its own audit event, as the password sign-in does.
		s.handle(Route{Pattern: "GET /auth/oidc/login", Need: policy.Public, Handler: h(s.ssoLogin)})
		s.handle(Route{Pattern: "GET /auth/oidc/callback", Need: policy.Public, Handler: h(s.ssoCallback)})
	}
}

func (s *Server) authConfig(w http.ResponseWriter, r *http.Request) {
	out := map[string]any{"password": s.Identity != nil, "sso": s.SSO != nil}
	if s.Identity != nil {
		out["idleTimeoutSeconds"] = int(s.Identity.Config().IdleTimeout.Seconds())
	}
	writeJSON(w, http.StatusOK, out)
}

type signInIn struct {
	Login    string `json:"login"`
	Password string `json:"password"`
	Code     string `json:"code"`
}

// signInCodes tell a client which refusal it met, so the page can ask for a code.
var signInCodes = []struct {
	err  error
	code string
}{
	{identity.ErrCodeRequired, "code-required"}, {identity.ErrBadCode, "bad-code"}, {identity.ErrLocked, "locked"},
	{identity.ErrMFASetup, "mfa-setup"}, {identity.ErrDisabled, "disabled"}, {identity.ErrBadCredentials, "bad-credentials"},
}

func (s *Server) signIn(w http.ResponseWriter, r *http.Request) {
	if s.Identity == nil {
		writeProblem(w, r, http.StatusNotImplemented, "built-in accounts are not enabled on this node")
		return
	}
	var in signInIn
	if !s.decodeBody(w, r, &in) {
		return
	}
	ev := iomt.AuditEvent{Time: time.Now().UTC(), Tenant: iomt.DefaultTenant, Action: "session.signin", Source: r.RemoteAddr,
		Actor: "anonymous", ActorName: truncate(in.Login, iomt.MaxNameLen), Resource: r.Method + " " + r.URL.Path}
	out, err := s.Identity.SignIn(r.Context(), identity.SignInRequest{Login: in.Login, Password: in.Password, Code: in.Code, Source: r.RemoteAddr})
	if out.User.ID != "" {
		ev.Actor, ev.ActorName = "user:"+out.User.ID, out.User.Login
	}
	if err != nil {
		ev.Outcome, ev.Reason = iomt.OutcomeDenied, err.Error()
		status, code := http.StatusUnauthorized, ""
		for _, c := range signInCodes {
			if errors.Is(err, c.err) {
				code = c.code
				break
			}
		}
		switch {
		case errors.Is(err, identity.ErrThrottled):
			status, code = http.StatusTooManyRequests, "throttled"
			w.Header().Set("Retry-After", strconv.Itoa(int(s.Identity.Config().SourceWindow.Seconds())))
		case code == "":
			s.storeError(w, r, "sign-in", err)
			return
		}
		ev.Status = status
		if err := s.record(r.Context(), ev); err != nil {
			s.auditUnavailable(w, r, err)
			return
		}
		writeProblemExt(w, r, Problem{Status: status, Detail: err.Error(), Code: code})
		return
	}
	ev.Outcome, ev.Status = iomt.OutcomeSuccess, http.StatusOK
	ev.Detail = map[string]string{"method": out.Session.Method}
	if err := s.record(r.Context(), ev); err != nil {
		_ = s.Identity.SignOut(r.Context(), out.Token)
		s.auditUnavailable(w, r, err)
		return
	}
	s.setSessionCookie(w, out.Token, out.Session.Expires)
	me := s.meOf(identity.Principal(out.User, policy.KindUser, ""), &out.Session)
	me.Name = out.User.Name
	writeJSON(w, http.StatusOK, me)
}

// SetSessionCookie hands the browser its session: HttpOnly (page scripts never read it),
// SameSite=Lax (sent on the redirect back from the identity provider, not on cross-site
// writes), Secure under TLS.
func (s *Server) setSessionCookie(w http.ResponseWriter, token string, expires time.Time) {
	http.SetCookie(w, &http.Cookie{Name: SessionCookie, Value: token, Path: "/", Expires: expires, HttpOnly: true,
		SameSite: http.SameSiteLaxMode, Secure: s.TLS})
}

// SignInExternal opens a session for a user the identity provider signed in and sets its
// cookie; the SSO handler calls it from its callback.
func (s *Server) SignInExternal(w http.ResponseWriter, r *http.Request, ext identity.External) error {
	ev := iomt.AuditEvent{Time: time.Now().UTC(), Tenant: iomt.DefaultTenant, Action: "session.signin", Source: r.RemoteAddr,
		Actor: "anonymous", ActorName: truncate(ext.Login, iomt.MaxNameLen), Resource: "oidc " + ext.Issuer,
		Detail: map[string]string{"method": "oidc"}}
	out, err := s.Identity.SignInExternal(r.Context(), ext, r.RemoteAddr)
	if out.User.ID != "" {
		ev.Actor, ev.ActorName = "user:"+out.User.ID, out.User.Login
	}
	ev.Outcome, ev.Status = iomt.OutcomeSuccess, http.StatusOK
	if err != nil {
		ev.Outcome, ev.Status, ev.Reason = iomt.OutcomeDenied, http.StatusUnauthorized, err.Error()
	}
	if rerr := s.record(r.Context(), ev); rerr != nil {
		if err == nil {
			_ = s.Identity.SignOut(r.Context(), out.Token)
		}
		return rerr
	}
	if err != nil {
		return err
	}
	s.setSessionCookie(w, out.Token, out.Session.Expires)
	return nil
}

// RecordSignInFailure records a single sign-on that failed before iomt knew the user (the
// provider refused, or the callback did not verify).
func (s *Server) RecordSignInFailure(r *http.Request, why error) error {
	return s.record(r.Context(), iomt.AuditEvent{Time: time.Now().UTC(), Tenant: iomt.DefaultTenant, Action: "session.signin",
		Source: r.RemoteAddr, Actor: "anonymous", Outcome: iomt.OutcomeDenied, Status: http.StatusUnauthorized,
		Reason: why.Error(), Resource: "oidc", Detail: map[string]string{"method": "oidc"}})
}

// truncate cuts s to at most n bytes of valid UTF-8, for audit fields taken from input.
func truncate(s string, n int) string {
	if len(s) > n {
		s = s[:n]
	}
	// Control characters would make the record one the trail refuses.
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, strings.ToValidUTF8(s, ""))
}

func (s *Server) signOut(w http.ResponseWriter, r *http.Request) {
	pr, _ := PrincipalFrom(r.Context())
	ended := 0
	if r.URL.Query().Get("everywhere") == "true" && pr.Kind == policy.KindUser && s.Identity != nil {
		n, err := s.Identity.SignOutEverywhere(r.Context(), pr.ID)
		if err != nil {
			s.storeError(w, r, "sessions", err)
			return
		}
		ended = n
	} else if c, err := r.Cookie(SessionCookie); err == nil && s.Identity != nil {
		if err := s.Identity.SignOut(r.Context(), c.Value); err != nil {
			s.storeError(w, r, "session", err)
			return
		}
		ended = 1
	}
	noteDetail(r, "sessions", strconv.Itoa(ended))
	http.SetCookie(w, &http.Cookie{Name: SessionCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteLaxMode, Secure: s.TLS})
	writeJSON(w, http.StatusOK, map[string]any{"signedOut": true, "sessions": ended})
}

type meOut struct {
	ID      string      `json:"id"`
	Kind    string      `json:"kind"`
	Login   string      `json:"login"`
	Name    string      `json:"name,omitempty"`
	Roles   []iomt.Role `json:"roles"`
	CSRF    string      `json:"csrf,omitempty"`
	Expires time.Time   `json:"expires,omitzero"`
	// IdleTimeoutSeconds is how long the session lasts unused; the page signs out after it.
	IdleTimeoutSeconds int      `json:"idleTimeoutSeconds,omitempty"`
	Scopes             []string `json:"scopes,omitempty"`
}

func (s *Server) meOf(p policy.Principal, sess *iomt.Session) meOut {
	out := meOut{ID: p.ID, Kind: p.Kind, Login: p.Name, Roles: p.Roles}
	if sess != nil {
		out.CSRF, out.Expires = sess.CSRF, sess.Expires
		out.IdleTimeoutSeconds = int(s.Identity.Config().IdleTimeout.Seconds())
	}
	for _, sc := range p.Scopes {
		out.Scopes = append(out.Scopes, sc.String())
	}
	return out
}

func (s *Server) me(w http.ResponseWriter, r *http.Request) {
	pr, _ := PrincipalFrom(r.Context())
	sess, _ := r.Context().Value(sessionKey{}).(*iomt.Session)
	out := s.meOf(pr, sess)
	if pr.Kind == policy.KindUser {
		if u, err := s.Store.User(r.Context(), pr.ID); err == nil {
			out.Login, out.Name = u.Login, u.Name
		}
	}
	writeJSON(w, http.StatusOK, out)
}

// ---- users ----

type userIn struct {
	Login    string      `json:"login"`
	Name     string      `json:"name"`
	Roles    []iomt.Role `json:"roles"`
	Password string      `json:"password"`
}

type userOut struct {
	iomt.User
	MFA bool `json:"mfa"`
}

func (s *Server) peopleError(w http.ResponseWriter, r *http.Request, what string, err error) {
	switch {
	case errors.Is(err, iomt.ErrInvalid):
		writeProblem(w, r, http.StatusUnprocessableEntity, strings.TrimPrefix(err.Error(), "identity: "))
	case errors.Is(err, iomt.ErrDuplicate):
		writeProblem(w, r, http.StatusConflict, what+" already exists")
	default:
		s.storeError(w, r, what, err)
	}
}

func (s *Server) createUser(w http.ResponseWriter, r *http.Request) {
	var in userIn
	if !s.decodeBody(w, r, &in) {
		return
	}
	u, err := s.Identity.CreateUser(r.Context(), identity.NewUser{Tenant: accessFrom(r.Context()).Principal.Tenant, Login: in.Login, Name: in.Name, Roles: in.Roles, Password: in.Password})
	if err != nil {
		s.peopleError(w, r, fmt.Sprintf("user %q", in.Login), err)
		return
	}
	noteResource(r, "user/"+u.ID, "login", u.Login, "roles", joinRoles(u.Roles))
	writeJSON(w, http.StatusCreated, userOut{u, u.MFAEnabled()})
}

func noteResource(r *http.Request, res string, kv ...string) {
	noteDetail(r, append([]string{"target", res}, kv...)...)
}

func joinRoles(rs []iomt.Role) string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = string(r)
	}
	return strings.Join(out, ",")
}

func (s *Server) listUsers(w http.ResponseWriter, r *http.Request) {
	us, err := s.Store.Users(r.Context(), iomt.UserFilter{Tenant: accessFrom(r.Context()).Principal.Tenant})
	if err != nil {
		s.storeError(w, r, "users", err)
		return
	}
	out := make([]userOut, len(us))
	for i, u := range us {
		out[i] = userOut{u, u.MFAEnabled()}
	}
	writeJSON(w, http.StatusOK, map[string]any{"users": out})
}

type userPatch struct {
	Name     *string      `json:"name"`
	Roles    *[]iomt.Role `json:"roles"`
	Disabled *bool        `json:"disabled"`
	Password *string      `json:"password"`
	// Unlock ends a lockout after failed sign-ins.
	Unlock bool `json:"unlock"`
}

func (s *Server) userOf(w http.ResponseWriter, r *http.Request) (iomt.User, bool) {
	u, err := s.Store.User(r.Context(), r.PathValue("user"))
	if err == nil && u.Tenant != accessFrom(r.Context()).Principal.Tenant {
		err = iomt.ErrNotFound
	}
	if err != nil {
		s.storeError(w, r, "user "+r.PathValue("user"), err)
		return u, false
	}
	return u, true
}

func (s *Server) updateUser(w http.ResponseWriter, r *http.Request) {
	var in userPatch
	if !s.decodeBody(w, r, &in) {
		return
	}
	u, ok := s.userOf(w, r)
	if !ok {
		return
	}
	var changed []string
	endSessions := false
	if in.Name != nil && *in.Name != u.Name {
		u.Name, changed = strings.TrimSpace(*in.Name), append(changed, "name")
	}
	if in.Roles != nil && !slices.Equal(*in.Roles, u.Roles) {
		noteDetail(r, "rolesFrom", joinRoles(u.Roles), "rolesTo", joinRoles(*in.Roles))
		u.Roles, changed, endSessions = *in.Roles, append(changed, "roles"), true
	}
	if in.Disabled != nil && *in.Disabled != u.Disabled {
		u.Disabled, changed, endSessions = *in.Disabled, append(changed, "disabled"), *in.Disabled
	}
	if in.Unlock {
		u.LockedUntil, u.FailedSignIns, changed = time.Time{}, 0, append(changed, "unlock")
	}
	u.UpdatedAt = time.Now().UTC().Truncate(time.Millisecond)
	if len(changed) > 0 {
		if err := s.Store.UpdateUser(r.Context(), u); err != nil {
			s.peopleError(w, r, "user", err)
			return
		}
	}
	if in.Password != nil {
		if err := s.Identity.SetPassword(r.Context(), u.ID, *in.Password); err != nil {
			s.peopleError(w, r, "user", err)
			return
		}
		changed = append(changed, "password")
	}
	if endSessions {
		if _, err := s.Identity.SignOutEverywhere(r.Context(), u.ID); err != nil {
			s.storeError(w, r, "sessions", err)
			return
		}
	}
	s.Identity.Forget(u.ID)
	noteResource(r, "user/"+u.ID, "login", u.Login, "changed", strings.Join(changed, ","))
	writeJSON(w, http.StatusOK, userOut{u, u.MFAEnabled()})
}

func (s *Server) enrollTOTP(w http.ResponseWriter, r *http.Request) {
	u, ok := s.userOf(w, r)
	if !ok {
		return
	}
	secret, url, err := s.Identity.EnrollTOTP(r.Context(), u.ID)
	if err != nil {
		s.peopleError(w, r, "user", err)
		return
	}
	noteResource(r, "user/"+u.ID, "login", u.Login)
	// Shown once: hand it to the user to scan; it is not shown again.
	writeJSON(w, http.StatusOK, map[string]string{"secret": secret, "otpauth": url})
}

func (s *Server) signOutUser(w http.ResponseWriter, r *http.Request) {
	u, ok := s.userOf(w, r)
	if !ok {
		return
	}
	n, err := s.Identity.SignOutEverywhere(r.Context(), u.ID)
	if err != nil {
		s.storeError(w, r, "sessions", err)
		return
	}
	noteResource(r, "user/"+u.ID, "sessions", strconv.Itoa(n))
	writeJSON(w, http.StatusOK, map[string]int{"sessions": n})
}

// ---- API tokens ----

type tokenIn struct {
	Name   string   `json:"name"`
	Scopes []string `json:"scopes"`
	// For is the lifetime, a Go duration ("720h"); default 90 days.
	For string `json:"for"`
}

func (s *Server) issueToken(w http.ResponseWriter, r *http.Request) {
	var in tokenIn
	if !s.decodeBody(w, r, &in) {
		return
	}
	u, ok := s.userOf(w, r)
	if !ok {
		return
	}
	ttl := 90 * 24 * time.Hour
	if in.For != "" {
		d, err := time.ParseDuration(in.For)
		if err != nil {
			writeProblem(w, r, http.StatusBadRequest, fmt.Sprintf(`"for" must be a duration such as "720h", got %q`, in.For))
			return
		}
		ttl = d
	}
	secret, t, err := s.Identity.IssueToken(r.Context(), u.ID, in.Name, in.Scopes, ttl)
	if err != nil {
		s.peopleError(w, r, "token", err)
		return
	}
	noteResource(r, "token/"+t.ID, "user", u.Login, "scopes", strings.Join(t.Scopes, " "), "expires", t.Expires.Format(time.RFC3339))
	writeJSON(w, http.StatusCreated, struct {
		iomt.APIToken
		Token string `json:"token"` // shown once
	}{t, secret})
}

func (s *Server) listTokens(w http.ResponseWriter, r *http.Request) {
	ts, err := s.Store.APITokens(r.Context(), iomt.APITokenFilter{Tenant: accessFrom(r.Context()).Principal.Tenant, User: r.URL.Query().Get("user")})
	if err != nil {
		s.storeError(w, r, "tokens", err)
		return
	}
	if ts == nil {
		ts = []iomt.APIToken{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"tokens": ts})
}

func (s *Server) revokeToken(w http.ResponseWriter, r *http.Request) {
	if t, err := s.Store.APIToken(r.Context(), r.PathValue("token")); err != nil || t.Tenant != accessFrom(r.Context()).Principal.Tenant {
		s.storeError(w, r, "token "+r.PathValue("token"), iomt.ErrNotFound)
		return
	}
	t, err := s.Identity.RevokeToken(r.Context(), r.PathValue("token"))
	if err != nil {
		s.storeError(w, r, "token "+r.PathValue("token"), err)
		return
	}
	noteResource(r, "token/"+t.ID)
	writeJSON(w, http.StatusOK, t)
}

// ---- care teams ----

type teamIn struct {
	Name      string   `json:"name"`
	Members   []string `json:"members"`
	Patients  []string `json:"patients"`
	Locations []string `json:"locations"`
}

func (s *Server) listTeams(w http.ResponseWriter, r *http.Request) {
	ts, err := s.Store.CareTeams(r.Context(), iomt.CareTeamFilter{Tenant: accessFrom(r.Context()).Principal.Tenant, Member: r.URL.Query().Get("member")})
	if err != nil {
		s.storeError(w, r, "care teams", err)
		return
	}
	if ts == nil {
		ts = []iomt.CareTeam{}
	}
	for _, t := range ts {
		notePatients(r, t.Patients...) // the teams name the patients they care for
	}
	writeJSON(w, http.StatusOK, map[string]any{"teams": ts})
}

func (s *Server) saveTeam(w http.ResponseWriter, r *http.Request) {
	var in teamIn
	if !s.decodeBody(w, r, &in) {
		return
	}
	tenant := accessFrom(r.Context()).Principal.Tenant
	t := iomt.CareTeam{ID: r.PathValue("team"), Tenant: tenant, Name: strings.TrimSpace(in.Name), Members: in.Members,
		Patients: in.Patients, Locations: in.Locations, UpdatedAt: time.Now().UTC().Truncate(time.Millisecond)}
	if t.Name == "" {
		t.Name = t.ID
	}
	if err := iomt.CheckText("team id", t.ID, iomt.MaxNameLen); err != nil {
		s.peopleError(w, r, "team", err)
		return
	}
	// Members and patients must exist in the tenant: a typo would silently grant nothing.
	for _, m := range t.Members {
		if u, err := s.Store.User(r.Context(), m); err != nil || u.Tenant != tenant {
			writeProblem(w, r, http.StatusUnprocessableEntity, fmt.Sprintf("member %q is not a user of this tenant", m))
			return
		}
	}
	for _, p := range t.Patients {
		if pt, err := s.Store.Patient(r.Context(), p); err != nil || pt.Tenant != tenant {
			writeProblem(w, r, http.StatusUnprocessableEntity, fmt.Sprintf("patient %q is not a patient of this tenant", p))
			return
		}
	}
	// Members the identity provider added stay its to take out, as long as the admin keeps them.
	if old, err := s.Store.CareTeams(r.Context(), iomt.CareTeamFilter{Tenant: tenant}); err == nil {
		for _, o := range old {
			if o.ID == t.ID {
				for _, m := range o.SSOMembers {
					if slices.Contains(t.Members, m) {
						t.SSOMembers = append(t.SSOMembers, m)
					}
				}
			}
		}
	}
	if err := s.Store.SaveCareTeam(r.Context(), t); err != nil {
		s.peopleError(w, r, "team", err)
		return
	}
	s.Policy.NoteCareTeam(t)
	notePatients(r, t.Patients...)
	noteResource(r, "team/"+t.ID, "members", strings.Join(t.Members, ","), "locations", strings.Join(t.Locations, ","))
	writeJSON(w, http.StatusOK, t)
}

func (s *Server) deleteTeam(w http.ResponseWriter, r *http.Request) {
	ts, err := s.Store.CareTeams(r.Context(), iomt.CareTeamFilter{Tenant: accessFrom(r.Context()).Principal.Tenant})
	if err != nil {
		s.storeError(w, r, "care teams", err)
		return
	}
	if !slices.ContainsFunc(ts, func(t iomt.CareTeam) bool { return t.ID == r.PathValue("team") }) {
		s.storeError(w, r, "team "+r.PathValue("team"), iomt.ErrNotFound)
		return
	}
	if err := s.Store.DeleteCareTeam(r.Context(), r.PathValue("team")); err != nil {
		s.storeError(w, r, "team "+r.PathValue("team"), err)
		return
	}
	s.reloadPolicy(r.Context())
	noteResource(r, "team/"+r.PathValue("team"))
	w.WriteHeader(http.StatusNoContent)
}

// reloadPolicy brings this node's policy in line with the store after a change it cannot
// note piecemeal (a team deleted); other nodes
// pick it up on their next periodic reload.
func (s *Server) reloadPolicy(ctx context.Context) {
	if err := s.Policy.Reload(ctx, s.Store, time.Now()); err != nil {
		s.log.Error("policy reload", "err", err)
	}
}

// admittingTeam decides whose care a new patient comes into: the caller's team it names, or
// the caller's teams that cover its location. It returns the team to add the patient to (nil
// if a location covers it), or why the patient cannot be admitted by this caller.
func (s *Server) admittingTeam(r *http.Request, pr policy.Principal, p iomt.Patient, team string) (*iomt.CareTeam, string) {
	var ts []iomt.CareTeam
	var err error
	if team != "" || pr.Kind != policy.KindBootstrap {
		f := iomt.CareTeamFilter{Tenant: pr.Tenant}
		if pr.Kind != policy.KindBootstrap {
			f.Member = pr.ID
		}
		if ts, err = s.Store.CareTeams(r.Context(), f); err != nil {
			return nil, "care teams cannot be read: " + err.Error()
		}
	}
	if team != "" {
		for i := range ts {
			if ts[i].ID == team {
				return &ts[i], ""
			}
		}
		return nil, fmt.Sprintf("team %q is not one of your care teams", team)
	}
	if pr.Kind == policy.KindBootstrap {
		return nil, ""
	}
	for _, t := range ts {
		if t.CoversLocation(p.Location) {
			return nil, ""
		}
	}
	ids := make([]string, len(ts))
	for i, t := range ts {
		ids[i] = t.ID
	}
	return nil, fmt.Sprintf(`a new patient must come into your care: give "team" (one of yours: %s) or a "location" one of your teams covers`, strings.Join(ids, ", "))
}

// transferAllowed says why the caller may not move a patient to p.Location, or "": a
// clinician moves patients only into the care of their own teams, and never under emergency
// access (which would turn an hour's access into a lasting one).
func (s *Server) transferAllowed(r *http.Request, p iomt.Patient) string {
	acc := accessFrom(r.Context())
	if acc.Principal.Kind == policy.KindBootstrap {
		return ""
	}
	if acc.Emergency {
		return "a patient opened by emergency access cannot be moved: ask their care team"
	}
	ts, err := s.Store.CareTeams(r.Context(), iomt.CareTeamFilter{Tenant: acc.Principal.Tenant, Member: acc.Principal.ID})
	if err != nil {
		return "care teams cannot be read: " + err.Error()
	}
	for _, t := range ts {
		if t.CoversLocation(p.Location) || slices.Contains(t.Patients, p.ID) {
			return ""
		}
	}
	return fmt.Sprintf("location %q is not covered by any of your care teams: a patient can be moved only into your teams' care (the receiving ward's team moves them there)", p.Location)
}

// ---- break-the-glass ----

type breakGlassIn struct {
	Reason string `json:"reason"`
	For    string `json:"for"` // a Go duration, at most BreakGlassFor
}

func (s *Server) breakGlass(w http.ResponseWriter, r *http.Request) {
	var in breakGlassIn
	if !s.decodeBody(w, r, &in) {
		return
	}
	in.Reason = strings.TrimSpace(in.Reason)
	if len(in.Reason) < 10 {
		writeProblem(w, r, http.StatusUnprocessableEntity, `state the emergency in "reason" (at least 10 characters): it is recorded and reviewed by auditors`)
		return
	}
	if err := iomt.CheckText("reason", in.Reason, iomt.MaxTextLen); err != nil {
		writeProblem(w, r, http.StatusUnprocessableEntity, err.Error())
		return
	}
	d := BreakGlassFor
	if in.For != "" {
		v, err := time.ParseDuration(in.For)
		if err != nil || v <= 0 || v > BreakGlassFor {
			writeProblem(w, r, http.StatusBadRequest, fmt.Sprintf(`"for" must be a duration up to %s, got %q`, BreakGlassFor, in.For))
			return
		}
		d = v
	}
	pr, _ := PrincipalFrom(r.Context())
	id, err := iomt.NewID()
	if err != nil {
		s.storeError(w, r, "break-glass", err)
		return
	}
	now := time.Now().UTC().Truncate(time.Millisecond)
	b := iomt.BreakGlass{ID: id, Tenant: pr.Tenant, User: pr.ID, Patient: r.PathValue("id"), Reason: in.Reason, Start: now, Until: now.Add(d)}
	if err := s.Store.SaveBreakGlass(r.Context(), b); err != nil {
		s.storeError(w, r, "break-glass", err)
		return
	}
	s.Policy.NoteBreakGlass(b)
	n := noteOf(r)
	n.reason, n.purpose = in.Reason, "ETREAT"
	noteDetail(r, "until", b.Until.Format(time.RFC3339))
	writeJSON(w, http.StatusCreated, b)
}

func (s *Server) listBreakGlass(w http.ResponseWriter, r *http.Request) {
	f := iomt.BreakGlassFilter{Tenant: accessFrom(r.Context()).Principal.Tenant, Patient: r.URL.Query().Get("patient"), User: r.URL.Query().Get("user")}
	if v := r.URL.Query().Get("since"); v != "" {
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			writeProblem(w, r, http.StatusBadRequest, fmt.Sprintf("since must be an RFC 3339 time, got %q", v))
			return
		}
		f.Since = t
	}
	bs, err := s.Store.BreakGlasses(r.Context(), f)
	if err != nil {
		s.storeError(w, r, "break-glass", err)
		return
	}
	if bs == nil {
		bs = []iomt.BreakGlass{}
	}
	for _, b := range bs {
		notePatients(r, b.Patient)
	}
	writeJSON(w, http.StatusOK, map[string]any{"accesses": bs})
}

// ---- the audit trail ----

func (s *Server) readAudit(w http.ResponseWriter, r *http.Request) {
	if s.AuditTrail == nil {
		writeProblem(w, r, http.StatusNotImplemented, "the audit trail is not readable on this node")
		return
	}
	q := r.URL.Query()
	f := iomt.AuditFilter{Tenant: accessFrom(r.Context()).Principal.Tenant, Patient: q.Get("patient"), Actor: q.Get("actor"), Action: q.Get("action")}
	for _, p := range []struct {
		name string
		dst  *time.Time
	}{{"since", &f.Since}, {"until", &f.Until}} {
		if v := q.Get(p.name); v != "" {
			t, err := time.Parse(time.RFC3339Nano, v)
			if err != nil {
				writeProblem(w, r, http.StatusBadRequest, fmt.Sprintf("%s must be an RFC 3339 time, got %q", p.name, v))
				return
			}
			*p.dst = t
		}
	}
	if v := q.Get("after"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			writeProblem(w, r, http.StatusBadRequest, fmt.Sprintf("after must be a record number, got %q", v))
			return
		}
		f.AfterSeq = n
	}
	var err error
	if f.Limit, err = limitParam(r, 1000, 100000); err != nil {
		writeProblem(w, r, http.StatusBadRequest, err.Error())
		return
	}
	es, err := s.AuditTrail.AuditEvents(r.Context(), f)
	if err != nil {
		s.storeError(w, r, "audit trail", err)
		return
	}
	if es == nil {
		es = []iomt.AuditEvent{}
	}
	if f.Patient != "" {
		notePatients(r, f.Patient)
	}
	writeJSON(w, http.StatusOK, map[string]any{"events": es})
}

// fhirGate authenticates FHIR requests with the API's credentials and hands the FHIR server
// the principal and the policy's access; FHIR decides per resource, as the policy says.
func (s *Server) fhirGate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		pr, _, err := s.authenticate(r)
		if err != nil && !errors.Is(err, errNoCredentials) {
			s.refuseAuth(w, r, iomt.AuditEvent{Time: time.Now().UTC(), Tenant: iomt.DefaultTenant, Source: r.RemoteAddr, Resource: r.Method + " " + r.URL.Path}, err)
			return
		}
		if err == nil {
			r = r.WithContext(WithPrincipal(r.Context(), pr))
		}
		next.ServeHTTP(w, r)
	})
}

// clinicalAdmin serves an admin route whose answers hold patient data (the EHR export's dead
// letters) only to an admin who is also a clinician: the admin role alone reads no patient data.
func clinicalAdmin(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		pr := accessFrom(r.Context()).Principal
		if pr.Kind != policy.KindBootstrap && !pr.Has(iomt.RoleClinician) {
			writeProblemExt(w, r, Problem{Status: http.StatusForbidden, Code: "access-denied",
				Detail: "dead letters hold patients' observations: this needs an admin who is also a clinician"})
			return
		}
		next.ServeHTTP(w, r)
	})
}
