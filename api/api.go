// Package api serves iomt's REST API: the registry of patients and devices, HTTP ingest,
// observation queries, live streams, the OpenAPI document, health and metrics.
package api

import (
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/iomt/iomt"
	"github.com/iomt/iomt/analytics/glucose"
	"github.com/iomt/iomt/codes"
	"github.com/iomt/iomt/identity"
	"github.com/iomt/iomt/ingest"
	"github.com/iomt/iomt/policy"
)

//go:embed openapi.json
var openAPI []byte

// Config wires the API to the rest of a node.
type Config struct {
	Store    iomt.Store
	Ingester *ingest.Ingester
	Auth     ingest.Authenticator
	Catalog  *codes.Catalog
	Live     *Live
	// Identity signs people in and authenticates sessions and API tokens.
	Identity *identity.Service
	// Policy decides every request.
	Policy *policy.Policy
	// Auditor records the audit trail; the API serves nothing it could not record. Without
	// one, records go to Audit (a log), for tests of other parts.
	Auditor Auditor
	// AuditTrail, if set, is read by auditors at /api/v1/audit.
	AuditTrail AuditReader
	// BootstrapToken, if set, is a bearer token with every permission in the default tenant,
	// for provisioning before accounts exist and for scripts; keep it out of argv.
	BootstrapToken string
	// VerifyJWT, if set, authenticates a bearer JWT from the hospital's identity provider.
	VerifyJWT func(ctx context.Context, raw string) (policy.Principal, error)
	// SSO, if set, signs people in through the hospital's identity provider at
	// /auth/oidc/login and /auth/oidc/callback.
	SSO SSOProvider
	// TLS tells whether the node serves HTTPS: session cookies are then marked Secure.
	TLS      bool
	Logger   *slog.Logger
	Audit    *slog.Logger // where audit records go when there is no Auditor
	Gatherer prometheus.Gatherer
	// MQTTAddr is told to devices when they are created ("host:port").
	MQTTAddr string
	// Ready reports whether the node can take traffic.
	Ready func() error
	// CGMAlerts, if set, returns a patient's recent CGM alerts.
	CGMAlerts func(patient string) []glucose.Alert
	// Cluster, if set, tells which node answers and which bus partitions it owns.
	Cluster func() ClusterStatus
	// UI, if set, serves the dashboard at /.
	UI http.Handler
	// FHIR, if set, serves the FHIR R4 API at /fhir/r4/ (it authenticates requests itself).
	FHIR http.Handler
	// DeadLetters, if set, lists and retries what the EHR export could not deliver, at
	// /api/v1/export/dead-letters (admin only).
	DeadLetters http.Handler
	// Alarms, if set, serves alarm lists, lifecycle steps and alarm configuration.
	Alarms Alarms
	// MaxBody bounds request bodies; default 4 MiB.
	MaxBody int64
	// DeviceChanged, if set, is told when a device's credentials, state or gateway changed
	// (after the store), so that live MQTT sessions end on every node.
	DeviceChanged func(context.Context, DeviceChange)
	// Throttle, if set, refuses HTTP ingest from sources that failed device authentication too
	// often (share it with the MQTT broker).
	Throttle *ingest.Throttle
}

// Server is the API's http.Handler.
type Server struct {
	Config
	log       *slog.Logger
	audit     *slog.Logger
	bootstrap []byte // SHA-256 of the bootstrap token
	mux       *http.ServeMux
	table     []Route
}

// Auditor records audit events durably.
type Auditor interface {
	Record(ctx context.Context, e iomt.AuditEvent) error
}

// AuditReader reads the audit trail.
type AuditReader interface {
	AuditEvents(ctx context.Context, f iomt.AuditFilter) ([]iomt.AuditEvent, error)
}

