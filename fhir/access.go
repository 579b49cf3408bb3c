package fhir

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"time"

	"github.com/iomt/iomt"
	"github.com/iomt/iomt/policy"
)

// Auditor records audit events: the node's tamper-evident trail. Record returns once the
// event is durable; the response waits for it.
type Auditor interface {
	Record(ctx context.Context, e iomt.AuditEvent) error
}

// logAuditor logs audit events, for a server without an audit trail (tests of other packages).
type logAuditor struct{ log *slog.Logger }

func (a logAuditor) Record(ctx context.Context, e iomt.AuditEvent) error {
	a.log.LogAttrs(ctx, slog.LevelInfo, "audit",
		slog.String("actor", e.Actor), slog.String("actorName", e.ActorName), slog.String("action", e.Action),
		slog.String("outcome", e.Outcome), slog.Int("status", e.Status), slog.Any("patients", e.Patients),
		slog.String("resource", e.Resource), slog.String("source", e.Source), slog.String("reason", e.Reason),
		slog.String("purpose", e.Purpose), slog.Any("detail", e.Detail))
	return nil
}

// call is one authenticated request: who asks, what the policy said, and what the audit
// record will name.
type call struct {
	pr     policy.Principal
	now    time.Time
	action string
	query  string // the search parameters applied, for the audit record
	// patients concerned: asked for, written, or returned by a search, in order.
	patients []string
	seen     map[string]bool
	// checked holds the patients whose emergency status is known.
	checked   map[string]bool
	denied    bool
	emergency bool
	reason    string
	status    int // of the error answered, if any
}

type callKey struct{}

// callOf returns the request's call; outside ServeHTTP, an anonymous one that the policy
// refuses everything.
func callOf(r *http.Request) *call {
	if c, ok := r.Context().Value(callKey{}).(*call); ok {
		return c
	}
	return &call{}
}

func (c *call) act(action string) { c.action = action }

// note names a patient in the audit record.
func (c *call) note(patient string) {
	if patient == "" || c.seen[patient] {
		return
	}
	if c.seen == nil {
		c.seen = map[string]bool{}
	}
	c.seen[patient] = true
	c.patients = append(c.patients, patient)
}

func (c *call) failed(status int, msg string) {
	c.status = status
	if c.reason == "" {
		c.reason = msg
	}
}

func (c *call) tenant() string { return c.pr.Tenant }

// admin reports whether the principal manages devices.
func (c *call) admin() bool { return c.pr.Kind == policy.KindBootstrap || c.pr.Has(iomt.RoleAdmin) }

// apply takes a decision: a refusal marks the call denied and becomes the error answered.
// hidden, if not nil, answers a 404 refusal, so that a resource the caller may not see looks
// exactly like one that does not exist.
func (c *call) apply(d policy.Decision, hidden error) error {
	if d.Allow {
		c.emergency = c.emergency || d.Emergency
		return nil
	}
	c.denied, c.reason = true, d.Reason
	switch d.Status {
	case http.StatusNotFound:
		if hidden != nil {
			return hidden
		}
		return errorf(http.StatusNotFound, "not-found", "%s", d.Reason)
	case http.StatusUnauthorized:
		return errorf(http.StatusUnauthorized, "login", "%s", d.Reason)
	}
	return errorf(http.StatusForbidden, "forbidden", "%s", d.Reason)
}

// require asks the policy about q, naming q's patient in the audit record whatever the answer.
func (s *server) require(r *http.Request, q policy.Request, hidden error) error {
	c := callOf(r)
	s.Policy.Learn(r.Context(), s.Store.Patient, q.Patient)
	c.note(q.Patient)
	return c.apply(s.Policy.Decide(c.pr, q, c.now), hidden)
}

// returned names a patient whose data a search returns, and learns whether only an
// emergency access shows it to the caller (purpose of use ETREAT).
func (s *server) returned(r *http.Request, patient string) {
	c := callOf(r)
	c.note(patient)
	if patient == "" || c.checked[patient] {
		return
	}
	if c.checked == nil {
		c.checked = map[string]bool{}
	}
	c.checked[patient] = true
	if d := s.Policy.Decide(c.pr, policy.Request{Need: policy.PatientSummary, Patient: patient, Resource: "Patient", Interaction: "r"}, c.now); d.Allow && d.Emergency {
		c.emergency = true
	}
}

// deviceAccess decides a read of a device (or of its metrics, resource DeviceMetric): a device
// bound to a patient is readable by whoever may read the patient's summary, and every device
// by admins.
func (s *server) deviceAccess(r *http.Request, d iomt.Device, resource, id string) error {
	c := callOf(r)
	c.note(d.Patient)
	hidden := notFound(resource, id)
	if c.admin() || d.Patient == "" {
		if ad := s.Policy.Decide(c.pr, policy.Request{Need: policy.Admin, Resource: resource, Interaction: "r"}, c.now); ad.Allow || d.Patient == "" {
			return c.apply(ad, hidden)
		}
	}
	return c.apply(s.Policy.Decide(c.pr, policy.Request{Need: policy.PatientSummary, Patient: d.Patient, Resource: resource, Interaction: "r"}, c.now), hidden)
}

