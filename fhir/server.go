// Package fhir is iomt's FHIR R4 face: the mapping of patients, devices, readings and
// waveforms to FHIR resources (Mapper) and a REST API (New) that serves them at /fhir/r4/.
//
// Observations follow the R4 vital-signs profile: category vital-signs, LOINC codes with the
// IEEE 11073 MDC term as a further coding, UCUM units, blood pressure as the 85354-9 panel
// built from the systolic and diastolic readings of one device at one time. Waveforms are
// Observations with valueSampledData, one per device and window (10 s by default): the ECG one
// Observation with a component per lead, as FHIR's ECG example, pleth one of its own.
// Observation ids are deterministic: they encode patient, code, time and device, so a read
// by id finds the reading again and an exporter's retry never duplicates.
package fhir

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/iomt/iomt"
	"github.com/iomt/iomt/codes"
	"github.com/iomt/iomt/policy"
)

// Config wires the FHIR API to a node.
type Config struct {
	Store   iomt.Store
	Catalog *codes.Catalog
	// Principal returns who is calling, as the API layer authenticated the request (session,
	// API token, JWT, bootstrap token); required. Without one the answer is 401. GET metadata
	// and the SMART configuration are answered without it, as clients discover the server
	// before they sign in.
	Principal func(r *http.Request) (policy.Principal, bool)
	// Policy decides every interaction; required. The principal's tenant is the one served.
	Policy *policy.Policy
	// Auditor records every authenticated request before its response leaves the process
	// (the request waits for Record; if it fails, the answer is 503 and no data is sent). If
	// nil, records are logged to Logger instead.
	Auditor Auditor
	Logger  *slog.Logger
	// SMART describes the authorization server for /.well-known/smart-configuration; zero if
	// no OpenID provider is configured.
	SMART SMARTConfig
	// Prefix is the path the handler is mounted at; default "/fhir/r4". Requests keep it
	// (no http.StripPrefix needed); a request without it is routed as if stripped.
	Prefix string
	// BaseURL returns the absolute service base for links and Location headers (no trailing
	// slash). Default: http(s)://{Host}{Prefix}, scheme from the connection (forwarding
	// headers are not trusted).
	BaseURL func(r *http.Request) string
	// Now is the clock; time.Now if nil.
	Now func() time.Time
	// MRNSystem is the identifier system of medical record numbers; DefaultMRNSystem if "".
	MRNSystem string
	// WaveformWindow is the span of one waveform Observation; DefaultWaveformWindow if 0.
	WaveformWindow time.Duration
	// MaxBody bounds request bodies; default 1 MiB.
	MaxBody int64
	// DefaultCount and MaxCount bound search pages; default 50 and 1000.
	DefaultCount, MaxCount int
}

type server struct {
	Config
	m     Mapper
	smart []byte // the SMART configuration document: fixed once New returns
}

// New builds the FHIR R4 API handler.
func New(c Config) (http.Handler, error) {
	if c.Store == nil || c.Catalog == nil {
		return nil, errors.New("fhir: Store and Catalog are required")
	}
	if c.Principal == nil || c.Policy == nil {
		return nil, errors.New("fhir: Principal and Policy are required: the API serves patient data")
	}
	c.Logger = cmp.Or(c.Logger, slog.New(slog.DiscardHandler))
	if c.Auditor == nil {
		c.Auditor = logAuditor{c.Logger}
	}
	c.Prefix = strings.TrimSuffix(cmp.Or(c.Prefix, "/fhir/r4"), "/")
	if c.Now == nil {
		c.Now = time.Now
	}
	c.WaveformWindow = cmp.Or(c.WaveformWindow, DefaultWaveformWindow)
	if c.WaveformWindow < time.Millisecond {
		return nil, fmt.Errorf("fhir: waveform window %v too short", c.WaveformWindow)
	}
	c.MaxBody = cmp.Or(c.MaxBody, 1<<20)
	c.DefaultCount = cmp.Or(c.DefaultCount, 50)
	c.MaxCount = cmp.Or(c.MaxCount, 1000)
	smart, err := json.Marshal(c.SMART.document())
	if err != nil {
		return nil, fmt.Errorf("fhir: SMART configuration: %w", err)
	}
	s := &server{Config: c, m: Mapper{Catalog: c.Catalog, MRNSystem: c.MRNSystem}, smart: smart}
	return s, nil
}

// apiError is an error answered as an OperationOutcome.
type apiError struct {
	status int
	code   string // FHIR issue type
	msg    string
	expr   string
}

func (e *apiError) Error() string { return e.msg }

func errorf(status int, code, format string, a ...any) *apiError {
	return &apiError{status: status, code: code, msg: fmt.Sprintf(format, a...)}
}