// New builds the API.
func New(c Config) (*Server, error) {
	if c.Policy == nil {
		return nil, errors.New("api: a policy is required")
	}
	if c.MaxBody <= 0 {
		c.MaxBody = 4 << 20
	}
	s := &Server{Config: c, log: c.Logger, audit: c.Audit, mux: http.NewServeMux()}
	if c.BootstrapToken != "" && len(c.BootstrapToken) < 16 {
		return nil, errors.New("api: the bootstrap token must have at least 16 characters: it opens everything")
	}
	if c.BootstrapToken != "" {
		h := sha256.Sum256([]byte(c.BootstrapToken))
		s.bootstrap = h[:]
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.audit == nil {
		s.audit = s.log
	}
	s.routes()
	return s, nil
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	defer func() {
		// A bug in one handler answers 500 to its caller and leaves the server up.
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			s.log.Error("api handler panic", "path", r.URL.Path, "panic", fmt.Sprint(v))
			writeProblem(w, r, http.StatusInternalServerError, "internal error")
		}
	}()
	s.mux.ServeHTTP(w, r)
}

func (s *Server) routes() {
	m := s.mux
	json200 := func(v any) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) { writeJSON(w, http.StatusOK, v) }
	}
	pub := func(pattern string, h http.Handler) {
		s.handle(Route{Pattern: pattern, Need: policy.Public, Handler: h})
	}
	pub("GET /healthz", json200(map[string]string{"status": "ok"}))
	pub("GET /readyz", http.HandlerFunc(s.readyz))
	if s.Gatherer != nil {
		// Metrics carry counts and latencies, no patient data: a scraper needs no account.
		pub("GET /metrics", promhttp.HandlerFor(s.Gatherer, promhttp.HandlerOpts{}))
	}
	pub("GET /api/v1/openapi.json", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(openAPI)
	}))
	// Devices authenticate with their own credentials, checked by ingest.
	s.handle(Route{Pattern: "POST /api/v1/ingest", Need: policy.Device, Handler: http.HandlerFunc(s.ingest)})
	s.peopleRoutes()

	type r = Route
	h := func(f http.HandlerFunc) http.Handler { return f }
	for _, rt := range []Route{
		{Pattern: "GET /api/v1/codes", Need: policy.SignedIn, Action: "codes.read", Handler: h(s.listCodes)},
		{Pattern: "POST /api/v1/patients", Need: policy.PatientCreate, Action: "patient.create", Resource: "Patient", Interaction: "c", Handler: h(s.createPatient)},
		{Pattern: "GET /api/v1/patients", Need: policy.PatientList, Action: "patient.list", Resource: "Patient", Interaction: "s", Handler: h(s.listPatients)},
		{Pattern: "GET /api/v1/patients/{id}", Need: policy.PatientSummary, Action: "patient.read", Resource: "Patient", Interaction: "r", Handler: h(s.getPatient)},
		{Pattern: "PATCH /api/v1/patients/{id}", Need: policy.PatientWrite, Action: "patient.update", Resource: "Patient", Interaction: "u", Handler: h(s.updatePatient)},
		{Pattern: "GET /api/v1/patients/{id}/vitals", Need: policy.PatientSummary, Action: "vitals.read", Resource: "Observation", Interaction: "s", Handler: h(s.vitals)},
		{Pattern: "GET /api/v1/patients/{id}/observations", Need: policy.PatientRead, Action: "observation.read", Resource: "Observation", Interaction: "s", Handler: h(s.observations)},
		{Pattern: "POST /api/v1/patients/{id}/chart", Need: policy.PatientWrite, Action: "observation.chart", Resource: "Observation", Interaction: "c", Handler: h(s.chart)},
		{Pattern: "GET /api/v1/patients/{id}/waveforms", Need: policy.PatientRead, Action: "waveform.read", Resource: "Observation", Interaction: "s", Handler: h(s.waveforms)},
		{Pattern: "GET /api/v1/patients/{id}/stream", Need: policy.PatientRead, Action: "stream", Stream: true, Resource: "Observation", Interaction: "s", Handler: h(s.stream)},
		{Pattern: "GET /api/v1/patients/{id}/cgm", Need: policy.PatientRead, Action: "cgm.read", Resource: "Observation", Interaction: "s", Handler: h(s.cgmReport)},
		{Pattern: "GET /api/v1/patients/{id}/cgm/alerts", Need: policy.PatientSummary, Action: "cgm.alerts.read", Resource: "Observation", Interaction: "s", Handler: h(s.cgmAlerts)},
		{Pattern: "POST /api/v1/patients/{id}/break-glass", Need: policy.BreakGlass, Action: "breakglass.open", Resource: "Patient", Interaction: "r", Handler: h(s.breakGlass)},
		{Pattern: "GET /api/v1/ward", Need: policy.PatientList, Action: "ward.read", Resource: "Observation", Interaction: "s", Handler: h(s.ward)},
		{Pattern: "GET /api/v1/stream", Need: policy.PatientList, Action: "stream", Stream: true, Resource: "Observation", Interaction: "s", Handler: h(s.streamAll)},
		{Pattern: "POST /api/v1/devices", Need: policy.Admin, Action: "device.create", Resource: "Device", Interaction: "c", Handler: h(s.createDevice)},
		{Pattern: "GET /api/v1/devices", Need: policy.Admin, Action: "device.list", Resource: "Device", Interaction: "s", Handler: h(s.listDevices)},
		{Pattern: "GET /api/v1/devices/{id}", Need: policy.Admin, Action: "device.read", Resource: "Device", Interaction: "r", Handler: h(s.getDevice)},
		{Pattern: "PATCH /api/v1/devices/{id}", Need: policy.Admin, Action: "device.update", Resource: "Device", Interaction: "u", Handler: h(s.updateDevice)},
		{Pattern: "DELETE /api/v1/devices/{id}", Need: policy.Admin, Action: "device.delete", Resource: "Device", Interaction: "d", Handler: h(s.deleteDevice)},
		{Pattern: "POST /api/v1/devices/{id}/credentials", Need: policy.Admin, Action: "device.credentials.rotate", Resource: "Device", Interaction: "u", Handler: h(s.rotateCredentials)},
		{Pattern: "POST /api/v1/devices/{id}/revoke", Need: policy.Admin, Action: "device.credentials.revoke", Resource: "Device", Interaction: "u", Handler: h(s.revokeCredentials)},
		{Pattern: "GET /api/v1/cluster", Need: policy.Admin, Action: "cluster.read", Handler: h(s.cluster)},
	} {
		s.handle(rt)
	}
	s.alarmRoutes()
	if s.DeadLetters != nil {
		// Dead letters are undelivered Observations: patient data, but an operator's to
		// retry; recorded with the patients they name.
		dl := clinicalAdmin(http.StripPrefix("/api/v1/export/dead-letters", s.DeadLetters))
		s.handle(r{Pattern: "GET /api/v1/export/dead-letters", Need: policy.Admin, Action: "export.dead-letters.read", Handler: dl})
		s.handle(r{Pattern: "POST /api/v1/export/dead-letters/{id}/retry", Need: policy.Admin, Action: "export.dead-letters.retry", Handler: dl})
	}
	notFound := func(w http.ResponseWriter, r *http.Request) {
		writeProblem(w, r, http.StatusNotFound, "no such endpoint: see /api/v1/openapi.json")
	}
	m.HandleFunc("/api/", notFound)
	if s.FHIR != nil {
		// FHIR authenticates through the same credentials and applies the same policy.
		m.Handle("/fhir/r4/", s.fhirGate(s.FHIR))
	}
	if s.UI != nil {
		// The dashboard's files are public; every byte of data it shows comes through the API.
		m.Handle("/", s.UI)
	} else {
		m.HandleFunc("/", notFound)
	}
}

