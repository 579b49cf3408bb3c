// Package policy decides every request: may this principal do this to this patient or
// resource? It is the one place where roles, care teams, break-the-glass and SMART scopes
// meet. Decisions are made from an in-memory index of teams, patient locations and emergency
// accesses, so the check on the hot path makes no store round trip; Reload rebuilds the
// index from the store (at start, after a change, and periodically for changes made on other
// nodes).
package policy

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"time"

	"github.com/iomt/iomt"
)

// Need is what a request needs of its caller. Every route of the API declares one.
type Need int

// Needs, from least to most demanding of the caller's relationship with a patient.
const (
	needNone Need = iota // the zero value: a route that forgot its policy; always refused
	// Public needs nothing (health, the OpenAPI document, the sign-in page).
	Public
	// Device needs a device credential, checked by ingest itself.
	Device
	// SignedIn needs any signed-in principal (the caller's own profile, sign-out, the code
	// catalog).
	SignedIn
	// Admin needs the admin role: users, teams, devices, credentials, alarm rules and
	// routing, configuration. Never patient data.
	Admin
	// Audit needs the auditor role: the audit trail and the list of emergency accesses.
	Audit
	// PatientList is a list or search of patients' data: allowed to clinicians, carers and
	// service accounts, filtered to the caller's patients (Scope).
	PatientList
	// PatientSummary reads a patient's summary (record, latest vitals, alarms, CGM alerts):
	// clinicians and service accounts of the patient's teams, and carers it is shared with.
	PatientSummary
	// PatientRead reads a patient's full record (observations, waveforms, live streams,
	// reports): clinicians and service accounts of the patient's teams.
	PatientRead
	// PatientWrite acts on a patient (charting, limits, alarm acknowledgement, silences,
	// admission): clinicians and service accounts of the patient's teams.
	PatientWrite
	// PatientCreate registers (admits) a patient: clinicians and service accounts; the new
	// patient must be in one of their teams' care.
	PatientCreate
	// BreakGlass opens a patient outside the caller's teams for a stated reason: clinicians.
	BreakGlass
)

var needNames = map[Need]string{
	needNone: "none", Public: "public", Device: "device", SignedIn: "signed-in", Admin: "admin", Audit: "audit",
	PatientList: "patient-list", PatientSummary: "patient-summary", PatientRead: "patient-read",
	PatientWrite: "patient-write", PatientCreate: "patient-create", BreakGlass: "break-glass",
}

func (n Need) String() string {
	if s, ok := needNames[n]; ok {
		return s
	}
	return fmt.Sprintf("need(%d)", int(n))
}

// OnPatient reports whether the need is about one patient's data.
func (n Need) OnPatient() bool {
	return n == PatientSummary || n == PatientRead || n == PatientWrite || n == BreakGlass
}

// Kinds of principal.
const (
	KindUser      = "user"      // a person signed in with a session, or with a provider's JWT
	KindToken     = "token"     // an API token of a service account
	KindBootstrap = "bootstrap" // the operator's bootstrap token: every permission in its tenant
)

// Principal is who is calling, as authentication established it.
type Principal struct {
	Kind   string
	ID     string // user ID; for a token, the service account's user ID
	Tenant string
	Name   string // login or display name, for audit records
	Roles  []iomt.Role
	// Scopes, if not nil, narrow what the principal may do (SMART on FHIR v2); nil means the
	// roles alone decide (a browser session).
	Scopes []Scope
	// TokenID names the API token or session used, for audit records.
	TokenID string
}

// Actor is how audit records name the principal.
func (p Principal) Actor() string {
	switch p.Kind {
	case KindToken:
		return "token:" + p.TokenID
	case KindBootstrap:
		return "bootstrap"
	case "":
		return "anonymous"
	}
	return "user:" + p.ID
}

// Has reports whether the principal holds role r.
func (p Principal) Has(r iomt.Role) bool { return slices.Contains(p.Roles, r) }

// Request is what is being asked: a need, and for patient needs the patient; Resource and
// Interaction are the SMART resource type and interaction ("r", "s", "c", "u", "d") that
// scopes are checked against.
type Request struct {
	Need        Need
	Patient     string
	Resource    string
	Interaction string
	// Query holds the request's search parameters, for scopes that restrict them.
	Query url.Values
}

// Decision is the policy's answer.
type Decision struct {
	Allow bool
	// Status is the HTTP status of a refusal: 401 without a principal, 403 when the caller may
	// know the patient exists (a clinician of the same tenant, who could break the glass),
	// 404 otherwise, so that no one learns of patients they could never open.
	Status int
	Reason string
	// Emergency is set when only a break-the-glass access allowed it (purpose of use ETREAT).
	Emergency bool
}

type patientInfo struct {
	tenant   string
	location string
}

type grant struct {
	patient string
	until   time.Time
}

// Policy decides requests. It is safe for concurrent use.
type Policy struct {
	mu       sync.RWMutex
	teams    map[string][]iomt.CareTeam // by member
	patients map[string]patientInfo
	glass    map[string][]grant // by user
}

