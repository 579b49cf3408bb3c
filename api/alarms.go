package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/iomt/iomt"
	"github.com/iomt/iomt/alarm"
	"github.com/iomt/iomt/alarm/service"
	"github.com/iomt/iomt/policy"
)

// Alarms is what the API needs of the alarm service.
type Alarms interface {
	Acknowledge(ctx context.Context, id, who, why string) (iomt.Alarm, error)
	Resolve(ctx context.Context, id, who, why string) (iomt.Alarm, error)
	Silence(ctx context.Context, s alarm.Silence) ([]iomt.Alarm, error)
	SaveRules(ctx context.Context, tenant string, doc []byte, who string) (iomt.AlarmConfig, error)
	SaveRouting(ctx context.Context, doc []byte, who string) (iomt.AlarmConfig, error)
	Current(ctx context.Context, tenant, kind string) (iomt.AlarmConfig, error)
}

func (s *Server) alarmRoutes() {
	if s.Alarms == nil {
		return
	}
	h := func(f http.HandlerFunc) http.Handler { return f }
	for _, rt := range []Route{
		{Pattern: "GET /api/v1/alarms", Need: policy.PatientList, Action: "alarm.list", Resource: "Flag", Interaction: "s", Handler: h(s.listAlarms)},
		{Pattern: "GET /api/v1/alarms/{alarm}", Need: policy.PatientSummary, Action: "alarm.read", Resource: "Flag", Interaction: "r", Patient: s.alarmPatient, Handler: h(s.getAlarm)},
		{Pattern: "POST /api/v1/alarms/{alarm}/acknowledge", Need: policy.PatientWrite, Action: "alarm.acknowledge", Resource: "Flag", Interaction: "u", Patient: s.alarmPatient, Handler: h(s.alarmStep("acknowledge"))},
		{Pattern: "POST /api/v1/alarms/{alarm}/resolve", Need: policy.PatientWrite, Action: "alarm.resolve", Resource: "Flag", Interaction: "u", Patient: s.alarmPatient, Handler: h(s.alarmStep("resolve"))},
		{Pattern: "POST /api/v1/alarms/silence", Need: policy.PatientWrite, Action: "alarm.silence", Resource: "Flag", Interaction: "u", Patient: s.silencePatient, Handler: h(s.silenceAlarms)},
		{Pattern: "GET /api/v1/alarm-rules", Need: policy.Admin, Action: "alarm-rules.read", Handler: h(s.getAlarmConfig(service.KindRules))},
		{Pattern: "PUT /api/v1/alarm-rules", Need: policy.Admin, Action: "alarm-rules.update", Handler: h(s.putAlarmConfig(service.KindRules))},
		{Pattern: "GET /api/v1/alarm-routing", Need: policy.Admin, Action: "alarm-routing.read", Handler: h(s.getAlarmConfig(service.KindRouting))},
		{Pattern: "PUT /api/v1/alarm-routing", Need: policy.Admin, Action: "alarm-routing.update", Handler: h(s.putAlarmConfig(service.KindRouting))},
	} {
		s.handle(rt)
	}
}

// alarmPatient is the patient of the alarm a request names.
func (s *Server) alarmPatient(r *http.Request) (string, error) {
	a, err := s.Store.Alarm(r.Context(), r.PathValue("alarm"))
	if err != nil {
		return "", fmt.Errorf("alarm %q: %w", r.PathValue("alarm"), err)
	}
	return a.Patient, nil
}

