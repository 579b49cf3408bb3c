package fhir

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/iomt/iomt"
	"github.com/iomt/iomt/policy"
)

func notFound(typ, id string) *apiError {
	return errorf(http.StatusNotFound, "not-found", "%s/%s not found", typ, id)
}

func (s *server) read(w http.ResponseWriter, r *http.Request, typ, id string) error {
	callOf(r).act("fhir." + strings.ToLower(typ) + ".read")
	if !ValidID(id) {
		return errorf(http.StatusBadRequest, "invalid", "%q is not a valid FHIR id", id)
	}
	var res any
	switch typ {
	case "Patient":
		// The policy is asked first: a patient the caller may not see and one that does not
		// exist are answered alike, and nothing is read for a refused request.
		if err := s.require(r, policy.Request{Need: policy.PatientSummary, Patient: id, Resource: "Patient", Interaction: "r"}, notFound("Patient", id)); err != nil {
			return err
		}
		p, err := s.patient(r, id)
		if err != nil {
			return err
		}
		res = s.m.Patient(p)
	case "Device":
		d, err := s.device(r, id)
		if err != nil {
			return err
		}
		if err := s.deviceAccess(r, d, "Device", id); err != nil {
			return err
		}
		res = s.m.Device(d)
	case "DeviceMetric":
		dm, d, err := s.deviceMetric(r, id)
		if err != nil {
			return err
		}
		if err := s.deviceAccess(r, d, "DeviceMetric", id); err != nil {
			return err
		}
		res = dm
	case "Observation":
		k, err := ParseObservationID(s.Catalog, id)
		if err != nil {
			return notFound("Observation", id)
		}
		if err := s.require(r, s.observationRequest(k, "r"), notFound("Observation", id)); err != nil {
			return err
		}
		o, err := s.observation(r, id)
		if err != nil {
			return err
		}
		res = o
	case "AuditEvent":
		if err := s.require(r, policy.Request{Need: policy.Audit, Resource: "AuditEvent", Interaction: "r"}, nil); err != nil {
			return err
		}
		a, err := s.readAudit(r, id)
		if err != nil {
			return err
		}
		res = a
	}
	s.write(w, r, http.StatusOK, res)
	return nil
}

func (s *server) patient(r *http.Request, id string) (iomt.Patient, error) {
	p, err := s.Store.Patient(r.Context(), id)
	if errors.Is(err, iomt.ErrNotFound) || err == nil && p.Tenant != callOf(r).tenant() {
		return p, notFound("Patient", id)
	}
	if err != nil {
		return p, fmt.Errorf("fhir: read patient %s: %w", id, err)
	}
	return p, nil
}

func (s *server) device(r *http.Request, id string) (iomt.Device, error) {
	d, err := s.Store.Device(r.Context(), id)
	if errors.Is(err, iomt.ErrNotFound) || err == nil && d.Tenant != callOf(r).tenant() {
		return d, notFound("Device", id)
	}
	if err != nil {
		return d, fmt.Errorf("fhir: read device %s: %w", id, err)
	}
	return d, nil
}

// deviceMetric resolves "{device}-{code}" ids, returning the metric and its device; device
// ids may contain '-', so every split is tried from the right.
func (s *server) deviceMetric(r *http.Request, id string) (DeviceMetric, iomt.Device, error) {
	for i := strings.LastIndexByte(id, '-'); i > 0; i = strings.LastIndexByte(id[:i], '-') {
		c, ok := s.Catalog.Lookup(id[i+1:])
		if !ok {
			continue
		}
		d, err := s.device(r, id[:i])
		if isNotFound(err) {
			continue
		}
		if err != nil {
			return DeviceMetric{}, d, err
		}
		if dm, ok := s.m.DeviceMetric(d, c.ID); ok && dm.ID == id {
			return dm, d, nil
		}
	}
	return DeviceMetric{}, iomt.Device{}, notFound("DeviceMetric", id)
}

// observationRequest is the policy request for the Observation k names. Its category stands
// in for the search parameters of a read, so that a scope such as
// patient/Observation.rs?category=vital-signs reads the vital signs it would find.
func (s *server) observationRequest(k ObsKey, interaction string) policy.Request {
	q := url.Values{}
	if c, ok := s.Catalog.ByID(k.Code); ok {
		if cat := Category(c); cat != "" {
			q.Set("category", cat)
		}
	}
	return policy.Request{Need: policy.PatientRead, Patient: k.Patient, Resource: "Observation", Interaction: interaction, Query: q}
}

