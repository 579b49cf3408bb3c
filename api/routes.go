package api

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/iomt/iomt"
	"github.com/iomt/iomt/identity"
	"github.com/iomt/iomt/policy"
)

// Route is one endpoint of the API and the policy it is served under. Every handler is
// registered through a Route, so the route table is the whole API: the authorisation matrix
// test walks it, and a route without a Need is refused to everyone.
type Route struct {
	Pattern string
	Need    policy.Need
	// Action names the request in the audit trail; empty: not recorded (no patient data, no
	// change). Every route with a patient need, every list of patient data and every write
	// is recorded.
	Action string
	// Resource and Interaction are the SMART resource type and interaction that token scopes
	// are checked against ("Observation", "s").
	Resource, Interaction string
	// Patient finds the patient a patient need is about; default: the path's {id}.
	Patient func(*http.Request) (string, error)
	// Stream marks a long-lived response (Server-Sent Events): recorded when it opens and
	// when it closes, not buffered.
	Stream  bool
	Handler http.Handler
}

// Routes returns the route table.
func (s *Server) Routes() []Route { return s.table }

// handle registers a route behind authentication, the policy and the audit trail.
func (s *Server) handle(rt Route) {
	if rt.Patient == nil {
		rt.Patient = pathPatient
	}
	s.table = append(s.table, rt)
	s.mux.Handle(rt.Pattern, s.guard(rt))
}

func pathPatient(r *http.Request) (string, error) { return r.PathValue("id"), nil }

// Access is what the policy decided for a request, for handlers that filter lists.
type Access struct {
	Principal policy.Principal
	Scope     policy.PatientScope
	Emergency bool
	policy    *policy.Policy
}

// decide is the policy's answer for patient p's readings at need n: live streams of several
// patients ask it for each message, so a transfer or an emergency access takes effect at once.
func (a *Access) decide(p string, n policy.Need) policy.Decision {
	if a.Principal.Kind == policy.KindBootstrap {
		return policy.Decision{Allow: true}
	}
	if a.policy == nil {
		return policy.Decision{}
	}
	return a.policy.Decide(a.Principal, policy.Request{Need: n, Patient: p, Resource: "Observation", Interaction: "s"}, time.Now())
}

type accessKey struct{}

func accessFrom(ctx context.Context) *Access {
	a, _ := ctx.Value(accessKey{}).(*Access)
	if a == nil {
		return &Access{}
	}
	return a
}