// silencePatient is the patient a silence is for: the one it names, or its alarm's. The body
// is read here and put back for the handler.
func (s *Server) silencePatient(r *http.Request) (string, error) {
	body, err := io.ReadAll(io.LimitReader(r.Body, s.MaxBody))
	if err != nil {
		return "", fmt.Errorf("read silence: %w", err)
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	var in silenceIn
	if json.Unmarshal(body, &in) != nil {
		return "", nil // the handler explains what is wrong with the body
	}
	if in.Alarm == "" && in.Patient == "" {
		return "", fmt.Errorf(`%w: a silence needs "alarm" or "patient"`, iomt.ErrInvalid)
	}
	if in.Alarm != "" {
		a, err := s.Store.Alarm(r.Context(), in.Alarm)
		if err != nil {
			return "", fmt.Errorf("alarm %q: %w", in.Alarm, err)
		}
		if in.Patient != "" && in.Patient != a.Patient {
			return "", fmt.Errorf("alarm %q is not patient %q's: %w", in.Alarm, in.Patient, iomt.ErrNotFound)
		}
		return a.Patient, nil
	}
	return in.Patient, nil
}

// who is the signed-in person acting, as the alarm's history records them: their login.
// There is no free-text name: what the history says is who signed in.
func who(r *http.Request) string {
	p, _ := PrincipalFrom(r.Context())
	if p.Kind == policy.KindUser {
		return p.Name
	}
	return p.Actor()
}

func (s *Server) listAlarms(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := iomt.AlarmFilter{Tenant: q.Get("tenant"), Patient: q.Get("patient")}
	if v := q.Get("state"); v != "" {
		for _, st := range strings.Split(v, ",") {
			switch iomt.AlarmState(st) {
			case iomt.AlarmActive, iomt.AlarmAcknowledged, iomt.AlarmResolved:
				f.States = append(f.States, iomt.AlarmState(st))
			case "unresolved":
				f.States = append(f.States, iomt.AlarmActive, iomt.AlarmAcknowledged)
			default:
				writeProblem(w, r, http.StatusBadRequest, fmt.Sprintf("state must be active, acknowledged, resolved or unresolved (comma-separated), got %q", st))
				return
			}
		}
	}
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
	var err error
	if f.Limit, err = limitParam(r, 200, 10000); err != nil {
		writeProblem(w, r, http.StatusBadRequest, err.Error())
		return
	}
	acc := accessFrom(r.Context())
	if f.Patient != "" && !acc.Scope.Has(f.Patient) {
		f.Patients = []string{} // not one of the caller's: an empty list, as for a patient with none
	}
	as, err := s.Store.Alarms(r.Context(), f)
	if err != nil {
		s.storeError(w, r, "alarms", err)
		return
	}
	out := make([]iomt.Alarm, 0, len(as))
	for _, a := range as {
		if acc.Scope.Has(a.Patient) {
			out = append(out, a)
			notePatients(r, a.Patient)
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"alarms": out})
}

func (s *Server) getAlarm(w http.ResponseWriter, r *http.Request) {
	a, err := s.Store.Alarm(r.Context(), r.PathValue("alarm"))
	if err != nil {
		s.storeError(w, r, "alarm "+r.PathValue("alarm"), err)
		return
	}
	writeJSON(w, http.StatusOK, a)
}

type stepIn struct {
	Why string `json:"why"`
}

func (s *Server) alarmStep(op string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var in stepIn
		if !s.decodeBody(w, r, &in) {
			return
		}
		if !checkTexts(w, r, textField{"why", in.Why, iomt.MaxTextLen}) {
			return
		}
		f := s.Alarms.Acknowledge
		if op == "resolve" {
			f = s.Alarms.Resolve
		}
		a, err := f(r.Context(), r.PathValue("alarm"), who(r), in.Why)
		if err != nil {
			s.alarmError(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, a)
	}
}

type silenceIn struct {
	Alarm   string `json:"alarm"`
	Patient string `json:"patient"`
	Rule    string `json:"rule"`
	Device  string `json:"device"`
	For     string `json:"for"` // a Go duration, e.g. "10m"
	Why     string `json:"why"`
}

func (s *Server) silenceAlarms(w http.ResponseWriter, r *http.Request) {
	var in silenceIn
	if !s.decodeBody(w, r, &in) {
		return
	}
	if !checkTexts(w, r, textField{"alarm", in.Alarm, iomt.MaxNameLen}, textField{"patient", in.Patient, iomt.MaxNameLen},
		textField{"rule", in.Rule, iomt.MaxNameLen}, textField{"device", in.Device, iomt.MaxNameLen},
		textField{"why", in.Why, iomt.MaxTextLen}) {
		return
	}
	d, err := time.ParseDuration(in.For)
	if err != nil || d <= 0 {
		writeProblem(w, r, http.StatusBadRequest, fmt.Sprintf(`"for" must be a positive duration such as "10m", got %q`, in.For))
		return
	}
	if in.Alarm == "" && in.Patient == "" {
		writeProblem(w, r, http.StatusBadRequest, `a silence needs "alarm" or "patient"`)
		return
	}
	as, err := s.Alarms.Silence(r.Context(), alarm.Silence{
		Scope: alarm.Scope{Alarm: in.Alarm, Patient: in.Patient, Rule: in.Rule, Device: in.Device},
		Who:   who(r), Why: in.Why, Until: time.Now().Add(d),
	})
	if err != nil {
		s.alarmError(w, r, err)
		return
	}
	if as == nil {
		as = []iomt.Alarm{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"silenced": as})
}

func (s *Server) alarmError(w http.ResponseWriter, r *http.Request, err error) {
	var re *alarm.RuleError
	switch {
	case errors.Is(err, iomt.ErrNotFound):
		writeProblem(w, r, http.StatusNotFound, err.Error())
	case errors.Is(err, alarm.ErrInvalidTransition):
		writeProblem(w, r, http.StatusConflict, err.Error())
	case errors.Is(err, iomt.ErrDuplicate):
		writeProblem(w, r, http.StatusConflict, err.Error())
	case errors.As(err, &re):
		p := Problem{Status: http.StatusUnprocessableEntity, Detail: "the document has errors; nothing was saved"}
		for _, e := range flatten(err) {
			if errors.As(e, &re) {
				p.Errors = append(p.Errors, ProblemError{Rule: re.Rule, Field: re.Field, Detail: re.Err.Error()})
			}
		}
		writeProblemExt(w, r, p)
	case errors.Is(err, iomt.ErrInvalid):
		writeProblem(w, r, http.StatusUnprocessableEntity, err.Error())
	case errors.Is(err, service.ErrUnavailable):
		w.Header().Set("Retry-After", "2")
		writeProblem(w, r, http.StatusServiceUnavailable, err.Error())
	default:
		s.storeError(w, r, "alarm", err)
	}
}

// flatten lists the leaves of joined errors.
func flatten(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			if _, isRule := e.(*alarm.RuleError); isRule {
				out = append(out, e)
				continue
			}
			out = append(out, flatten(e)...)
		}
		return out
	}
	if u := errors.Unwrap(err); u != nil {
		return flatten(u)
	}
	return []error{err}
}