// New returns an empty policy; Reload fills it.
func New() *Policy {
	return &Policy{teams: map[string][]iomt.CareTeam{}, patients: map[string]patientInfo{}, glass: map[string][]grant{}}
}

// Source is what Reload reads: the registry's patients, the care teams and the emergency
// accesses in force.
type Source interface {
	Patients(ctx context.Context, f iomt.PatientFilter) ([]iomt.Patient, error)
	CareTeams(ctx context.Context, f iomt.CareTeamFilter) ([]iomt.CareTeam, error)
	BreakGlasses(ctx context.Context, f iomt.BreakGlassFilter) ([]iomt.BreakGlass, error)
}

// Reload rebuilds the index from src.
func (p *Policy) Reload(ctx context.Context, src Source, now time.Time) error {
	ps, err := src.Patients(ctx, iomt.PatientFilter{})
	if err != nil {
		return fmt.Errorf("policy: load patients: %w", err)
	}
	ts, err := src.CareTeams(ctx, iomt.CareTeamFilter{})
	if err != nil {
		return fmt.Errorf("policy: load care teams: %w", err)
	}
	bs, err := src.BreakGlasses(ctx, iomt.BreakGlassFilter{ActiveAt: now})
	if err != nil {
		return fmt.Errorf("policy: load emergency accesses: %w", err)
	}
	patients := make(map[string]patientInfo, len(ps))
	for _, pt := range ps {
		patients[pt.ID] = patientInfo{tenant: pt.Tenant, location: pt.Location}
	}
	teams := map[string][]iomt.CareTeam{}
	for _, t := range ts {
		for _, m := range t.Members {
			teams[m] = append(teams[m], t)
		}
	}
	glass := map[string][]grant{}
	for _, b := range bs {
		glass[b.User] = append(glass[b.User], grant{patient: b.Patient, until: b.Until})
	}
	p.mu.Lock()
	p.patients, p.teams, p.glass = patients, teams, glass
	p.mu.Unlock()
	return nil
}

// NotePatient adds or moves one patient in the index, so that a patient this node just
// created or transferred is known before the next Reload.
func (p *Policy) NotePatient(pt iomt.Patient) {
	p.mu.Lock()
	p.patients[pt.ID] = patientInfo{tenant: pt.Tenant, location: pt.Location}
	p.mu.Unlock()
}

// Knows reports whether the index holds the patient. A patient registered on another node
// since the last Reload is not known yet: callers look it up in the store and NotePatient it,
// so the miss costs one read, once.
func (p *Policy) Knows(patient string) bool {
	p.mu.RLock()
	defer p.mu.RUnlock()
	_, ok := p.patients[patient]
	return ok
}

// Learn makes sure the index knows a patient a request names: one registered on another node
// since the last Reload is read once with get and noted (a patient that cannot be read stays
// unknown, and the policy refuses it).
func (p *Policy) Learn(ctx context.Context, get func(context.Context, string) (iomt.Patient, error), patient string) {
	if patient == "" || p.Knows(patient) {
		return
	}
	if pt, err := get(ctx, patient); err == nil {
		p.NotePatient(pt)
	}
}

// NoteCareTeam puts one team as it now is into the index (a patient admitted into it), so
// this node sees the change before the next Reload.
func (p *Policy) NoteCareTeam(t iomt.CareTeam) {
	p.mu.Lock()
	defer p.mu.Unlock()
	teams := make(map[string][]iomt.CareTeam, len(p.teams))
	for m, ts := range p.teams {
		for _, o := range ts {
			if o.ID != t.ID {
				teams[m] = append(teams[m], o)
			}
		}
	}
	for _, m := range t.Members {
		teams[m] = append(teams[m], t)
	}
	p.teams = teams
}

// NoteBreakGlass adds an emergency access to the index.
func (p *Policy) NoteBreakGlass(b iomt.BreakGlass) {
	p.mu.Lock()
	p.glass[b.User] = append(p.glass[b.User], grant{patient: b.Patient, until: b.Until})
	p.mu.Unlock()
}

// clinical reports whether the principal's roles may hold patient data at all, and which
// needs: carers only summaries and lists.
func clinical(pr Principal, n Need) bool {
	switch {
	case pr.Kind == KindBootstrap:
		return true
	case pr.Has(iomt.RoleClinician), pr.Has(iomt.RoleService) && n != BreakGlass:
		return true
	case pr.Has(iomt.RoleCarer):
		return n == PatientList || n == PatientSummary
	}
	return false
}

// Decide answers one request.
func (p *Policy) Decide(pr Principal, q Request, now time.Time) Decision {
	if pr.Kind == "" {
		return Decision{Status: http.StatusUnauthorized, Reason: "sign in first"}
	}
	switch q.Need {
	case Public, Device:
		return Decision{Allow: true}
	case SignedIn:
		return Decision{Allow: true}
	case Admin:
		if pr.Has(iomt.RoleAdmin) || pr.Kind == KindBootstrap {
			return p.scoped(pr, q)
		}
		return Decision{Status: http.StatusForbidden, Reason: "this needs the admin role"}
	case Audit:
		if pr.Has(iomt.RoleAuditor) || pr.Kind == KindBootstrap {
			return p.scoped(pr, q)
		}
		return Decision{Status: http.StatusForbidden, Reason: "this needs the auditor role"}
	case PatientList, PatientCreate:
		if !clinical(pr, q.Need) {
			return Decision{Status: http.StatusForbidden, Reason: "your roles give no access to patient data"}
		}
		return p.scoped(pr, q)
	case PatientSummary, PatientRead, PatientWrite, BreakGlass:
		return p.onPatient(pr, q, now)
	}
	return Decision{Status: http.StatusForbidden, Reason: "no policy covers this request"}
}