// guard authenticates the caller, asks the policy, and records the request in the audit
// trail before any of its response leaves the process.
func (s *Server) guard(rt Route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		ev := iomt.AuditEvent{Time: start.UTC(), Tenant: iomt.DefaultTenant, Action: rt.Action, Source: r.RemoteAddr,
			Resource: r.Method + " " + r.URL.Path}
		if rt.Need == policy.Public || rt.Need == policy.Device {
			rt.Handler.ServeHTTP(w, r)
			return
		}
		pr, sess, err := s.authenticate(r)
		if err != nil {
			s.refuseAuth(w, r, ev, err)
			return
		}
		ev.Actor, ev.ActorName, ev.Tenant = pr.Actor(), pr.Name, pr.Tenant
		patient := ""
		if rt.Need.OnPatient() {
			if patient, err = rt.Patient(r); err != nil {
				switch {
				case errors.Is(err, iomt.ErrNotFound):
					writeProblem(w, r, http.StatusNotFound, err.Error())
					return
				case errors.Is(err, iomt.ErrInvalid):
					writeProblem(w, r, http.StatusBadRequest, strings.TrimPrefix(err.Error(), iomt.ErrInvalid.Error()+": "))
					return
				}
				s.storeError(w, r, "request", err)
				return
			}
		}
		// No search parameters: REST handlers do not filter by them, so a scope restricted to
		// some (category=vital-signs) permits FHIR searches only, where they are applied.
		s.Policy.Learn(r.Context(), s.Store.Patient, patient)
		q := policy.Request{Need: rt.Need, Patient: patient, Resource: rt.Resource, Interaction: rt.Interaction}
		d := s.Policy.Decide(pr, q, start)
		if patient != "" {
			ev.Patients = []string{patient}
		}
		if !d.Allow {
			ev.Outcome, ev.Status, ev.Reason = iomt.OutcomeDenied, d.Status, d.Reason
			if ev.Action == "" {
				ev.Action = "request"
			}
			if err := s.record(r.Context(), ev); err != nil {
				s.auditUnavailable(w, r, err)
				return
			}
			writeProblemExt(w, r, Problem{Status: d.Status, Detail: d.Reason, Code: "access-denied"})
			return
		}
		if d.Emergency {
			ev.Purpose = "ETREAT"
		}
		acc := &Access{Principal: pr, Emergency: d.Emergency, policy: s.Policy}
		if rt.Need == policy.PatientList {
			acc.Scope = s.Policy.Patients(pr, start)
		}
		ctx := context.WithValue(WithPrincipal(r.Context(), pr), accessKey{}, acc)
		if sess != nil {
			ctx = context.WithValue(ctx, sessionKey{}, sess)
		}
		note := &auditNote{}
		ctx = context.WithValue(ctx, auditNoteKey{}, note)
		r = r.WithContext(ctx)
		if rt.Action == "" {
			rt.Handler.ServeHTTP(w, r)
			return
		}
		if rt.Stream {
			if ended := s.credentialEnded(r, sess); ended != nil {
				var stop context.CancelFunc
				r, stop = s.endWith(r, ended)
				defer stop()
			}
			s.serveStreamAudited(w, r, rt, ev, note)
			return
		}
		buf := &bufferedResponse{header: http.Header{}, status: http.StatusOK}
		rt.Handler.ServeHTTP(buf, r)
		ev.Status = buf.status
		ev.Outcome = outcomeOf(buf.status)
		note.apply(&ev)
		if err := s.record(r.Context(), ev); err != nil {
			s.auditUnavailable(w, r, err)
			return
		}
		buf.flushTo(w)
	})
}

// credentialEnded returns how to tell that the credential a stream was opened with has ended:
// its session (signed out on any node, idle, past its lifetime, its user disabled), or its
// bearer token (an API token revoked or expired, a provider's token expired, the account
// disabled); nil for the bootstrap token, which does not end. Checking a session is not a use
// of it, so an open stream does not keep an idle session open.
func (s *Server) credentialEnded(r *http.Request, sess *iomt.Session) func(context.Context) bool {
	if sess != nil && s.Identity != nil {
		id := sess.ID
		return func(ctx context.Context) bool {
			err := s.Identity.Alive(ctx, id)
			return errors.Is(err, identity.ErrExpired) || errors.Is(err, identity.ErrDisabled)
		}
	}
	tok, ok := bearer(r)
	if !ok {
		return nil
	}
	if pr, _ := PrincipalFrom(r.Context()); pr.Kind == policy.KindBootstrap {
		return nil
	}
	return func(ctx context.Context) bool {
		_, err := s.authenticateBearer(ctx, tok)
		var ae *authError
		return errors.As(err, &ae) // a store that cannot answer now is not an end
	}
}

// endWith returns r with a context that ends when ended says the stream's credential has: a
// stream would otherwise go on carrying patient data to someone whose access is over. It is
// checked as often as a node trusts what it has read of a session or token (identity's
// CacheTTL, 5 s by default).
func (s *Server) endWith(r *http.Request, ended func(context.Context) bool) (*http.Request, context.CancelFunc) {
	ctx, cancel := context.WithCancel(r.Context())
	every := 5 * time.Second
	if s.Identity != nil {
		every = max(s.Identity.Config().CacheTTL, 100*time.Millisecond)
	}
	go func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if ended(ctx) {
					cancel()
					return
				}
			}
		}
	}()
	return r.WithContext(ctx), cancel
}