// deviceFilter decides a search of devices (or metrics) and returns which devices it may
// return: all of the tenant's for admins, else those bound to the caller's patients.
func (s *server) deviceFilter(r *http.Request, resource string, q url.Values) (func(iomt.Device) bool, error) {
	c := callOf(r)
	var refusal policy.Decision
	if c.admin() {
		refusal = s.Policy.Decide(c.pr, policy.Request{Need: policy.Admin, Resource: resource, Interaction: "s", Query: q}, c.now)
		if refusal.Allow {
			return func(iomt.Device) bool { return true }, nil
		}
	}
	d := s.Policy.Decide(c.pr, policy.Request{Need: policy.PatientList, Resource: resource, Interaction: "s", Query: q}, c.now)
	if !d.Allow && c.admin() {
		d = refusal // the admin's refusal says more (a scope) than "no patient data"
	}
	if err := c.apply(d, nil); err != nil {
		return nil, err
	}
	scope := s.Policy.Patients(c.pr, c.now)
	return func(d iomt.Device) bool { return d.Patient != "" && scope.Has(d.Patient) }, nil
}

// patientScope decides a search of patients' data without a patient (resource, interaction
// "s") and returns the patients it may return.
func (s *server) patientScope(r *http.Request, resource string, q url.Values) (policy.PatientScope, error) {
	c := callOf(r)
	if err := c.apply(s.Policy.Decide(c.pr, policy.Request{Need: policy.PatientList, Resource: resource, Interaction: "s", Query: q}, c.now), nil); err != nil {
		return policy.PatientScope{}, err
	}
	return s.Policy.Patients(c.pr, c.now), nil
}

// auditEvent is the record of one request.
func (s *server) auditEvent(r *http.Request, c *call, status int) iomt.AuditEvent {
	if c.status != 0 {
		status = c.status // 499: the client went away, nothing was sent
	}
	e := iomt.AuditEvent{Time: s.Now(), Tenant: c.pr.Tenant, Actor: c.pr.Actor(), ActorName: c.pr.Name,
		Action: c.action, Outcome: iomt.OutcomeSuccess, Status: status, Patients: slices.Clip(c.patients),
		Resource: r.URL.Path, Source: r.RemoteAddr, Reason: c.reason}
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		e.Source = host
	}
	switch {
	case c.denied:
		e.Outcome = iomt.OutcomeDenied
	case status >= 400:
		e.Outcome = iomt.OutcomeFailure
	default:
		e.Reason = ""
	}
	if c.emergency {
		e.Purpose = "ETREAT"
	}
	q := c.query
	if q == "" {
		q = r.URL.RawQuery
	}
	e.Detail = map[string]string{"method": r.Method}
	if q != "" {
		e.Detail["query"] = q
	}
	return e
}

// heldResponse holds a response until the request is audited.
type heldResponse struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (h *heldResponse) Header() http.Header { return h.header }

func (h *heldResponse) WriteHeader(code int) {
	if h.status == 0 {
		h.status = code
	}
}

func (h *heldResponse) Write(b []byte) (int, error) {
	if h.status == 0 {
		h.status = http.StatusOK
	}
	return h.body.Write(b)
}

func (h *heldResponse) code() int {
	if h.status == 0 {
		return http.StatusOK
	}
	return h.status
}

func (h *heldResponse) reset() {
	h.header, h.status = http.Header{}, 0
	h.body.Reset()
}

func (h *heldResponse) flush(w http.ResponseWriter) {
	for k, v := range h.header {
		w.Header()[k] = v
	}
	if h.status == 0 && h.body.Len() == 0 {
		return // nothing was answered (a cancelled request)
	}
	w.WriteHeader(h.code())
	_, _ = w.Write(h.body.Bytes())
}

// admittingTeam is the care team a patient the caller creates comes into: a FHIR Patient
// names no ward, so it is the caller's one team (or none for a team that covers the whole
// tenant, and for the bootstrap principal); a caller of several teams creates patients
// through the REST API, which names the team, so that nobody creates a patient they then
// cannot see.
func (s *server) admittingTeam(r *http.Request) (*iomt.CareTeam, error) {
	c := callOf(r)
	if c.pr.Kind == policy.KindBootstrap {
		return nil, nil
	}
	ts, err := s.Store.CareTeams(r.Context(), iomt.CareTeamFilter{Tenant: c.tenant(), Member: c.pr.ID})
	if err != nil {
		return nil, fmt.Errorf("fhir: care teams: %w", err)
	}
	for _, t := range ts {
		if t.CoversAll() {
			return nil, nil
		}
	}
	if len(ts) != 1 {
		return nil, errorf(http.StatusUnprocessableEntity, "processing",
			"a new patient must come into the care of one of your teams, and you are in %d: create the patient with POST /api/v1/patients naming \"team\"", len(ts))
	}
	return &ts[0], nil
}

// admit adds a new patient to the team admittingTeam chose (after the patient exists, so a
// team never lists a patient that does not).
func (s *server) admit(r *http.Request, t *iomt.CareTeam, p iomt.Patient) error {
	if t == nil {
		return nil
	}
	t.Patients, t.UpdatedAt = append(t.Patients, p.ID), p.CreatedAt
	if err := s.Store.SaveCareTeam(r.Context(), *t); err != nil {
		return fmt.Errorf("fhir: add the patient to team %s: %w", t.ID, err)
	}
	s.Policy.NoteCareTeam(*t)
	return nil
}