// observation finds the data behind an Observation id; the caller has asked the policy.
func (s *server) observation(r *http.Request, id string) (Observation, error) {
	k, err := ParseObservationID(s.Catalog, id)
	if err != nil {
		return Observation{}, notFound("Observation", id)
	}
	ctx := r.Context()
	point := func(code string) (iomt.Observation, bool, error) {
		obs, err := s.Store.Observations(ctx, iomt.ObservationQuery{Patient: k.Patient, Code: code, From: k.Time, To: k.Time.Add(iomt.TimePrecision)})
		if err != nil {
			return iomt.Observation{}, false, fmt.Errorf("fhir: read observation: %w", err)
		}
		for _, o := range obs {
			if o.Device == k.Device && o.Time.Equal(k.Time) {
				return o, true, nil
			}
		}
		return iomt.Observation{}, false, nil
	}
	switch k.Kind {
	case KindReading:
		o, ok, err := point(k.Code)
		if err != nil || !ok {
			return Observation{}, cmpErr(err, notFound("Observation", id))
		}
		return s.m.Reading(o)
	case KindBPPanel:
		sys, ok1, err := point(CodeSystolic)
		if err != nil {
			return Observation{}, err
		}
		dia, ok2, err := point(CodeDiastolic)
		if err != nil || !ok1 || !ok2 {
			return Observation{}, cmpErr(err, notFound("Observation", id))
		}
		return s.m.BloodPressure(sys, dia)
	case KindWaveform:
		// The ECG is served under CodeECG only: ids naming one lead (one Observation per lead,
		// before the leads became components) name nothing now.
		if WindowStart(k.Time, s.WaveformWindow) != k.Time || s.m.WaveformCode(k.Code) != k.Code {
			return Observation{}, notFound("Observation", id)
		}
		segs, err := s.waveforms(ctx, k.Patient, k.Code, k.Time, k.Time.Add(s.WaveformWindow))
		if err != nil {
			return Observation{}, err
		}
		o, err := s.m.WaveformWindow(segs, k.Patient, k.Device, k.Code, k.Time, s.WaveformWindow)
		if errors.Is(err, iomt.ErrNotFound) {
			return Observation{}, notFound("Observation", id)
		}
		return o, err
	}
	// Scores are not stored yet.
	return Observation{}, notFound("Observation", id)
}

func cmpErr(err error, otherwise error) error {
	if err != nil {
		return err
	}
	return otherwise
}

// ---- create and update ----