// ClusterStatus is what GET /api/v1/cluster returns.
type ClusterStatus struct {
	Node  string           `json:"node"`
	Store string           `json:"store"` // embedded or postgres
	Bus   string           `json:"bus"`   // memory or nats
	Owned map[string][]int `json:"owned"` // bus partitions this node owns, per subscriber group
}

func (s *Server) cluster(w http.ResponseWriter, r *http.Request) {
	if s.Cluster == nil {
		writeProblem(w, r, http.StatusNotImplemented, "cluster status is not available on this node")
		return
	}
	writeJSON(w, http.StatusOK, s.Cluster())
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	if s.Ready != nil {
		if err := s.Ready(); err != nil {
			writeProblem(w, r, http.StatusServiceUnavailable, err.Error())
			return
		}
	}
	writeJSON(w, 200, map[string]string{"status": "ready"})
}

// decodeBody reads a JSON object strictly: unknown fields and trailing data are errors.
func (s *Server) decodeBody(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, s.MaxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeProblem(w, r, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body larger than %d bytes", tooBig.Limit))
			return false
		}
		if bodyTimeout(w, r, err) {
			return false
		}
		writeProblem(w, r, http.StatusBadRequest, "invalid JSON body: "+err.Error())
		return false
	}
	if _, err := dec.Token(); err != io.EOF {
		writeProblem(w, r, http.StatusBadRequest, "invalid JSON body: trailing data after the object")
		return false
	}
	return true
}