func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	defer func() {
		// A bug in one handler answers 500 to its caller and leaves the server up.
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			s.Logger.Error("fhir handler panic", "path", r.URL.Path, "panic", fmt.Sprint(v))
			s.fail(w, r, errorf(http.StatusInternalServerError, "exception", "internal error"))
		}
	}()
	path := strings.Trim(strings.TrimPrefix(r.URL.Path, s.Prefix), "/")
	var seg []string
	if path != "" {
		seg = strings.Split(path, "/")
	}
	if len(seg) == 2 && seg[0] == ".well-known" && seg[1] == "smart-configuration" {
		s.smartConfiguration(w, r)
		return
	}
	if err := checkFormat(r); err != nil {
		s.fail(w, r, err)
		return
	}
	if len(seg) == 1 && seg[0] == "metadata" {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			s.fail(w, r, methodNotAllowed(w, "GET"))
			return
		}
		s.write(w, r, http.StatusOK, s.capability(r))
		return
	}
	pr, ok := s.Principal(r)
	if !ok || pr.Kind == "" {
		// Not audited here: the API layer that authenticates records failed sign-ins.
		w.Header().Set("WWW-Authenticate", `Bearer realm="iomt"`)
		s.fail(w, r, errorf(http.StatusUnauthorized, "login", "sign in first: send Authorization: Bearer <token>"))
		return
	}
	c := &call{pr: pr, now: s.Now(), action: "fhir." + strings.ToLower(r.Method)}
	r = r.WithContext(context.WithValue(r.Context(), callKey{}, c))
	// The response is held until the audit record is written, so no patient data leaves the
	// process unrecorded.
	buf := &heldResponse{header: http.Header{}}
	s.serveHeld(buf, r, seg)
	if err := s.Auditor.Record(r.Context(), s.auditEvent(r, c, buf.code())); err != nil {
		s.Logger.Error("fhir: audit record failed, response withheld", "path", r.URL.Path, "actor", pr.Actor(), "err", err)
		w.Header().Set("Retry-After", "5")
		s.fail(w, r, errorf(http.StatusServiceUnavailable, "transient", "the audit trail cannot be written, so no data is served: try again later"))
		return
	}
	buf.flush(w)
}

// serveHeld routes one authenticated request into the held response; a panic is answered
// there with 500, so that it is audited as a failure.
func (s *server) serveHeld(w *heldResponse, r *http.Request, seg []string) {
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			s.Logger.Error("fhir handler panic", "path", r.URL.Path, "panic", fmt.Sprint(v))
			w.reset()
			s.fail(w, r, errorf(http.StatusInternalServerError, "exception", "internal error"))
		}
	}()
	s.route(w, r, seg)
}

// Resource types the API serves.
var resourceTypes = []string{"Patient", "Device", "DeviceMetric", "Observation", "AuditEvent"}

func (s *server) route(w http.ResponseWriter, r *http.Request, seg []string) {
	if len(seg) == 0 {
		if r.Method == http.MethodPost {
			s.fail(w, r, errorf(http.StatusMethodNotAllowed, "not-supported", "batch and transaction Bundles are not supported: iomt's FHIR API accepts Patient and Device create/update one at a time"))
			return
		}
		s.fail(w, r, errorf(http.StatusNotFound, "not-found", "no resource type given: see %s/metadata", s.Prefix))
		return
	}
	typ := seg[0]
	if !slices.Contains(resourceTypes, typ) {
		s.fail(w, r, errorf(http.StatusNotFound, "not-supported", "resource type %q is not served here (supported: %s)", typ, strings.Join(resourceTypes, ", ")))
		return
	}
	var err error
	switch {
	case len(seg) == 1:
		switch r.Method {
		case http.MethodGet, http.MethodHead:
			err = s.search(w, r, typ, r.URL.Query())
		case http.MethodPost:
			err = s.create(w, r, typ)
		default:
			err = methodNotAllowed(w, allowType(typ))
		}
	case len(seg) == 2 && seg[1] == "_search":
		if r.Method != http.MethodPost {
			err = methodNotAllowed(w, "POST")
			break
		}
		var params url.Values
		if params, err = s.formParams(w, r); err == nil {
			err = s.search(w, r, typ, params)
		}
	case len(seg) == 2 && seg[1] == "$lastn":
		if typ != "Observation" {
			err = errorf(http.StatusNotFound, "not-supported", "$lastn is an Observation operation")
			break
		}
		params := r.URL.Query()
		switch r.Method {
		case http.MethodGet, http.MethodHead:
		case http.MethodPost:
			params, err = s.formParams(w, r)
		default:
			err = methodNotAllowed(w, "GET, POST")
		}
		if err == nil {
			err = s.lastN(w, r, params)
		}
	case len(seg) == 2 && strings.HasPrefix(seg[1], "$"):
		err = errorf(http.StatusNotFound, "not-supported", "operation %s is not supported (only Observation/$lastn)", seg[1])
	case len(seg) == 2:
		switch r.Method {
		case http.MethodGet, http.MethodHead:
			err = s.read(w, r, typ, seg[1])
		case http.MethodPut:
			err = s.update(w, r, typ, seg[1])
		default:
			err = methodNotAllowed(w, allowInstance(typ))
		}
	case len(seg) >= 3 && seg[2] == "_history":
		err = errorf(http.StatusNotFound, "not-supported", "iomt keeps no resource history (versioning: no-version)")
	default:
		err = errorf(http.StatusNotFound, "not-found", "no such endpoint %s", r.URL.Path)
	}
	if err != nil {
		s.fail(w, r, err)
	}
}