// serveStreamAudited records a stream when it opens — durably, before the first byte, so a
// stream whose node is killed still has its record — and again when it closes.
func (s *Server) serveStreamAudited(w http.ResponseWriter, r *http.Request, rt Route, ev iomt.AuditEvent, note *auditNote) {
	open := ev
	open.Action, open.Outcome = rt.Action+".open", iomt.OutcomeSuccess
	if err := s.record(r.Context(), open); err != nil {
		s.auditUnavailable(w, r, err)
		return
	}
	rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
	start := time.Now()
	rt.Handler.ServeHTTP(rec, r)
	cl := ev
	cl.Time = time.Now().UTC()
	cl.Action, cl.Status, cl.Outcome = rt.Action+".close", rec.status, outcomeOf(rec.status)
	note.apply(&cl)
	cl.Detail = mergeDetail(cl.Detail, map[string]string{"duration": time.Since(start).Round(time.Millisecond).String()})
	// The request's context has ended; record detaches from it.
	if err := s.record(r.Context(), cl); err != nil {
		s.log.Error("audit: stream close not recorded", "err", err)
	}
}

func mergeDetail(a, b map[string]string) map[string]string {
	if a == nil {
		a = map[string]string{}
	}
	for k, v := range b {
		a[k] = v
	}
	return a
}

func outcomeOf(status int) string {
	switch {
	case status < 400:
		return iomt.OutcomeSuccess
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return iomt.OutcomeDenied
	}
	return iomt.OutcomeFailure
}

// refuseAuth answers a request whose credentials were missing or refused; refused
// credentials are recorded and counted against the source.
func (s *Server) refuseAuth(w http.ResponseWriter, r *http.Request, ev iomt.AuditEvent, err error) {
	if errors.Is(err, errNoCredentials) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="iomt"`)
		writeProblem(w, r, http.StatusUnauthorized, "sign in, or send Authorization: Bearer <token>")
		return
	}
	var ae *authError
	if !errors.As(err, &ae) {
		s.storeError(w, r, "authentication", err)
		return
	}
	// A source that keeps failing is refused, but only its failing credentials: a valid
	// session or token from the same address (a hospital's NAT) still works.
	if ae.status == http.StatusUnauthorized && s.Identity != nil && s.Identity.Throttled(r.RemoteAddr) {
		w.Header().Set("Retry-After", strconv.Itoa(int(s.Identity.Config().SourceWindow.Seconds())))
		writeProblem(w, r, http.StatusTooManyRequests, "too many failed attempts from this address; try again later")
		return
	}
	if ae.status == http.StatusUnauthorized && s.Identity != nil && !errors.As(err, new(sessionEnded)) {
		s.Identity.Failed(r.RemoteAddr)
	}
	s.log.Warn("api credentials refused", "remote", r.RemoteAddr, "path", r.URL.Path, "reason", ae.reason)
	ev.Actor, ev.Action, ev.Outcome, ev.Status, ev.Reason = "anonymous", "authenticate", iomt.OutcomeDenied, ae.status, ae.reason
	if err := s.record(r.Context(), ev); err != nil {
		s.auditUnavailable(w, r, err)
		return
	}
	if ae.status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="iomt", error="invalid_token"`)
	}
	writeProblem(w, r, ae.status, ae.reason)
}

// record writes one audit record; without an audit trail configured it goes to the log. The
// record is written even when the caller has gone (a client that hung up, a body cut off):
// what was asked of the node is recorded whatever became of the answer.
func (s *Server) record(ctx context.Context, ev iomt.AuditEvent) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if s.Auditor == nil {
		s.audit.LogAttrs(ctx, slog.LevelInfo, "audit", slog.String("actor", ev.Actor), slog.String("action", ev.Action),
			slog.Any("patients", ev.Patients), slog.String("outcome", ev.Outcome), slog.Int("status", ev.Status),
			slog.String("resource", ev.Resource), slog.String("source", ev.Source), slog.String("reason", ev.Reason))
		return nil
	}
	if err := s.Auditor.Record(ctx, ev); err != nil {
		return fmt.Errorf("audit %s: %w", ev.Action, err)
	}
	return nil
}