func (s *Server) storeError(w http.ResponseWriter, r *http.Request, what string, err error) {
	if errors.Is(err, iomt.ErrNotFound) {
		writeProblem(w, r, http.StatusNotFound, what+" not found")
		return
	}
	if errors.Is(err, context.Canceled) {
		return
	}
	if textProblem(w, r, "", err) {
		return
	}
	s.log.Error("api store error", "path", r.URL.Path, "err", err)
	writeProblem(w, r, http.StatusInternalServerError, "internal error")
}

func limitParam(r *http.Request, def, max int) (int, error) {
	v := r.URL.Query().Get("limit")
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > max {
		return 0, fmt.Errorf("limit must be a whole number from 1 to %d, got %q", max, v)
	}
	return n, nil
}

// ---- patients ----

type patientIn struct {
	Name      string   `json:"name"`
	Family    string   `json:"family"`
	Given     []string `json:"given"`
	Gender    string   `json:"gender"`
	BirthDate string   `json:"birthDate"`
	MRN       string   `json:"mrn"`
	SpO2Scale int      `json:"spo2Scale"`
	// CGMLimits are the patient's CGM alert thresholds; absent: the defaults.
	CGMLimits iomt.GlucoseLimits `json:"cgmLimits"`
	// Location is where the patient lies (site/ward/room/bed, or home).
	Location string `json:"location"`
	// Team, if set, is a care team of the caller's that takes the patient into its care.
	Team string `json:"team"`
}

// checkBirthDate returns why a date of birth is refused, or "".
func checkBirthDate(d string) string {
	if d == "" {
		return ""
	}
	t, err := time.Parse(time.DateOnly, d)
	if err != nil {
		return fmt.Sprintf(`"birthDate" must be YYYY-MM-DD, got %q`, d)
	}
	if t.After(time.Now()) || t.Year() < 1880 {
		return fmt.Sprintf(`"birthDate" %s is not a plausible date of birth`, d)
	}
	return ""
}

// checkSpO2Scale returns why a NEWS2 SpO2 scale is refused, or "". The scale decides how the
// pipeline scores the patient's saturation, so nothing but the chart's two scales passes.
func checkSpO2Scale(scale int) string {
	if iomt.CheckSpO2Scale(scale) != nil {
		return fmt.Sprintf(`"spo2Scale" must be 1 (NEWS2 SpO2 scale 1, the default; 0 means the same) or 2 (scale 2, for hypercapnic respiratory failure with a prescribed target of 88–92 %%), got %d`, scale)
	}
	return ""
}

