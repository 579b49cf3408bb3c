package api

import (
	"bytes"
	"fmt"
	"math"
	"net/http"
	"time"

	"github.com/iomt/iomt"
	"github.com/iomt/iomt/analytics/glucose"
	"github.com/iomt/iomt/analytics/glucose/agpreport"
	"github.com/iomt/iomt/watch"
)

// cgmReport serves a patient's CGM metrics for a window (default: the last 14 days, the
// consensus minimum), as JSON or, with format=html, as the printable AGP report page.
func (s *Server) cgmReport(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	q := r.URL.Query()
	to := time.Now().UTC()
	from := to.Add(-14 * 24 * time.Hour)
	if q.Get("from") != "" || q.Get("to") != "" {
		var err error
		if from, to, err = window(r); err != nil {
			writeProblem(w, r, http.StatusBadRequest, err.Error())
			return
		}
	}
	if to.Sub(from) > 90*24*time.Hour {
		writeProblem(w, r, http.StatusBadRequest, "a CGM report covers at most 90 days")
		return
	}
	loc := time.UTC
	if tz := q.Get("tz"); tz != "" {
		var err error
		if loc, err = time.LoadLocation(tz); err != nil {
			writeProblem(w, r, http.StatusBadRequest, fmt.Sprintf(`"tz" must be an IANA time zone such as Europe/London, got %q`, tz))
			return
		}
	}
	format := q.Get("format")
	if format != "" && format != "json" && format != "html" {
		writeProblem(w, r, http.StatusBadRequest, fmt.Sprintf(`"format" must be json or html, got %q`, format))
		return
	}
	p, err := s.Store.Patient(r.Context(), id)
	if err != nil {
		s.storeError(w, r, "patient "+id, err)
		return
	}
	obs, err := s.Store.Observations(r.Context(), iomt.ObservationQuery{Patient: id, Code: watch.CGMCode, From: from, To: to})
	if err != nil {
		s.storeError(w, r, "observations", err)
		return
	}
	if len(obs) == 0 {
		writeProblem(w, r, http.StatusNotFound, fmt.Sprintf("no CGM readings (%s) for patient %s between %s and %s", watch.CGMCode, id, from.Format(time.RFC3339), to.Format(time.RFC3339)))
		return
	}
	rs := make([]glucose.Reading, len(obs))
	for i, o := range obs {
		rs[i] = glucose.Reading{Time: o.Time, MgdL: o.Value}
	}
	rs = glucose.Clean(rs)
	sum := glucose.Summarize(rs, loc)
	if format == "html" {
		var buf bytes.Buffer
		page := agpreport.Page{
			Source: fmt.Sprintf("iomt, patient %s, %s to %s", p.Name, from.Format(time.DateOnly), to.Format(time.DateOnly)), Location: loc, Generated: time.Now(),
			Subjects: []agpreport.Subject{{ID: p.Name, Summary: sum, AGP: glucose.AGP(rs, loc), Days: glucose.Daily(rs, loc)}},
		}
		if err := agpreport.Render(&buf, page); err != nil {
			s.storeError(w, r, "report", err)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write(buf.Bytes())
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"patient": id, "code": watch.CGMCode, "unit": "mg/dL", "from": from, "to": to, "timeZone": loc.String(),
		"summary": nanToNull(sum),
	})
}

// nanToNull re-encodes v as a JSON object with NaN and infinite numbers as null, since a
// metric the data cannot support is NaN and encoding/json refuses it.
func nanToNull(v glucose.Summary) map[string]any {
	out := map[string]any{
		"readings": v.Readings, "start": v.Start, "end": v.End, "days": v.Days,
	}
	for k, x := range map[string]float64{
		"mean": v.Mean, "sd": v.SD, "cv": v.CV, "gmi": v.GMI, "below_54": v.Below54, "below_70": v.Below70,
		"in_range_70_180": v.InRange, "above_180": v.Above180, "above_250": v.Above250,
		"active_percent": v.ActivePct, "mage": v.MAGE, "conga": v.CONGA, "modd": v.MODD, "sample_minutes": v.SampleStep,
	} {
		if math.IsNaN(x) || math.IsInf(x, 0) {
			out[k] = nil
		} else {
			out[k] = x
		}
	}
	q := make([]any, len(v.Quartiles))
	for i, x := range v.Quartiles {
		q[i] = x
		if math.IsNaN(x) {
			q[i] = nil
		}
	}
	out["quartiles"] = q
	return out
}

// CGMAlert is a CGM alert as the API and live streams show it.
type CGMAlert struct {
	Patient string `json:"patient"`
	glucose.Alert
}

// cgmAlerts lists a patient's recent CGM alerts, newest last.
func (s *Server) cgmAlerts(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if _, err := s.Store.Patient(r.Context(), id); err != nil {
		s.storeError(w, r, "patient "+id, err)
		return
	}
	out := []CGMAlert{}
	if s.CGMAlerts != nil {
		for _, a := range s.CGMAlerts(id) {
			out = append(out, CGMAlert{id, a})
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"patient": id, "alerts": out})
}