func (s *server) create(w http.ResponseWriter, r *http.Request, typ string) error {
	c := callOf(r)
	c.act("fhir." + strings.ToLower(typ) + ".create")
	switch typ {
	case "Observation":
		return methodNotAllowedMsg(w, "GET", "Observations are not created through FHIR: readings come from devices through ingest (MQTT, CoAP, POST /api/v1/ingest), which authenticates the device and validates units and ranges")
	case "DeviceMetric":
		return methodNotAllowedMsg(w, "GET", "DeviceMetrics follow from a Device's kind and cannot be written")
	case "Patient":
		if err := s.require(r, policy.Request{Need: policy.PatientCreate, Resource: "Patient", Interaction: "c"}, nil); err != nil {
			return err
		}
	case "Device":
		if err := s.require(r, policy.Request{Need: policy.Admin, Resource: "Device", Interaction: "c"}, nil); err != nil {
			return err
		}
	case "AuditEvent":
		return methodNotAllowedMsg(w, "GET", auditReadOnly)
	}
	if r.Header.Get("If-Match") != "" {
		return errorf(http.StatusPreconditionFailed, "not-supported", "iomt keeps no resource versions; If-Match cannot be honoured")
	}
	body, err := s.readBody(w, r)
	if err != nil {
		return err
	}
	id, err := iomt.NewID()
	if err != nil {
		return err
	}
	now := s.Now().UTC().Truncate(iomt.TimePrecision)
	switch typ {
	case "Patient":
		p, _, err := s.m.PatientFrom(body)
		if err != nil {
			return err
		}
		// Conditional create (If-None-Exist: identifier=system|mrn) makes a client's retry safe.
		if cond := r.Header.Get("If-None-Exist"); cond != "" {
			existing, err := s.conditionalPatient(r, cond)
			if err != nil {
				return err
			}
			if existing != nil {
				// The match is returned only to a caller who may read it.
				hidden := &apiError{status: http.StatusConflict, code: "duplicate", expr: "Patient.identifier",
					msg: fmt.Sprintf("another patient already has MRN %q", p.MRN)}
				if err := s.require(r, policy.Request{Need: policy.PatientSummary, Patient: existing.ID, Resource: "Patient", Interaction: "r"}, hidden); err != nil {
					return err
				}
				w.Header().Set("Location", s.base(r)+"/Patient/"+existing.ID)
				s.respond(w, r, http.StatusOK, s.m.Patient(*existing))
				return nil
			}
		}
		p.ID, p.Tenant, p.CreatedAt = id, c.tenant(), now
		c.note(p.ID)
		team, err := s.admittingTeam(r)
		if err != nil {
			return err
		}
		if err := s.Store.CreatePatient(r.Context(), p); err != nil {
			return s.patientWriteErr(r, p, err)
		}
		if err := s.admit(r, team, p); err != nil {
			return err
		}
		s.Policy.NotePatient(p)
		w.Header().Set("Location", s.base(r)+"/Patient/"+p.ID)
		s.respond(w, r, http.StatusCreated, s.m.Patient(p))
	case "Device":
		d, _, err := s.m.DeviceFrom(body)
		if err != nil {
			return err
		}
		// Conditional create (If-None-Exist: identifier=system|value) makes a retry safe.
		if cond := r.Header.Get("If-None-Exist"); cond != "" {
			existing, err := s.conditionalDevice(r, cond)
			if err != nil {
				return err
			}
			if existing != nil {
				c.note(existing.Patient)
				w.Header().Set("Location", s.base(r)+"/Device/"+existing.ID)
				s.respond(w, r, http.StatusOK, s.m.Device(*existing))
				return nil
			}
		}
		if err := s.checkPatient(r, d.Patient); err != nil {
			return err
		}
		// No credentials are made: a device that sends data is created through the REST API
		// (POST /api/v1/devices), which shows its secrets once.
		d.ID, d.Tenant, d.CreatedAt = id, c.tenant(), now
		c.note(d.Patient)
		if err := s.Store.CreateDevice(r.Context(), d); err != nil {
			return fmt.Errorf("fhir: create device: %w", err)
		}
		w.Header().Set("Location", s.base(r)+"/Device/"+d.ID)
		s.respond(w, r, http.StatusCreated, s.m.Device(d))
	}
	return nil
}

func methodNotAllowedMsg(w http.ResponseWriter, allow, msg string) *apiError {
	w.Header().Set("Allow", allow)
	return errorf(http.StatusMethodNotAllowed, "not-supported", "%s", msg)
}

// patientWriteErr answers a refused patient write. A duplicate is the MRN (unique per tenant)
// or, on a PUT racing another, the id: the conflict names the patient holding the MRN if the
// caller may read it (a search by identifier would show it), and only says the MRN is taken
// otherwise.
func (s *server) patientWriteErr(r *http.Request, p iomt.Patient, err error) error {
	if !errors.Is(err, iomt.ErrDuplicate) {
		return fmt.Errorf("fhir: write patient: %w", err)
	}
	if p.MRN != "" {
		c := callOf(r)
		ps, ferr := s.Store.Patients(r.Context(), iomt.PatientFilter{Tenant: c.tenant(), MRN: p.MRN, Limit: 2})
		for _, o := range ps {
			if o.ID == p.ID {
				continue
			}
			if s.Policy.Decide(c.pr, policy.Request{Need: policy.PatientSummary, Patient: o.ID, Resource: "Patient", Interaction: "r"}, c.now).Allow {
				return &apiError{status: http.StatusConflict, code: "duplicate", expr: "Patient.identifier",
					msg: fmt.Sprintf("MRN %q already belongs to Patient/%s", p.MRN, o.ID)}
			}
			ferr = iomt.ErrDuplicate
		}
		if ferr != nil {
			return &apiError{status: http.StatusConflict, code: "duplicate", expr: "Patient.identifier",
				msg: fmt.Sprintf("another patient already has MRN %q", p.MRN)}
		}
	}
	return errorf(http.StatusConflict, "duplicate", "Patient/%s was created by another request at the same time", p.ID)
}