// checkCGMLimits returns why CGM alert limits are refused, or "".
func checkCGMLimits(l iomt.GlucoseLimits) string {
	if iomt.CheckGlucoseLimits(l) != nil {
		return fmt.Sprintf(`"cgmLimits" must give all four of urgentLow < low < high < urgentHigh in mg/dL, from 40 to 400 (or all 0 for the defaults 55/70/250/300), got %g/%g/%g/%g`,
			l.UrgentLow, l.Low, l.High, l.UrgentHigh)
	}
	return ""
}

// checkGender returns why an administrative gender is refused, or "".
func checkGender(g string) string {
	if iomt.CheckGender(g) != nil {
		return fmt.Sprintf(`"gender" must be one of %s (or left out), got %q`, strings.Join(iomt.Genders(), ", "), g)
	}
	return ""
}

// trimGiven trims the given names; an empty one is refused rather than dropped, as it is
// more likely a client's bug than a name.
func trimGiven(given []string) ([]string, string) {
	if len(given) == 0 {
		return nil, ""
	}
	out := make([]string, len(given))
	for i, g := range given {
		if out[i] = strings.TrimSpace(g); out[i] == "" {
			return nil, fmt.Sprintf(`"given" names cannot be empty (given[%d])`, i)
		}
	}
	return out, ""
}

func (s *Server) createPatient(w http.ResponseWriter, r *http.Request) {
	var in patientIn
	if !s.decodeBody(w, r, &in) {
		return
	}
	var whyGiven string
	in.Given, whyGiven = trimGiven(in.Given)
	in.Name, in.Family = strings.TrimSpace(in.Name), strings.TrimSpace(in.Family)
	if in.Name == "" {
		// Given only in parts: displayed as the given names, then the family name.
		in.Name = iomt.JoinName(in.Given, in.Family)
	}
	whyName := ""
	if in.Name == "" && whyGiven == "" {
		whyName = `"name" is required (or its parts, "family" and "given")`
	}
	for _, why := range []string{whyGiven, whyName, checkGender(in.Gender), checkBirthDate(in.BirthDate), checkSpO2Scale(in.SpO2Scale), checkCGMLimits(in.CGMLimits)} {
		if why != "" {
			writeProblem(w, r, http.StatusBadRequest, why)
			return
		}
	}
	id, err := iomt.NewID()
	if err != nil {
		s.storeError(w, r, "patient", err)
		return
	}
	acc := accessFrom(r.Context())
	p := iomt.Patient{ID: id, Tenant: acc.Principal.Tenant, Name: in.Name, Family: in.Family, Given: in.Given, Gender: in.Gender,
		BirthDate: in.BirthDate, MRN: strings.TrimSpace(in.MRN), SpO2Scale: in.SpO2Scale, CGMLimits: in.CGMLimits,
		Location: strings.TrimSpace(in.Location), CreatedAt: time.Now().UTC().Truncate(time.Millisecond)}
	team, why := s.admittingTeam(r, acc.Principal, p, strings.TrimSpace(in.Team))
	if why != "" {
		writeProblem(w, r, http.StatusUnprocessableEntity, why)
		return
	}
	if textProblem(w, r, "", iomt.CheckPatient(p)) {
		return
	}
	if err := s.Store.CreatePatient(r.Context(), p); err != nil {
		if errors.Is(err, iomt.ErrDuplicate) {
			writeProblem(w, r, http.StatusConflict, fmt.Sprintf("a patient with MRN %q already exists", p.MRN))
			return
		}
		s.storeError(w, r, "patient", err)
		return
	}
	if team != nil {
		// The patient is created first: a team never lists a patient that does not exist.
		team.Patients = append(team.Patients, p.ID)
		team.UpdatedAt = p.CreatedAt
		if err := s.Store.SaveCareTeam(r.Context(), *team); err != nil {
			s.storeError(w, r, "care team", err)
			return
		}
		s.Policy.NoteCareTeam(*team)
	}
	s.Policy.NotePatient(p)
	notePatients(r, p.ID)
	noteDetail(r, "spo2Scale", strconv.Itoa(p.SpO2Scale), "cgmLimits", fmt.Sprint(p.CGMLimits))
	if in.Team != "" {
		noteDetail(r, "team", in.Team)
	}
	w.Header().Set("Location", "/api/v1/patients/"+p.ID)
	writeJSON(w, http.StatusCreated, p)
}

