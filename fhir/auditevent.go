package fhir

import (
	"context"
	"fmt"
	"maps"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/iomt/iomt"
)

// The audit trail as FHIR R4 AuditEvents, in the shapes of IHE Basic Audit Log Patterns
// (BALP): an access to patient data is type DICOM 110110 "Patient Record" with an entity per
// patient (Patient/<id>, type 1 Person, role 1 Patient); other HTTP requests are type "rest";
// sign-ins are 110114 "User Authentication"; break-the-glass is 110113 "Security Alert",
// subtype 110127 "Emergency Override Started", purpose of event ETREAT. The subtype always
// carries iomt's own action (system SystemAuditAction), and the RESTful interaction when the
// record is of an HTTP request. The requestor agent is the actor (who.identifier in
// SystemAuditActor: "user:<id>", "device:<id>", ...), with the caller's address; the source
// observer is the node that wrote the record. Outcome 0 success, 4 refused, 8 failed.

// Code systems of AuditEvent.
const (
	SystemDICOM          = "http://dicom.nema.org/resources/ontology/DCM"
	SystemAuditEventType = "http://terminology.hl7.org/CodeSystem/audit-event-type"
	SystemRestful        = "http://hl7.org/fhir/restful-interaction"
	SystemEntityType     = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
	SystemObjectRole     = "http://terminology.hl7.org/CodeSystem/object-role"
	SystemSecuritySource = "http://terminology.hl7.org/CodeSystem/security-source-type"
	SystemSecurityRole   = "http://terminology.hl7.org/CodeSystem/extra-security-role-type"
	SystemActReason      = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
	// SystemAuditAction is iomt's own code system for its actions (patient.read, ...).
	SystemAuditAction = "urn:iomt:audit-action"
	// SystemAuditActor identifies an actor as the trail names it (user:<id>, device:<id>).
	SystemAuditActor = "urn:iomt:actor"
	// SystemNode identifies the iomt node that observed an event.
	SystemNode = "urn:iomt:node"
)

// AuditEvent is FHIR R4's AuditEvent.
type AuditEvent struct {
	ResourceType   string             `json:"resourceType"`
	ID             string             `json:"id,omitempty"`
	Type           Coding             `json:"type"`
	Subtype        []Coding           `json:"subtype,omitempty"`
	Action         string             `json:"action,omitempty"` // C R U D E
	Recorded       string             `json:"recorded"`
	Outcome        string             `json:"outcome,omitempty"` // 0 4 8 12
	OutcomeDesc    string             `json:"outcomeDesc,omitempty"`
	PurposeOfEvent []CodeableConcept  `json:"purposeOfEvent,omitempty"`
	Agent          []AuditEventAgent  `json:"agent"`
	Source         AuditEventSource   `json:"source"`
	Entity         []AuditEventEntity `json:"entity,omitempty"`
}

// AuditEventAgent is an actor of the event.
type AuditEventAgent struct {
	Type         *CodeableConcept   `json:"type,omitempty"`
	Who          *Reference         `json:"who,omitempty"`
	AltID        string             `json:"altId,omitempty"`
	Name         string             `json:"name,omitempty"`
	Requestor    bool               `json:"requestor"`
	Network      *AuditEventNetwork `json:"network,omitempty"`
	PurposeOfUse []CodeableConcept  `json:"purposeOfUse,omitempty"`
}

// AuditEventNetwork is where the agent acted from.
type AuditEventNetwork struct {
	Address string `json:"address,omitempty"`
	Type    string `json:"type,omitempty"` // 1 machine name, 2 IP address
}

// AuditEventSource is who observed and reported the event.
type AuditEventSource struct {
	Site     string    `json:"site,omitempty"`
	Observer Reference `json:"observer"`
	Type     []Coding  `json:"type,omitempty"`
}

// AuditEventEntity is data or an object the event concerned.
type AuditEventEntity struct {
	What        *Reference               `json:"what,omitempty"`
	Type        *Coding                  `json:"type,omitempty"`
	Role        *Coding                  `json:"role,omitempty"`
	Description string                   `json:"description,omitempty"`
	Detail      []AuditEventEntityDetail `json:"detail,omitempty"`
}