func allowType(typ string) string {
	if typ == "Patient" || typ == "Device" {
		return "GET, POST"
	}
	return "GET"
}

func allowInstance(typ string) string {
	if typ == "Patient" || typ == "Device" {
		return "GET, PUT"
	}
	return "GET"
}

func methodNotAllowed(w http.ResponseWriter, allow string) *apiError {
	return methodNotAllowedMsg(w, allow, "method not allowed here (allowed: "+allow+")")
}

// checkFormat refuses formats other than JSON: iomt speaks FHIR JSON only.
func checkFormat(r *http.Request) error {
	if f := r.URL.Query().Get("_format"); f != "" {
		switch f {
		case "json", "application/json", "application/fhir+json", "application/json+fhir":
		default:
			return errorf(http.StatusNotAcceptable, "not-supported", "_format %q is not supported: JSON only (_format=json)", f)
		}
		return nil
	}
	acc := r.Header.Get("Accept")
	if acc == "" {
		return nil
	}
	for _, part := range strings.Split(acc, ",") {
		mt, _, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		switch mt {
		case "*/*", "application/*", "application/json", "application/fhir+json", "application/json+fhir":
			return nil
		}
	}
	return errorf(http.StatusNotAcceptable, "not-supported", "Accept %q: iomt answers application/fhir+json only", acc)
}

// formParams reads a POST _search body (application/x-www-form-urlencoded) and adds the
// query string's parameters, as FHIR allows both.
func (s *server) formParams(w http.ResponseWriter, r *http.Request) (url.Values, error) {
	r.Body = http.MaxBytesReader(w, r.Body, s.MaxBody)
	if err := r.ParseForm(); err != nil {
		return nil, errorf(http.StatusBadRequest, "structure", "invalid form body: %v", err)
	}
	return r.Form, nil
}

func (s *server) base(r *http.Request) string {
	if s.BaseURL != nil {
		return strings.TrimSuffix(s.BaseURL(r), "/")
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host + s.Prefix
}

func (s *server) write(w http.ResponseWriter, r *http.Request, status int, v any) {
	var b []byte
	var err error
	if r.URL.Query().Get("_pretty") == "true" {
		b, err = json.MarshalIndent(v, "", "  ")
	} else {
		b, err = json.Marshal(v)
	}
	if err != nil {
		s.Logger.Error("fhir encode", "path", r.URL.Path, "err", err)
		status, b = http.StatusInternalServerError, []byte(`{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"exception","diagnostics":"cannot encode the response"}]}`)
	}
	w.Header().Set("Content-Type", ContentType+"; charset=utf-8")
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		_, _ = w.Write(b)
	}
}

// fail answers err as an OperationOutcome with the status it calls for.
func (s *server) fail(w http.ResponseWriter, r *http.Request, err error) {
	var ae *apiError
	var ie *InputError
	var te *iomt.TextError
	switch {
	case errors.As(err, &ae):
	case errors.As(err, &ie):
		ae = &apiError{status: ie.Status, code: ie.Code, msg: ie.Msg, expr: ie.Expression}
	case errors.As(err, &te):
		// The store refused a control character or over-long text the mapping let through.
		ae = errorf(http.StatusUnprocessableEntity, "value", "%s %s", te.Field, te.Reason)
	case errors.Is(err, iomt.ErrNotFound):
		ae = errorf(http.StatusNotFound, "not-found", "%v", err)
	case errors.Is(err, iomt.ErrDuplicate):
		ae = errorf(http.StatusConflict, "duplicate", "%v", err)
	case errors.Is(err, context.Canceled):
		ae = errorf(499, "timeout", "request cancelled")
	default:
		s.Logger.Error("fhir request failed", "path", r.URL.Path, "err", err)
		ae = errorf(http.StatusInternalServerError, "exception", "internal error")
	}
	if c, ok := r.Context().Value(callKey{}).(*call); ok {
		c.failed(ae.status, ae.msg)
	}
	oo := Outcome("error", ae.code, ae.msg)
	if ae.expr != "" {
		oo.Issue[0].Expression = []string{ae.expr}
	}
	if ae.status == 499 {
		return
	}
	s.write(w, r, ae.status, oo)
}

// readBody reads a resource body, checking its media type and size.
func (s *server) readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/fhir+json" && mt != "application/json" && mt != "application/json+fhir") {
			return nil, errorf(http.StatusUnsupportedMediaType, "not-supported", "Content-Type %q: send application/fhir+json", ct)
		}
	}
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.MaxBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, errorf(http.StatusRequestEntityTooLarge, "too-costly", "body larger than %d bytes", tooBig.Limit)
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			// Sent too slowly (the node's body deadline): the connection is closed after this.
			w.Header().Set("Connection", "close")
			return nil, errorf(http.StatusRequestTimeout, "timeout", "%v", err)
		}
		return nil, errorf(http.StatusBadRequest, "structure", "cannot read body: %v", err)
	}
	return b, nil
}
