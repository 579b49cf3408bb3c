package api

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"log/slog"
	"net/http"
	"strings"
	"time"
)

// Principal is who is calling. Until user accounts exist the only principal is the admin.
type Principal struct {
	Subject string
	Role    string
}

type principalKey struct{}

// PrincipalFrom returns the authenticated caller of a request's context.
func PrincipalFrom(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(Principal)
	return p, ok
}

// bearer extracts a bearer token from the Authorization header.
func bearer(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || tok == "" {
		return "", false
	}
	return strings.TrimSpace(tok), true
}

// AdminAuthorizer checks a request's bearer token against the admin token in constant time;
// the FHIR API and other handlers mounted beside this one use it.
func AdminAuthorizer(token string) func(r *http.Request) (subject string, ok bool) {
	want := sha256.Sum256([]byte(token))
	return func(r *http.Request) (string, bool) {
		tok, ok := bearer(r)
		if !ok {
			return "", false
		}
		got := sha256.Sum256([]byte(tok))
		if subtle.ConstantTimeCompare(got[:], want[:]) != 1 {
			return "", false
		}
		return "admin", true
	}
}

// requireAdmin is the one place where API callers are authenticated.
func (s *Server) requireAdmin(next http.Handler) http.Handler {
	authorize := AdminAuthorizer(s.adminToken)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, ok := bearer(r); !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="iomt"`)
			writeProblem(w, r, http.StatusUnauthorized, "missing bearer token: send Authorization: Bearer <token>")
			return
		}
		subject, ok := authorize(r)
		if !ok {
			s.log.Warn("api token refused", "remote", r.RemoteAddr, "path", r.URL.Path)
			w.Header().Set("WWW-Authenticate", `Bearer realm="iomt", error="invalid_token"`)
			writeProblem(w, r, http.StatusUnauthorized, "invalid bearer token")
			return
		}
		ctx := context.WithValue(r.Context(), principalKey{}, Principal{Subject: subject, Role: "admin"})
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// audited records every read of patient data: who, what, which patient, and the outcome.
// The patient is the {id} of the path.
func (s *Server) audited(action string, next http.HandlerFunc) http.HandlerFunc {
	return s.auditWith(action, func(r *http.Request) string { return r.PathValue("id") }, next)
}

// auditWith is audited with the patient taken from the request by patient; requests about an
// alarm also record its {alarm} path value.
func (s *Server) auditWith(action string, patient func(*http.Request) string, next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		start := time.Now()
		note := &auditNote{}
		r = r.WithContext(context.WithValue(r.Context(), auditNoteKey{}, note))
		next(rec, r)
		p, _ := PrincipalFrom(r.Context())
		who := patient(r)
		if note.patient != "" {
			who = note.patient
		}
		attrs := []slog.Attr{
			slog.String("actor", p.Subject),
			slog.String("action", action),
			slog.String("patient", who),
			slog.String("path", r.URL.Path),
			slog.String("query", r.URL.RawQuery),
			slog.String("remote", r.RemoteAddr),
			slog.Int("status", rec.status),
			slog.Duration("took", time.Since(start)),
		}
		if id := r.PathValue("alarm"); id != "" {
			attrs = append(attrs, slog.String("alarm", id))
		}
		attrs = append(attrs, note.attrs...)
		s.audit.LogAttrs(r.Context(), slog.LevelInfo, "audit", attrs...)
	}
}

// auditNote is what a handler adds to its request's audit record: the patient, when only the
// handler knows it (one it created), and what a write changed.
type auditNote struct {
	patient string
	attrs   []slog.Attr
}

type auditNoteKey struct{}

// noteAudit adds to the audit record of r; patient, if not empty, names the patient. It does
// nothing for a request that is not audited.
func noteAudit(r *http.Request, patient string, attrs ...slog.Attr) {
	n, ok := r.Context().Value(auditNoteKey{}).(*auditNote)
	if !ok {
		return
	}
	if patient != "" {
		n.patient = patient
	}
	n.attrs = append(n.attrs, attrs...)
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