func (p *Policy) onPatient(pr Principal, q Request, now time.Time) Decision {
	p.mu.RLock()
	info, known := p.patients[q.Patient]
	p.mu.RUnlock()
	if !known || info.tenant != pr.Tenant {
		return Decision{Status: http.StatusNotFound, Reason: fmt.Sprintf("patient %q not found", q.Patient)}
	}
	if !clinical(pr, q.Need) {
		if pr.Has(iomt.RoleCarer) {
			return Decision{Status: http.StatusNotFound, Reason: fmt.Sprintf("patient %q not found", q.Patient)}
		}
		return Decision{Status: http.StatusForbidden, Reason: "your roles give no access to patient data"}
	}
	if q.Need == BreakGlass {
		return p.scoped(pr, q) // any patient of the tenant, for a stated reason
	}
	if pr.Kind == KindBootstrap || p.covers(pr.ID, q.Patient, info) {
		return p.scoped(pr, q)
	}
	if pr.Has(iomt.RoleClinician) && p.glassOpen(pr.ID, q.Patient, now) {
		d := p.scoped(pr, q)
		d.Emergency = d.Allow
		return d
	}
	if pr.Has(iomt.RoleClinician) {
		return Decision{Status: http.StatusForbidden, Reason: fmt.Sprintf("patient %q is not in the care of your teams; in an emergency, open it with POST /api/v1/patients/%s/break-glass and a reason", q.Patient, q.Patient)}
	}
	return Decision{Status: http.StatusNotFound, Reason: fmt.Sprintf("patient %q not found", q.Patient)}
}

// covers reports whether one of the user's teams covers the patient.
func (p *Policy) covers(user, patient string, info patientInfo) bool {
	p.mu.RLock()
	defer p.mu.RUnlock()
	for _, t := range p.teams[user] {
		if t.Tenant != info.tenant {
			continue
		}
		if slices.Contains(t.Patients, patient) || t.CoversLocation(info.location) {
			return true
		}
	}
	return false
}

func (p *Policy) glassOpen(user, patient string, now time.Time) bool {
	p.mu.RLock()
	defer p.mu.RUnlock()
	for _, g := range p.glass[user] {
		if g.patient == patient && now.Before(g.until) {
			return true
		}
	}
	return false
}

// scoped applies the principal's SMART scopes, if any, to an allowed request.
func (p *Policy) scoped(pr Principal, q Request) Decision {
	if pr.Scopes == nil {
		return Decision{Allow: true}
	}
	if q.Resource == "" {
		// A scoped token grants only what its scopes name: nothing that has no resource type
		// (accounts, teams, rules), whatever the roles of the account behind it.
		return Decision{Status: http.StatusForbidden, Reason: "a scoped token cannot do this: it is not covered by SMART resource scopes"}
	}
	for _, s := range pr.Scopes {
		if s.PermitsQuery(q.Resource, q.Interaction, q.Query) {
			return Decision{Allow: true}
		}
	}
	return Decision{Status: http.StatusForbidden, Reason: fmt.Sprintf("the token's scopes do not permit %s.%s", q.Resource, q.Interaction)}
}

// PatientScope is the set of patients a principal may see in lists: All for the bootstrap
// principal, else the patients of their teams and emergency accesses.
type PatientScope struct {
	All      bool
	Patients map[string]bool
}

// Has reports whether the scope includes the patient.
func (s PatientScope) Has(patient string) bool { return s.All || s.Patients[patient] }

// Patients returns the patients the principal may see in lists and searches.
func (p *Policy) Patients(pr Principal, now time.Time) PatientScope {
	if pr.Kind == KindBootstrap {
		return PatientScope{All: true}
	}
	out := PatientScope{Patients: map[string]bool{}}
	if !clinical(pr, PatientList) {
		return out
	}
	p.mu.RLock()
	defer p.mu.RUnlock()
	for _, t := range p.teams[pr.ID] {
		if t.Tenant != pr.Tenant {
			continue
		}
		for _, id := range t.Patients {
			if info, ok := p.patients[id]; ok && info.tenant == pr.Tenant {
				out.Patients[id] = true
			}
		}
		if len(t.Locations) == 0 {
			continue
		}
		for id, info := range p.patients {
			if info.tenant == pr.Tenant && t.CoversLocation(info.location) {
				out.Patients[id] = true
			}
		}
	}
	if pr.Has(iomt.RoleClinician) {
		for _, g := range p.glass[pr.ID] {
			if now.Before(g.until) {
				out.Patients[g.patient] = true
			}
		}
	}
	return out
}
