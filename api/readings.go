package api

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/iomt/iomt"
	"github.com/iomt/iomt/ingest"
)

// ingest accepts a SenML pack (JSON or CBOR) from a device holding an ingest token.
func (s *Server) ingest(w http.ResponseWriter, r *http.Request) {
	tok, ok := bearer(r)
	if !ok {
		w.Header().Set("WWW-Authenticate", `Bearer realm="iomt-devices"`)
		writeProblem(w, r, http.StatusUnauthorized, "missing device token: send Authorization: Bearer <device token>")
		return
	}
	src := ingest.SourceOf(r.RemoteAddr)
	if until, blocked := s.Throttle.Blocked(src); blocked {
		// The block itself was logged once, when it began.
		w.Header().Set("Retry-After", strconv.Itoa(int(time.Until(until).Seconds())+1))
		writeProblem(w, r, http.StatusTooManyRequests, "too many failed device authentications from this address: retry later")
		return
	}
	dev, err := s.Auth.Token(r.Context(), tok)
	if err != nil {
		if errors.Is(err, ingest.ErrBadCredentials) {
			// The reason names the device the token claims, never the token.
			device := ingest.TokenDevice(tok)
			s.log.Warn("http ingest refused", "remote", r.RemoteAddr, "device", device, "reason", err.Error())
			s.Throttle.Failed(src, device, "http")
			w.Header().Set("WWW-Authenticate", `Bearer realm="iomt-devices", error="invalid_token"`)
			writeProblem(w, r, http.StatusUnauthorized, "invalid device token")
			return
		}
		s.storeError(w, r, "device", err)
		return
	}
	s.ingestWith(w, r, dev.ID, "http", func(body []byte) (ingest.Result, error) {
		return s.Ingester.Ingest(r.Context(), dev, body, "http")
	})
}

// chart records observations a clinician charted for a patient (POST a SenML pack, as a
// device would; records are checked the same way). Who charted is in the audit log.
func (s *Server) chart(w http.ResponseWriter, r *http.Request) {
	p, err := s.Store.Patient(r.Context(), r.PathValue("id"))
	if err != nil {
		s.storeError(w, r, "patient "+r.PathValue("id"), err)
		return
	}
	s.ingestWith(w, r, ingest.ChartDevice, "chart", func(body []byte) (ingest.Result, error) {
		return s.Ingester.Chart(r.Context(), p, body)
	})
}

// ingestWith reads a SenML pack from the request and ingests it with do.
func (s *Server) ingestWith(w http.ResponseWriter, r *http.Request, device, transport string, do func([]byte) (ingest.Result, error)) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.MaxBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeProblem(w, r, http.StatusRequestEntityTooLarge, fmt.Sprintf("pack larger than %d bytes", tooBig.Limit))
			return
		}
		if bodyTimeout(w, r, err) {
			return
		}
		writeProblem(w, r, http.StatusBadRequest, "reading body: "+err.Error())
		return
	}
	res, err := do(body)
	switch {
	case errors.Is(err, ingest.ErrMalformed):
		writeProblemExt(w, r, Problem{Status: http.StatusBadRequest, Title: "Malformed SenML pack", Detail: err.Error()})
		return
	case errors.Is(err, ingest.ErrUnbound):
		writeProblemExt(w, r, Problem{Status: http.StatusConflict, Title: "Device not bound", Detail: err.Error()})
		return
	case err != nil:
		s.log.Error(transport+" ingest not stored", "device", device, "err", err)
		writeProblem(w, r, http.StatusServiceUnavailable, "not stored: server error, retry later")
		return
	}
	if res.Accepted == 0 && res.Duplicates == 0 && len(res.Refused) > 0 {
		writeProblemExt(w, r, Problem{
			Status: http.StatusUnprocessableEntity, Title: "No record accepted",
			Detail: res.Summary(1024), Refused: res.Refused,
		})
		return
	}
	writeJSON(w, http.StatusOK, res)
}