// patientPatch changes a patient: a field present replaces the record's, an absent (or null)
// one keeps it. ID, tenant and creation time cannot change.
type patientPatch struct {
	Name      *string   `json:"name"`
	Family    *string   `json:"family"`
	Given     *[]string `json:"given"`
	Gender    *string   `json:"gender"`
	BirthDate *string   `json:"birthDate"`
	MRN       *string   `json:"mrn"`
	SpO2Scale *int      `json:"spo2Scale"`
	// CGMLimits replaces all four limits; all 0 goes back to the defaults.
	CGMLimits *iomt.GlucoseLimits `json:"cgmLimits"`
	// Location moves the patient (a transfer); teams that cover wards follow it.
	Location *string `json:"location"`
}

// updatePatient applies a patientPatch. A change of SpO2 scale changes how NEWS2 scores the
// patient, so the audit record says which fields changed and the scale before and after; the
// values of the identifying fields (and of the gender: personal, and not needed to trace a
// scoring change) stay out of the audit log.
func (s *Server) updatePatient(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	var in patientPatch
	if !s.decodeBody(w, r, &in) {
		return
	}
	cur, err := s.Store.Patient(r.Context(), id)
	if err == nil && cur.Tenant != accessFrom(r.Context()).Principal.Tenant {
		err = fmt.Errorf("patient %q of another tenant: %w", id, iomt.ErrNotFound)
	}
	if err != nil {
		s.storeError(w, r, "patient "+id, err)
		return
	}
	nw := cur
	if in.Name != nil {
		if nw.Name = strings.TrimSpace(*in.Name); nw.Name == "" {
			writeProblem(w, r, http.StatusBadRequest, `"name" cannot be empty`)
			return
		}
	}
	if in.Family != nil {
		nw.Family = strings.TrimSpace(*in.Family)
	}
	if in.Given != nil {
		var why string
		if nw.Given, why = trimGiven(*in.Given); why != "" {
			writeProblem(w, r, http.StatusBadRequest, why)
			return
		}
	}
	// A name that was its parts joined follows the parts, unless the patch sets the name too;
	// a name typed as text (say "Dr Ada King") stays as it is.
	if in.Name == nil && (in.Family != nil || in.Given != nil) && cur.Name == iomt.JoinName(cur.Given, cur.Family) {
		if joined := iomt.JoinName(nw.Given, nw.Family); joined != "" {
			nw.Name = joined
		}
	}
	if in.Gender != nil {
		if why := checkGender(*in.Gender); why != "" {
			writeProblem(w, r, http.StatusBadRequest, why)
			return
		}
		nw.Gender = *in.Gender
	}
	if in.BirthDate != nil {
		if why := checkBirthDate(*in.BirthDate); why != "" {
			writeProblem(w, r, http.StatusBadRequest, why)
			return
		}
		nw.BirthDate = *in.BirthDate
	}
	if in.MRN != nil {
		nw.MRN = strings.TrimSpace(*in.MRN)
	}
	if in.SpO2Scale != nil {
		if why := checkSpO2Scale(*in.SpO2Scale); why != "" {
			writeProblem(w, r, http.StatusBadRequest, why)
			return
		}
		nw.SpO2Scale = *in.SpO2Scale
	}
	if in.CGMLimits != nil {
		if why := checkCGMLimits(*in.CGMLimits); why != "" {
			writeProblem(w, r, http.StatusBadRequest, why)
			return
		}
		nw.CGMLimits = *in.CGMLimits
	}
	if in.Location != nil {
		nw.Location = strings.TrimSpace(*in.Location)
		if nw.Location != cur.Location {
			if why := s.transferAllowed(r, nw); why != "" {
				writeProblem(w, r, http.StatusForbidden, why)
				return
			}
		}
	}
	var changed []string
	for _, f := range []struct {
		name    string
		changed bool
	}{
		{"name", cur.Name != nw.Name}, {"family", cur.Family != nw.Family}, {"given", !slices.Equal(cur.Given, nw.Given)},
		{"gender", cur.Gender != nw.Gender}, {"birthDate", cur.BirthDate != nw.BirthDate}, {"mrn", cur.MRN != nw.MRN},
		{"spo2Scale", cur.SpO2Scale != nw.SpO2Scale}, {"cgmLimits", cur.CGMLimits != nw.CGMLimits},
		{"location", cur.Location != nw.Location},
	} {
		if f.changed {
			changed = append(changed, f.name)
		}
	}
	noteDetail(r, "changed", strings.Join(changed, ","))
	if nw.SpO2Scale != cur.SpO2Scale {
		noteDetail(r, "spo2ScaleFrom", strconv.Itoa(cur.SpO2Scale), "spo2ScaleTo", strconv.Itoa(nw.SpO2Scale))
	}
	if nw.CGMLimits != cur.CGMLimits {
		noteDetail(r, "cgmLimitsFrom", fmt.Sprint(cur.CGMLimits), "cgmLimitsTo", fmt.Sprint(nw.CGMLimits))
	}
	if nw.Location != cur.Location {
		noteDetail(r, "locationFrom", cur.Location, "locationTo", nw.Location)
	}
	if textProblem(w, r, "", iomt.CheckPatient(nw)) {
		return
	}
	if len(changed) > 0 {
		if err := s.Store.UpdatePatient(r.Context(), nw); err != nil {
			if errors.Is(err, iomt.ErrDuplicate) {
				writeProblem(w, r, http.StatusConflict, fmt.Sprintf("another patient has MRN %q", nw.MRN))
				return
			}
			s.storeError(w, r, "patient "+id, err)
			return
		}
		if nw, err = s.Store.Patient(r.Context(), id); err != nil {
			s.storeError(w, r, "patient "+id, err)
			return
		}
		s.Policy.NotePatient(nw)
	}
	writeJSON(w, http.StatusOK, nw)
}