// auditUnavailable refuses to serve what cannot be recorded: no patient data leaves without
// its audit record.
func (s *Server) auditUnavailable(w http.ResponseWriter, r *http.Request, err error) {
	s.log.Error("audit trail unavailable: request refused", "path", r.URL.Path, "err", err)
	w.Header().Set("Retry-After", "2")
	writeProblem(w, r, http.StatusServiceUnavailable, "the audit trail is unavailable, so nothing is served; try again shortly")
}

// auditNote is what a handler adds to its request's audit record: the patients it returned
// or created, and what a write changed.
type auditNote struct {
	patients []string
	detail   map[string]string
	reason   string
	purpose  string
}

func (n *auditNote) apply(ev *iomt.AuditEvent) {
	if len(n.patients) > 0 {
		seen := map[string]bool{}
		for _, p := range ev.Patients {
			seen[p] = true
		}
		for _, p := range n.patients {
			if !seen[p] {
				ev.Patients = append(ev.Patients, p)
				seen[p] = true
			}
		}
	}
	if len(n.detail) > 0 {
		ev.Detail = mergeDetail(ev.Detail, n.detail)
	}
	if n.reason != "" {
		ev.Reason = n.reason
	}
	if n.purpose != "" {
		ev.Purpose = n.purpose
	}
}

type auditNoteKey struct{}

type sessionKey struct{}

func noteOf(r *http.Request) *auditNote {
	n, _ := r.Context().Value(auditNoteKey{}).(*auditNote)
	if n == nil {
		return &auditNote{}
	}
	return n
}

// notePatients names patients a handler returned or created in its audit record.
func notePatients(r *http.Request, ids ...string) {
	n := noteOf(r)
	n.patients = append(n.patients, ids...)
}

// noteDetail adds key/value details (what changed) to the audit record.
func noteDetail(r *http.Request, kv ...string) {
	n := noteOf(r)
	if n.detail == nil {
		n.detail = map[string]string{}
	}
	for i := 0; i+1 < len(kv); i += 2 {
		n.detail[kv[i]] = kv[i+1]
	}
}

// bufferedResponse holds a response until its audit record is durable.
type bufferedResponse struct {
	header http.Header
	status int
	wrote  bool
	body   bytes.Buffer
}

func (b *bufferedResponse) Header() http.Header { return b.header }

func (b *bufferedResponse) WriteHeader(code int) {
	if !b.wrote {
		b.status, b.wrote = code, true
	}
}

func (b *bufferedResponse) Write(p []byte) (int, error) {
	b.wrote = true
	return b.body.Write(p)
}

func (b *bufferedResponse) flushTo(w http.ResponseWriter) {
	for k, v := range b.header {
		w.Header()[k] = v
	}
	w.WriteHeader(b.status)
	_, _ = io.Copy(w, &b.body)
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

// Flush lets live streams through the recorder.
func (r *statusRecorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// noteAudit names a patient (if not empty) and adds details to the request's audit record.
func noteAudit(r *http.Request, patient string, attrs ...slog.Attr) {
	if patient != "" {
		notePatients(r, patient)
	}
	for _, a := range attrs {
		noteDetail(r, a.Key, a.Value.String())
	}
}

// recordStreamPatient records that a multi-patient stream is about to carry a patient's data,
// under emergency access if that is what allowed it.
func (s *Server) recordStreamPatient(r *http.Request, patient string, emergency bool) error {
	pr, _ := PrincipalFrom(r.Context())
	ev := iomt.AuditEvent{Time: time.Now().UTC(), Tenant: pr.Tenant, Actor: pr.Actor(), ActorName: pr.Name, Action: "stream.patient",
		Outcome: iomt.OutcomeSuccess, Patients: []string{patient}, Source: r.RemoteAddr, Resource: r.Method + " " + r.URL.Path}
	if emergency {
		ev.Purpose = "ETREAT"
	}
	return s.record(r.Context(), ev)
}