// window parses from/to (RFC 3339); to defaults to now and from to an hour before to.
func window(r *http.Request) (from, to time.Time, err error) {
	q := r.URL.Query()
	to = time.Now().UTC()
	if v := q.Get("to"); v != "" {
		if to, err = time.Parse(time.RFC3339Nano, v); err != nil {
			return from, to, fmt.Errorf(`"to" must be an RFC 3339 time such as 2026-01-02T15:04:05Z, got %q`, v)
		}
	}
	from = to.Add(-time.Hour)
	if v := q.Get("from"); v != "" {
		if from, err = time.Parse(time.RFC3339Nano, v); err != nil {
			return from, to, fmt.Errorf(`"from" must be an RFC 3339 time such as 2026-01-02T15:04:05Z, got %q`, v)
		}
	}
	if err := checkOrder(from, to); err != nil {
		return from, to, err
	}
	return from.UTC(), to.UTC(), nil
}

// checkOrder refuses a window whose start is not before its end.
func checkOrder(from, to time.Time) error {
	if !from.Before(to) {
		return fmt.Errorf(`"from" (%s) must be before "to" (%s)`, from.Format(time.RFC3339), to.Format(time.RFC3339))
	}
	return nil
}

type point struct {
	Time  time.Time `json:"time"`
	Value float64   `json:"value"`
}

// maxPoints bounds one response; ask for a step or a shorter window beyond it.
const maxPoints = 100000

func (s *Server) observations(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	q := r.URL.Query()
	name := q.Get("code")
	if name == "" {
		writeProblem(w, r, http.StatusBadRequest, `"code" is required, e.g. code=8867-4`)
		return
	}
	code, ok := s.Catalog.Lookup(name)
	if !ok {
		writeProblem(w, r, http.StatusBadRequest, fmt.Sprintf("unknown code %q: see /api/v1/codes", name))
		return
	}
	from, to, err := window(r)
	if err != nil {
		writeProblem(w, r, http.StatusBadRequest, err.Error())
		return
	}
	var step time.Duration
	if v := q.Get("step"); v != "" {
		if step, err = time.ParseDuration(v); err != nil || step < time.Second {
			writeProblem(w, r, http.StatusBadRequest, fmt.Sprintf(`"step" must be a duration of at least 1s such as 1m or 1h, got %q`, v))
			return
		}
		if to.Sub(from)/step > maxPoints {
			writeProblem(w, r, http.StatusBadRequest, fmt.Sprintf("%s / %s gives more than %d buckets: use a larger step", to.Sub(from), step, maxPoints))
			return
		}
	}
	if _, err := s.Store.Patient(r.Context(), id); err != nil {
		s.storeError(w, r, "patient "+id, err)
		return
	}
	oq := iomt.ObservationQuery{Patient: id, Code: code.ID, From: from, To: to, Step: step}
	out := map[string]any{"code": code.ID, "display": code.Display, "unit": code.Unit, "from": from, "to": to}
	if step > 0 {
		aggs, err := s.Store.Aggregates(r.Context(), oq)
		if err != nil {
			s.storeError(w, r, "observations", err)
			return
		}
		if aggs == nil {
			aggs = []iomt.Aggregate{}
		}
		out["step"] = step.String()
		out["points"] = aggs
		writeJSON(w, http.StatusOK, out)
		return
	}
	oq.Limit = maxPoints + 1
	obs, err := s.Store.Observations(r.Context(), oq)
	if err != nil {
		s.storeError(w, r, "observations", err)
		return
	}
	if len(obs) > maxPoints {
		writeProblem(w, r, http.StatusBadRequest, fmt.Sprintf("more than %d points in the window: narrow it or add step", maxPoints))
		return
	}
	pts := make([]point, len(obs))
	for i, o := range obs {
		pts[i] = point{o.Time, o.Value}
	}
	out["points"] = pts
	writeJSON(w, http.StatusOK, out)
}