func (s *Server) listPatients(w http.ResponseWriter, r *http.Request) {
	limit, err := limitParam(r, 1000, 10000)
	if err != nil {
		writeProblem(w, r, http.StatusBadRequest, err.Error())
		return
	}
	acc := accessFrom(r.Context())
	// The store's limit applies before the caller's scope: read all and cut after filtering,
	// so a clinician's list is not emptied by other teams' patients.
	ps, err := s.Store.Patients(r.Context(), iomt.PatientFilter{Tenant: acc.Principal.Tenant, MRN: r.URL.Query().Get("mrn")})
	if err != nil {
		s.storeError(w, r, "patients", err)
		return
	}
	out := []iomt.Patient{}
	for _, p := range ps {
		if acc.Scope.Has(p.ID) && len(out) < limit {
			out = append(out, p)
			notePatients(r, p.ID)
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"patients": out})
}

func (s *Server) getPatient(w http.ResponseWriter, r *http.Request) {
	p, err := s.Store.Patient(r.Context(), r.PathValue("id"))
	if err != nil {
		s.storeError(w, r, "patient "+r.PathValue("id"), err)
		return
	}
	writeJSON(w, http.StatusOK, p)
}

// ---- devices ----

type deviceIn struct {
	Patient     string            `json:"patient"`
	Kind        string            `json:"kind"`
	Identifiers []iomt.Identifier `json:"identifiers"` // serial number, UDI, asset tag
	Gateway     string            `json:"gateway"`     // the gateway device it sits behind
}

type mqttCreds struct {
	Host         string `json:"host,omitempty"`
	Username     string `json:"username"`
	Password     string `json:"password"`
	Topic        string `json:"topic"`
	CommandTopic string `json:"commandTopic"`
	AckTopic     string `json:"ackTopic"` // where the device acknowledges commands
}

