package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/iomt/iomt"
	"github.com/iomt/iomt/alarm"
	"github.com/iomt/iomt/alarm/service"
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

func (s *Server) alarmRoutes(admin func(string, http.HandlerFunc)) {
	if s.Alarms == nil {
		return
	}
	queryPatient := func(r *http.Request) string { return r.URL.Query().Get("patient") }
	noPatient := func(*http.Request) string { return "" } // the alarm names it
	admin("GET /api/v1/alarms", s.auditWith("alarm.list", queryPatient, s.listAlarms))
	admin("GET /api/v1/alarms/{alarm}", s.auditWith("alarm.read", noPatient, s.getAlarm))
	admin("POST /api/v1/alarms/{alarm}/acknowledge", s.auditWith("alarm.acknowledge", noPatient, s.alarmStep("acknowledge")))
	admin("POST /api/v1/alarms/{alarm}/resolve", s.auditWith("alarm.resolve", noPatient, s.alarmStep("resolve")))
	admin("POST /api/v1/alarms/silence", s.auditWith("alarm.silence", noPatient, s.silenceAlarms))
	admin("GET /api/v1/alarm-rules", s.getAlarmConfig(service.KindRules))
	admin("PUT /api/v1/alarm-rules", s.putAlarmConfig(service.KindRules))
	admin("GET /api/v1/alarm-routing", s.getAlarmConfig(service.KindRouting))
	admin("PUT /api/v1/alarm-routing", s.putAlarmConfig(service.KindRouting))
}

// who is the authenticated caller, with the clinician they name ("admin/ann") while user
// accounts do not exist yet.
func who(r *http.Request, by string) string {
	p, _ := PrincipalFrom(r.Context())
	if by = strings.TrimSpace(by); by != "" {
		return p.Subject + "/" + by
	}
	return p.Subject
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
	as, err := s.Store.Alarms(r.Context(), f)
	if err != nil {
		s.storeError(w, r, "alarms", err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"alarms": as})
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
	By  string `json:"by"` // the clinician acting, recorded with the caller
}

func (s *Server) alarmStep(op string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var in stepIn
		if !s.decodeBody(w, r, &in) {
			return
		}
		if !checkTexts(w, r, textField{"by", in.By, iomt.MaxNameLen}, textField{"why", in.Why, iomt.MaxTextLen}) {
			return
		}
		f := s.Alarms.Acknowledge
		if op == "resolve" {
			f = s.Alarms.Resolve
		}
		a, err := f(r.Context(), r.PathValue("alarm"), who(r, in.By), in.Why)
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
	By      string `json:"by"`
}

func (s *Server) silenceAlarms(w http.ResponseWriter, r *http.Request) {
	var in silenceIn
	if !s.decodeBody(w, r, &in) {
		return
	}
	if !checkTexts(w, r, textField{"alarm", in.Alarm, iomt.MaxNameLen}, textField{"patient", in.Patient, iomt.MaxNameLen},
		textField{"rule", in.Rule, iomt.MaxNameLen}, textField{"device", in.Device, iomt.MaxNameLen},
		textField{"by", in.By, iomt.MaxNameLen}, textField{"why", in.Why, iomt.MaxTextLen}) {
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
		Who:   who(r, in.By), Why: in.Why, Until: time.Now().Add(d),
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
		if !checkTexts(w, r, textField{"by", r.URL.Query().Get("by"), iomt.MaxNameLen}, textField{"tenant", r.URL.Query().Get("tenant"), iomt.MaxNameLen}) {
			return
		}
		var c iomt.AlarmConfig
		if kind == service.KindRules {
			c, err = s.Alarms.SaveRules(r.Context(), r.URL.Query().Get("tenant"), doc, who(r, r.URL.Query().Get("by")))
		} else {
			c, err = s.Alarms.SaveRouting(r.Context(), doc, who(r, r.URL.Query().Get("by")))
		}
		if err != nil {
			s.alarmError(w, r, err)
			return
		}
		s.log.Info("alarm "+kind+" saved", "tenant", c.Tenant, "version", c.Version, "who", c.Who)
		writeJSON(w, http.StatusOK, map[string]any{"tenant": c.Tenant, "kind": c.Kind, "version": c.Version, "who": c.Who, "saved": c.Saved})
	}
}