type vital struct {
	Code    string    `json:"code"`
	Display string    `json:"display"`
	Value   float64   `json:"value"`
	Unit    string    `json:"unit"`
	Time    time.Time `json:"time"`
	Device  string    `json:"device"`
}

func (s *Server) vitals(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if _, err := s.Store.Patient(r.Context(), id); err != nil {
		s.storeError(w, r, "patient "+id, err)
		return
	}
	out, err := s.latest(r, id)
	if err != nil {
		s.storeError(w, r, "vitals", err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"patient": id, "vitals": out})
}

func (s *Server) waveforms(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	name := r.URL.Query().Get("code")
	code, ok := s.Catalog.Lookup(name)
	if !ok {
		writeProblem(w, r, http.StatusBadRequest, fmt.Sprintf("unknown or missing waveform code %q: see /api/v1/codes", name))
		return
	}
	from, to, err := window(r)
	if err != nil {
		writeProblem(w, r, http.StatusBadRequest, err.Error())
		return
	}
	if to.Sub(from) > time.Hour {
		writeProblem(w, r, http.StatusBadRequest, "a waveform window is at most 1h")
		return
	}
	if _, err := s.Store.Patient(r.Context(), id); err != nil {
		s.storeError(w, r, "patient "+id, err)
		return
	}
	ws, err := s.Store.Waveforms(r.Context(), iomt.WaveformQuery{Patient: id, Code: code.ID, From: from, To: to})
	if err != nil {
		s.storeError(w, r, "waveforms", err)
		return
	}
	segs := make([]segment, len(ws))
	for i, wf := range ws {
		segs[i] = segmentOf(wf)
	}
	writeJSON(w, http.StatusOK, map[string]any{"code": code.ID, "unit": code.Unit, "segments": segs})
}

// segment is a waveform as the API shows it: sample i was taken at Start + i·PeriodMS and is
// worth Samples[i]·Scale in Unit.
type segment struct {
	Patient  string    `json:"patient"`
	Code     string    `json:"code"`
	Unit     string    `json:"unit"`
	Start    time.Time `json:"start"`
	PeriodMS float64   `json:"periodMs"`
	Scale    float64   `json:"scale"`
	Device   string    `json:"device"`
	Samples  []int32   `json:"samples"`
}

func segmentOf(w iomt.Waveform) segment {
	return segment{w.Patient, w.Code, w.Unit, w.Start, float64(w.Period) / float64(time.Millisecond), w.Scale, w.Device, w.Samples}
}

type wardPatient struct {
	iomt.Patient
	Vitals []vital `json:"vitals"`
}

// ward lists every patient with their latest vitals: what a ward view needs in one request.
func (s *Server) ward(w http.ResponseWriter, r *http.Request) {
	acc := accessFrom(r.Context())
	ps, err := s.Store.Patients(r.Context(), iomt.PatientFilter{Tenant: acc.Principal.Tenant})
	if err != nil {
		s.storeError(w, r, "patients", err)
		return
	}
	out := make([]wardPatient, 0, len(ps))
	for _, p := range ps {
		if !acc.Scope.Has(p.ID) {
			continue
		}
		notePatients(r, p.ID)
		vs, err := s.latest(r, p.ID)
		if err != nil {
			s.storeError(w, r, "vitals", err)
			return
		}
		out = append(out, wardPatient{p, vs})
	}
	writeJSON(w, http.StatusOK, map[string]any{"patients": out})
}

func (s *Server) latest(r *http.Request, patient string) ([]vital, error) {
	obs, err := s.Store.Latest(r.Context(), patient)
	if err != nil {
		return nil, err
	}
	out := make([]vital, 0, len(obs))
	for _, o := range obs {
		c, _ := s.Catalog.ByID(o.Code)
		out = append(out, vital{Code: o.Code, Display: c.Display, Value: o.Value, Unit: o.Unit, Time: o.Time, Device: o.Device})
	}
	return out, nil
}