type deviceOut struct {
	iomt.Device
	MQTT  *mqttCreds `json:"mqtt,omitempty"`
	Token string     `json:"token,omitempty"`
}

func (s *Server) createDevice(w http.ResponseWriter, r *http.Request) {
	var in deviceIn
	if !s.decodeBody(w, r, &in) {
		return
	}
	if kinds := iomt.DeviceKinds(); !slices.Contains(kinds, in.Kind) {
		writeProblem(w, r, http.StatusBadRequest, fmt.Sprintf(`"kind" %q is not a known device kind (%s)`, in.Kind, strings.Join(kinds, ", ")))
		return
	}
	if err := iomt.CheckIdentifiers(in.Identifiers); err != nil {
		if textProblem(w, r, `"identifiers": `, err) {
			return
		}
		writeProblem(w, r, http.StatusBadRequest, `"identifiers": `+strings.TrimPrefix(err.Error(), iomt.ErrInvalid.Error()+": "))
		return
	}
	if !checkTexts(w, r, textField{"patient", in.Patient, iomt.MaxNameLen}) {
		return
	}
	if in.Patient != "" {
		if _, err := s.Store.Patient(r.Context(), in.Patient); err != nil {
			if errors.Is(err, iomt.ErrNotFound) {
				writeProblem(w, r, http.StatusUnprocessableEntity, fmt.Sprintf("patient %q does not exist", in.Patient))
				return
			}
			s.storeError(w, r, "patient", err)
			return
		}
	}
	id, err := iomt.NewID()
	if err != nil {
		s.storeError(w, r, "device", err)
		return
	}
	d := iomt.Device{ID: id, Tenant: iomt.DefaultTenant, Kind: in.Kind, Patient: in.Patient, Identifiers: in.Identifiers,
		Gateway: strings.TrimSpace(in.Gateway), CreatedAt: time.Now().UTC().Truncate(time.Millisecond)}
	why, err := s.checkGateway(r.Context(), d, d.Gateway)
	if err != nil {
		s.storeError(w, r, "gateway", err)
		return
	}
	if why != "" {
		writeProblem(w, r, http.StatusUnprocessableEntity, why)
		return
	}
	creds, err := ingest.NewCredentials(&d)
	if err != nil {
		s.storeError(w, r, "device", err)
		return
	}
	if err := s.Store.CreateDevice(r.Context(), d); err != nil {
		s.storeError(w, r, "device", err)
		return
	}
	noteAudit(r, d.Patient, slog.String("device", d.ID), slog.String("kind", d.Kind), slog.String("gateway", d.Gateway))
	w.Header().Set("Location", "/api/v1/devices/"+d.ID)
	writeJSON(w, http.StatusCreated, s.deviceCredentials(d, creds))
}

func (s *Server) listDevices(w http.ResponseWriter, r *http.Request) {
	limit, err := limitParam(r, 1000, 10000)
	if err != nil {
		writeProblem(w, r, http.StatusBadRequest, err.Error())
		return
	}
	ds, err := s.Store.Devices(r.Context(), iomt.DeviceFilter{Tenant: iomt.DefaultTenant, Patient: r.URL.Query().Get("patient"), Limit: limit})
	if err != nil {
		s.storeError(w, r, "devices", err)
		return
	}
	out := make([]deviceView, len(ds))
	for i, d := range ds {
		out[i] = viewDevice(d)
		if d.Patient != "" {
			notePatients(r, d.Patient) // a device names the patient it is bound to
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"devices": out})
}

func (s *Server) getDevice(w http.ResponseWriter, r *http.Request) {
	d, err := s.Store.Device(r.Context(), r.PathValue("id"))
	if err != nil {
		s.storeError(w, r, "device "+r.PathValue("id"), err)
		return
	}
	noteAudit(r, d.Patient, slog.String("device", d.ID))
	writeJSON(w, http.StatusOK, viewDevice(d))
}

func (s *Server) listCodes(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"codes": s.Catalog.All()})
}