// conditionQuery reads an If-None-Exist header of typ: one identifier parameter only.
func conditionQuery(typ, cond string) (string, error) {
	q, err := url.ParseQuery(strings.TrimPrefix(cond, typ+"?"))
	if err != nil || len(q) != 1 || len(q["identifier"]) != 1 || strings.Contains(q.Get("identifier"), ",") {
		return "", errorf(http.StatusBadRequest, "not-supported", "If-None-Exist supports identifier=[system|]value only, got %q", cond)
	}
	return q.Get("identifier"), nil
}

// conditionalDevice finds the device an If-None-Exist search names (identifier only).
func (s *server) conditionalDevice(r *http.Request, cond string) (*iomt.Device, error) {
	tok, err := conditionQuery("Device", cond)
	if err != nil {
		return nil, err
	}
	ds, err := s.devices(r, map[string][]string{"identifier": {tok}})
	if err != nil {
		return nil, err
	}
	switch len(ds) {
	case 0:
		return nil, nil
	case 1:
		return &ds[0], nil
	}
	return nil, errorf(http.StatusPreconditionFailed, "multiple-matches", "If-None-Exist %q matches more than one device", cond)
}

// conditionalPatient finds the patient an If-None-Exist search names (identifier only).
func (s *server) conditionalPatient(r *http.Request, cond string) (*iomt.Patient, error) {
	tok, err := conditionQuery("Patient", cond)
	if err != nil {
		return nil, err
	}
	mrn, err := s.mrnToken(tok)
	if err != nil {
		return nil, err
	}
	ps, err := s.Store.Patients(r.Context(), iomt.PatientFilter{Tenant: callOf(r).tenant(), MRN: mrn, Limit: 2})
	if err != nil {
		return nil, fmt.Errorf("fhir: conditional create: %w", err)
	}
	switch len(ps) {
	case 0:
		return nil, nil
	case 1:
		return &ps[0], nil
	}
	return nil, errorf(http.StatusPreconditionFailed, "multiple-matches", "If-None-Exist %q matches more than one patient", cond)
}

// mrnToken reads an identifier token; a system other than the MRN system matches nothing, which
// is answered by the empty string never stored as an MRN.
func (s *server) mrnToken(tok string) (string, error) {
	sys, val, hasSys := strings.Cut(tok, "|")
	if !hasSys {
		return tok, nil
	}
	if sys != "" && sys != s.m.mrnSystem() {
		return "\x00no-such-system", nil
	}
	if val == "" {
		return "", errorf(http.StatusBadRequest, "value", "identifier %q has no value", tok)
	}
	return val, nil
}

func (s *server) checkPatient(r *http.Request, id string) error {
	if id == "" {
		return nil
	}
	if _, err := s.patient(r, id); err != nil {
		if isNotFound(err) {
			return &apiError{status: http.StatusUnprocessableEntity, code: "invalid", expr: "Device.patient", msg: fmt.Sprintf("Device.patient: Patient/%s does not exist", id)}
		}
		return err
	}
	return nil
}

// respond honours Prefer: return=minimal | representation | OperationOutcome.
func (s *server) respond(w http.ResponseWriter, r *http.Request, status int, res any) {
	switch pref := r.Header.Get("Prefer"); {
	case strings.Contains(pref, "return=minimal"):
		w.WriteHeader(status)
	case strings.Contains(pref, "return=OperationOutcome"):
		s.write(w, r, status, Outcome("information", "informational", http.StatusText(status)))
	default:
		s.write(w, r, status, res)
	}
}