func (s *Server) getAlarmConfig(kind string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		tenant := ""
		if kind == service.KindRules {
			tenant = r.URL.Query().Get("tenant")
		}
		c, err := s.Alarms.Current(r.Context(), tenant, kind)
		if err != nil {
			if errors.Is(err, iomt.ErrNotFound) {
				writeProblem(w, r, http.StatusNotFound, err.Error()+"; the node's configured defaults apply")
				return
			}
			s.storeError(w, r, kind, err)
			return
		}
		w.Header().Set("Content-Type", "application/yaml")
		w.Header().Set("X-Iomt-Version", fmt.Sprint(c.Version))
		w.Header().Set("X-Iomt-Saved-By", c.Who)
		w.Header().Set("Last-Modified", c.Saved.UTC().Format(http.TimeFormat))
		_, _ = w.Write(c.Doc)
	}
}

func (s *Server) putAlarmConfig(kind string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		doc, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.MaxBody))
		if err != nil {
			if bodyTimeout(w, r, err) {
				return
			}
			writeProblem(w, r, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body larger than %d bytes", s.MaxBody))
			return
		}
		if !checkTexts(w, r, textField{"tenant", r.URL.Query().Get("tenant"), iomt.MaxNameLen}) {
			return
		}
		var c iomt.AlarmConfig
		if kind == service.KindRules {
			c, err = s.Alarms.SaveRules(r.Context(), r.URL.Query().Get("tenant"), doc, who(r))
		} else {
			c, err = s.Alarms.SaveRouting(r.Context(), doc, who(r))
		}
		if err != nil {
			s.alarmError(w, r, err)
			return
		}
		s.log.Info("alarm "+kind+" saved", "tenant", c.Tenant, "version", c.Version, "who", c.Who)
		writeJSON(w, http.StatusOK, map[string]any{"tenant": c.Tenant, "kind": c.Kind, "version": c.Version, "who": c.Who, "saved": c.Saved})
	}
}