// AuditEventEntityDetail is a name and value about an entity.
type AuditEventEntityDetail struct {
	Type        string `json:"type"`
	ValueString string `json:"valueString"`
}

// auditVerb is the last part of an action: "read" of "patient.read".
func auditVerb(action string) string {
	return action[strings.LastIndexByte(action, '.')+1:]
}

// auditActionCode is FHIR's AuditEvent.action for an iomt action.
func auditActionCode(action string) string {
	switch auditVerb(action) {
	case "read", "search", "list", "get", "view", "export", "open", "close", "stream", "report":
		return "R"
	case "create", "add", "issue", "register", "admit":
		return "C"
	case "update", "edit", "rotate", "revoke", "disable", "enable", "set", "change", "acknowledge", "ack", "silence", "resolve", "transfer", "assign":
		return "U"
	case "delete", "remove", "discharge":
		return "D"
	}
	return "E"
}

// restfulInteraction is the FHIR RESTful interaction of an HTTP request's action, or "".
func restfulInteraction(action string) string {
	switch auditVerb(action) {
	case "read", "get", "view":
		return "read"
	case "search", "list":
		return "search-type"
	case "create":
		return "create"
	case "update", "edit":
		return "update"
	case "delete":
		return "delete"
	}
	return ""
}

// AuditEvent maps an audit record.
func (m Mapper) AuditEvent(e iomt.AuditEvent) AuditEvent {
	a := AuditEvent{ResourceType: "AuditEvent", ID: strconv.FormatUint(e.Seq, 10), Recorded: dateTime(e.Time),
		Action: auditActionCode(e.Action)}
	overHTTP := e.Status != 0 || strings.HasPrefix(e.Resource, "/")
	switch {
	case strings.HasPrefix(e.Action, "breakglass."):
		a.Type = Coding{System: SystemDICOM, Code: "110113", Display: "Security Alert"}
		if auditVerb(e.Action) == "close" || auditVerb(e.Action) == "end" {
			a.Subtype = append(a.Subtype, Coding{System: SystemDICOM, Code: "110138", Display: "Emergency Override Stopped"})
		} else {
			a.Subtype = append(a.Subtype, Coding{System: SystemDICOM, Code: "110127", Display: "Emergency Override Started"})
		}
	case strings.HasPrefix(e.Action, "session."):
		a.Type = Coding{System: SystemDICOM, Code: "110114", Display: "User Authentication"}
		if v := auditVerb(e.Action); v == "signout" || v == "logout" || v == "expire" {
			a.Subtype = append(a.Subtype, Coding{System: SystemDICOM, Code: "110123", Display: "Logout"})
		} else {
			a.Subtype = append(a.Subtype, Coding{System: SystemDICOM, Code: "110122", Display: "Login"})
		}
	case len(e.Patients) > 0:
		a.Type = Coding{System: SystemDICOM, Code: "110110", Display: "Patient Record"}
	case overHTTP:
		a.Type = Coding{System: SystemAuditEventType, Code: "rest", Display: "RESTful Operation"}
	default:
		a.Type = Coding{System: SystemDICOM, Code: "110100", Display: "Application Activity"}
	}
	if ri := restfulInteraction(e.Action); overHTTP && ri != "" {
		a.Subtype = append(a.Subtype, Coding{System: SystemRestful, Code: ri})
	}
	a.Subtype = append(a.Subtype, Coding{System: SystemAuditAction, Code: e.Action})
	switch e.Outcome {
	case iomt.OutcomeSuccess:
		a.Outcome = "0"
	case iomt.OutcomeDenied:
		a.Outcome, a.OutcomeDesc = "4", e.Reason
	default:
		a.Outcome, a.OutcomeDesc = "8", e.Reason
	}
	agent := AuditEventAgent{
		Who:       &Reference{Identifier: &Identifier{System: SystemAuditActor, Value: e.Actor}, Display: cmpOr(e.ActorName, e.Actor)},
		AltID:     e.Actor,
		Name:      e.ActorName,
		Requestor: true,
	}
	kind, _, _ := strings.Cut(e.Actor, ":")
	switch kind {
	case "user", "anonymous":
		agent.Type = &CodeableConcept{Coding: []Coding{{System: SystemSecurityRole, Code: "humanuser", Display: "human user"}}}
	case "device":
		agent.Type = &CodeableConcept{Coding: []Coding{{System: SystemSecurityRole, Code: "datacollector", Display: "data collector"}}}
	case "token", "node":
		agent.Type = &CodeableConcept{Coding: []Coding{{System: SystemDICOM, Code: "110150", Display: "Application"}}}
	}
	if e.Source != "" {
		host := e.Source
		if h, _, err := net.SplitHostPort(e.Source); err == nil {
			host = h
		}
		typ := "2"
		if net.ParseIP(host) == nil {
			typ = "1"
		}
		agent.Network = &AuditEventNetwork{Address: host, Type: typ}
	}
	if e.Purpose != "" {
		pou := CodeableConcept{Coding: []Coding{{System: SystemActReason, Code: e.Purpose}}, Text: e.Reason}
		if e.Purpose == "ETREAT" {
			pou.Coding[0].Display = "Emergency Treatment"
		}
		a.PurposeOfEvent = []CodeableConcept{pou}
		agent.PurposeOfUse = []CodeableConcept{pou}
	}
	a.Agent = []AuditEventAgent{agent}
	node := e.Detail["node"]
	a.Source = AuditEventSource{Site: e.Tenant, Observer: Reference{Display: cmpOr(node, "iomt")},
		Type: []Coding{{System: SystemSecuritySource, Code: "4", Display: "Application Server"}}}
	if node != "" {
		a.Source.Observer.Identifier = &Identifier{System: SystemNode, Value: node}
	}
	seen := map[string]bool{}
	for _, p := range e.Patients {
		if seen[p] {
			continue
		}
		seen[p] = true
		a.Entity = append(a.Entity, AuditEventEntity{What: &Reference{Reference: "Patient/" + p},
			Type: &Coding{System: SystemEntityType, Code: "1", Display: "Person"},
			Role: &Coding{System: SystemObjectRole, Code: "1", Display: "Patient"}})
	}
	var details []AuditEventEntityDetail
	if e.Status != 0 {
		details = append(details, AuditEventEntityDetail{Type: "http-status", ValueString: strconv.Itoa(e.Status)})
	}
	if e.Reason != "" && e.Outcome == iomt.OutcomeSuccess && e.Purpose == "" {
		details = append(details, AuditEventEntityDetail{Type: "reason", ValueString: e.Reason})
	}
	for _, k := range slices.Sorted(maps.Keys(e.Detail)) {
		if k != "node" {
			details = append(details, AuditEventEntityDetail{Type: k, ValueString: e.Detail[k]})
		}
	}
	if e.Resource != "" || len(details) > 0 {
		ent := AuditEventEntity{Type: &Coding{System: SystemEntityType, Code: "2", Display: "System Object"},
			Role: &Coding{System: SystemObjectRole, Code: "4", Display: "Domain Resource"}, Description: e.Resource, Detail: details}
		if e.Resource != "" {
			ent.What = &Reference{Display: e.Resource}
		}
		a.Entity = append(a.Entity, ent)
	}
	return a
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// auditReadOnly is the answer to writes of AuditEvents.
const auditReadOnly = "AuditEvents are the audit trail, written by iomt itself as things happen: they cannot be created or changed"

// auditParams are AuditEvent's search parameters.
var auditParams = set("patient", "agent", "date", "action", "type", "subtype", "outcome")

// auditQuery is a parsed AuditEvent search: the store filter and what is checked on the
// mapped resource.
type auditQuery struct {
	f     iomt.AuditFilter
	preds []datePred
	ids   []uint64 // _id
	q     map[string][]string
}

func (s *server) parseAuditQuery(r *http.Request, q map[string][]string) (auditQuery, error) {
	aq := auditQuery{f: iomt.AuditFilter{Tenant: callOf(r).tenant()}, q: q}
	one := func(name string) (string, error) {
		v := q[name]
		if len(v) > 1 || strings.Contains(v[0], ",") {
			return "", errorf(http.StatusBadRequest, "not-supported", "%s takes one value", name)
		}
		return v[0], nil
	}
	if _, ok := q["patient"]; ok {
		v, err := one("patient")
		if err != nil {
			return aq, err
		}
		if aq.f.Patient, err = refID("Patient", v); err != nil {
			return aq, err
		}
		callOf(r).note(aq.f.Patient)
	}
	if _, ok := q["agent"]; ok {
		v, err := one("agent")
		if err != nil {
			return aq, err
		}
		aq.f.Actor = strings.TrimPrefix(v, SystemAuditActor+"|")
	}
	for _, v := range q["date"] {
		p, err := parseDatePred("date", v)
		if err != nil {
			return aq, err
		}
		aq.preds = append(aq.preds, p)
	}
	aq.f.Since, aq.f.Until = window(aq.preds)
	for _, v := range q["action"] {
		for _, c := range splitOr(v) {
			if !slices.Contains([]string{"C", "R", "U", "D", "E"}, c) {
				return aq, errorf(http.StatusBadRequest, "value", "action %q: one of C, R, U, D, E", c)
			}
		}
	}
	for _, v := range q["outcome"] {
		for _, c := range splitOr(v) {
			if !slices.Contains([]string{"0", "4", "8", "12"}, c) {
				return aq, errorf(http.StatusBadRequest, "value", "outcome %q: one of 0, 4, 8, 12", c)
			}
		}
	}
	// One iomt action (urn:iomt:audit-action|patient.read, or patient.read; a prefix such as
	// patient. for all of them) is left to the store; other subtypes are matched on the
	// mapped resource.
	if v := q["subtype"]; len(v) == 1 && !strings.Contains(v[0], ",") {
		sys, code, hasSys := strings.Cut(v[0], "|")
		if !hasSys {
			code = sys
		}
		if (hasSys && sys == SystemAuditAction || !hasSys && strings.Contains(code, ".")) && code != "" {
			aq.f.Action = code
		}
	}
	if v, ok := q["_id"]; ok {
		for _, id := range splitOr(v[0]) {
			n, err := strconv.ParseUint(id, 10, 64)
			if err != nil || n == 0 {
				continue // no such record
			}
			aq.ids = append(aq.ids, n)
		}
		if len(aq.ids) == 0 {
			aq.ids = []uint64{0}
		}
	}
	return aq, nil
}

// keep applies what the store filter does not.
func (aq *auditQuery) keep(m Mapper, e *iomt.AuditEvent) bool {
	if aq.ids != nil && !slices.Contains(aq.ids, e.Seq) {
		return false
	}
	for _, p := range aq.preds {
		if !p.match(e.Time) {
			return false
		}
	}
	if len(aq.q["action"])+len(aq.q["outcome"])+len(aq.q["type"])+len(aq.q["subtype"]) == 0 {
		return true
	}
	a := m.AuditEvent(*e)
	codes := func(vals []string, code string) bool {
		for _, v := range vals {
			if !slices.Contains(splitOr(v), code) {
				return false
			}
		}
		return true
	}
	if !codes(aq.q["action"], a.Action) || !codes(aq.q["outcome"], a.Outcome) || !anyToken(aq.q["type"], []Coding{a.Type}) {
		return false
	}
	for _, v := range aq.q["subtype"] {
		ok := false
		for _, tok := range splitOr(v) {
			// A prefix ending in "." matches the iomt actions under it.
			if code := strings.TrimPrefix(tok, SystemAuditAction+"|"); strings.HasSuffix(code, ".") {
				ok = ok || strings.HasPrefix(e.Action, code)
				continue
			}
			ok = ok || tokenMatch(tok, a.Subtype)
		}
		if !ok {
			return false
		}
	}
	return true
}

// auditBatch is how many records a search reads from the store at a time.
const auditBatch = 1000

// auditMatches reads the records aq selects in Seq order, at most need of them (0: all); more
// tells whether there were others after.
func (s *server) auditMatches(ctx context.Context, aq *auditQuery, need int) (out []iomt.AuditEvent, more bool, err error) {
	f := aq.f
	if len(aq.ids) > 0 {
		f.AfterSeq = slices.Min(aq.ids) - 1
	}
	f.Limit = auditBatch
	for {
		page, err := s.Store.AuditEvents(ctx, f)
		if err != nil {
			return nil, false, fmt.Errorf("fhir: search audit events: %w", err)
		}
		for i := range page {
			if aq.keep(s.m, &page[i]) {
				if need > 0 && len(out) == need {
					return out, true, nil
				}
				out = append(out, page[i])
			}
		}
		if len(page) < f.Limit || len(aq.ids) > 0 && page[len(page)-1].Seq >= slices.Max(aq.ids) {
			return out, false, nil
		}
		f.AfterSeq = page[len(page)-1].Seq
	}
}

// searchAudit answers an AuditEvent search. The trail can be long, so a page is read up to
// the record after it: the Bundle has a next link when there is more, and a total only when
// the search reached the end (or _summary=count asked for it).
func (s *server) searchAudit(r *http.Request, sp searchParams) (Bundle, error) {
	aq, err := s.parseAuditQuery(r, sp.raw)
	if err != nil {
		return Bundle{}, err
	}
	need := sp.offset + sp.count
	if sp.summary {
		need = 0
	}
	events, more, err := s.auditMatches(r.Context(), &aq, need)
	if err != nil {
		return Bundle{}, err
	}
	now := dateTime(s.Now())
	b := Bundle{ResourceType: "Bundle", Type: "searchset", Timestamp: now, Meta: &Meta{LastUpdated: now}}
	if !more {
		total := len(events)
		b.Total = &total
	}
	base := s.base(r) + "/AuditEvent"
	link := func(rel string, offset int) {
		v := url.Values{}
		maps.Copy(v, sp.raw)
		v.Set("_count", strconv.Itoa(sp.count))
		if offset > 0 {
			v.Set("_offset", strconv.Itoa(offset))
		}
		b.Link = append(b.Link, BundleLink{Relation: rel, URL: base + "?" + v.Encode()})
	}
	link("self", sp.offset)
	if sp.summary {
		return b, nil
	}
	link("first", 0)
	if sp.offset > 0 {
		link("previous", max(0, sp.offset-sp.count))
	}
	if more {
		link("next", sp.offset+sp.count)
	}
	for i := sp.offset; i < len(events); i++ {
		a := s.m.AuditEvent(events[i])
		b.Entry = append(b.Entry, BundleEntry{FullURL: base + "/" + a.ID, Resource: a, Search: &BundleEntrySearch{Mode: "match"}})
	}
	return b, nil
}

// readAudit answers GET AuditEvent/{seq}.
func (s *server) readAudit(r *http.Request, id string) (AuditEvent, error) {
	seq, err := strconv.ParseUint(id, 10, 64)
	if err != nil || seq == 0 {
		return AuditEvent{}, errorf(http.StatusNotFound, "not-found", "AuditEvent/%s: audit event ids are record numbers 1, 2, ...", id)
	}
	got, err := s.Store.AuditEvents(r.Context(), iomt.AuditFilter{AfterSeq: seq - 1, Limit: 1})
	if err != nil {
		return AuditEvent{}, fmt.Errorf("fhir: read audit event: %w", err)
	}
	if len(got) == 0 || got[0].Seq != seq || got[0].Tenant != callOf(r).tenant() {
		return AuditEvent{}, errorf(http.StatusNotFound, "not-found", "AuditEvent/%s not found", id)
	}
	for _, p := range got[0].Patients {
		callOf(r).note(p)
	}
	return s.m.AuditEvent(got[0]), nil
}