func (s *server) update(w http.ResponseWriter, r *http.Request, typ, id string) error {
	c := callOf(r)
	c.act("fhir." + strings.ToLower(typ) + ".update")
	switch typ {
	case "Observation", "DeviceMetric":
		return methodNotAllowedMsg(w, "GET", typ+" is read-only here: readings come from devices through ingest")
	case "AuditEvent":
		return methodNotAllowedMsg(w, "GET", auditReadOnly)
	}
	if !ValidID(id) {
		return errorf(http.StatusBadRequest, "invalid", "%q is not a valid FHIR id", id)
	}
	if r.Header.Get("If-Match") != "" {
		return errorf(http.StatusPreconditionFailed, "not-supported", "iomt keeps no resource versions; If-Match cannot be honoured")
	}
	var cur iomt.Patient
	exists := false
	switch typ {
	case "Patient":
		// An update of an existing patient is a write to them; of an unknown id, a create.
		var err error
		cur, err = s.Store.Patient(r.Context(), id)
		if err != nil && !errors.Is(err, iomt.ErrNotFound) {
			return fmt.Errorf("fhir: read patient %s: %w", id, err)
		}
		exists = err == nil
		q := policy.Request{Need: policy.PatientCreate, Resource: "Patient", Interaction: "c"}
		if exists {
			q = policy.Request{Need: policy.PatientWrite, Patient: id, Resource: "Patient", Interaction: "u"}
		}
		if err := s.require(r, q, notFound("Patient", id)); err != nil {
			return err
		}
		if exists && cur.Tenant != c.tenant() {
			return notFound("Patient", id)
		}
	case "Device":
		if err := s.require(r, policy.Request{Need: policy.Admin, Resource: "Device", Interaction: "u"}, nil); err != nil {
			return err
		}
	}
	body, err := s.readBody(w, r)
	if err != nil {
		return err
	}
	checkID := func(bodyID string) error {
		if bodyID != id {
			return &apiError{status: http.StatusBadRequest, code: "invalid", expr: typ + ".id", msg: fmt.Sprintf("%s.id %q must equal the id in the URL %q", typ, bodyID, id)}
		}
		return nil
	}
	now := s.Now().UTC().Truncate(iomt.TimePrecision)
	switch typ {
	case "Patient":
		p, bodyID, err := s.m.PatientFrom(body)
		if err == nil {
			err = checkID(bodyID)
		}
		if err != nil {
			return err
		}
		c.note(id)
		p.ID, p.Tenant = id, c.tenant()
		status := http.StatusOK
		if exists {
			// The NEWS2 SpO2 scale and the CGM alert limits have no place in a FHIR Patient:
			// a PUT, which replaces what FHIR shows, keeps them (the REST API's PATCH changes
			// them).
			p.SpO2Scale, p.CGMLimits = cur.SpO2Scale, cur.CGMLimits
		}
		err = s.Store.UpdatePatient(r.Context(), p)
		var team *iomt.CareTeam
		if errors.Is(err, iomt.ErrNotFound) {
			// Update as create: the client chose the id.
			if team, err = s.admittingTeam(r); err != nil {
				return err
			}
			p.CreatedAt, status = now, http.StatusCreated
			err = s.Store.CreatePatient(r.Context(), p)
		}
		if err != nil {
			return s.patientWriteErr(r, p, err)
		}
		if err := s.admit(r, team, p); err != nil {
			return err
		}
		got, err := s.patient(r, id)
		if err != nil {
			return err
		}
		if status == http.StatusCreated {
			s.Policy.NotePatient(got)
			w.Header().Set("Location", s.base(r)+"/Patient/"+id)
		}
		s.respond(w, r, status, s.m.Patient(got))
	case "Device":
		d, bodyID, err := s.m.DeviceFrom(body)
		if err == nil {
			err = checkID(bodyID)
		}
		if err != nil {
			return err
		}
		if err := s.checkPatient(r, d.Patient); err != nil {
			return err
		}
		cur, gerr := s.Store.Device(r.Context(), id)
		if gerr == nil && cur.Tenant != c.tenant() {
			return notFound("Device", id)
		}
		// Both the patient it was bound to and the one it is bound to now are concerned.
		c.note(cur.Patient)
		c.note(d.Patient)
		d.ID, d.Tenant = id, c.tenant()
		status := http.StatusOK
		err = s.Store.UpdateDevice(r.Context(), d)
		if errors.Is(err, iomt.ErrNotFound) {
			d.CreatedAt, status = now, http.StatusCreated
			err = s.Store.CreateDevice(r.Context(), d)
		}
		if err != nil {
			if errors.Is(err, iomt.ErrDuplicate) {
				return errorf(http.StatusConflict, "duplicate", "device %s already exists", id)
			}
			return fmt.Errorf("fhir: write device: %w", err)
		}
		got, err := s.device(r, id)
		if err != nil {
			return err
		}
		if status == http.StatusCreated {
			w.Header().Set("Location", s.base(r)+"/Device/"+id)
		}
		s.respond(w, r, status, s.m.Device(got))
	}
	return nil
}
