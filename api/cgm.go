package api

import (
	"bytes"
	"fmt"
	"math"
	"net/http"
	"slices"
	"time"

	"github.com/iomt/iomt"
	"github.com/iomt/iomt/analytics/glucose"
	"github.com/iomt/iomt/analytics/glucose/agpreport"
	"github.com/iomt/iomt/watch"
	"github.com/iomt/iomt/wire/cgmcsv"
)

// reportDays is a CGM report's default span: 14 days, the consensus minimum (Battelino et al.
// 2019); maxReportDays its longest.
const (
	reportDays    = 14
	maxReportDays = 90
)

// reportWindow is the [from, to) of a CGM report: each bound an RFC 3339 time or a date
// (YYYY-MM-DD, midnight in loc; a date "to" includes that day); a bound left out is 14 days
// from the other (but not past now), and "to" defaults to now.
func reportWindow(fromS, toS string, loc *time.Location, now time.Time) (from, to time.Time, err error) {
	parse := func(name, v string, endOfDay bool) (time.Time, error) {
		if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
			return t, nil
		}
		d, err := time.ParseInLocation(time.DateOnly, v, loc)
		if err != nil {
			return time.Time{}, fmt.Errorf(`%q must be a date (2026-01-02) or an RFC 3339 time (2026-01-02T15:04:05Z), got %q`, name, v)
		}
		if endOfDay {
			d = d.AddDate(0, 0, 1)
		}
		return d, nil
	}
	switch {
	case fromS == "" && toS == "":
		to = now
		from = to.AddDate(0, 0, -reportDays)
	case fromS == "":
		if to, err = parse("to", toS, true); err != nil {
			return
		}
		from = to.AddDate(0, 0, -reportDays)
	case toS == "":
		if from, err = parse("from", fromS, false); err != nil {
			return
		}
		if to = from.AddDate(0, 0, reportDays); to.After(now) {
			to = now // no report reaches into the future
		}
	default:
		if from, err = parse("from", fromS, false); err != nil {
			return
		}
		if to, err = parse("to", toS, true); err != nil {
			return
		}
	}
	if err := checkOrder(from, to); err != nil {
		return from, to, err
	}
	if to.Sub(from) > maxReportDays*24*time.Hour {
		return from, to, fmt.Errorf("a CGM report covers at most %d days, asked for %s to %s", maxReportDays, from.Format(time.RFC3339), to.Format(time.RFC3339))
	}
	return from.UTC(), to.UTC(), nil
}

// cgmReport serves a patient's CGM metrics, AGP and daily profiles for a window (default: the
// last 14 days, the consensus minimum), as JSON or, with format=html, as the printable AGP
// report page.
func (s *Server) cgmReport(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	q := r.URL.Query()
	loc := time.UTC
	if tz := q.Get("tz"); tz != "" {
		var err error
		if loc, err = cgmcsv.ParseZone(tz); err != nil {
			writeProblem(w, r, http.StatusBadRequest, fmt.Sprintf(`"tz" must be an IANA time zone such as Europe/London or an offset such as UTC-05:00: %v`, err))
			return
		}
	}
	from, to, err := reportWindow(q.Get("from"), q.Get("to"), loc, time.Now())
	if err != nil {
		writeProblem(w, r, http.StatusBadRequest, err.Error())
		return
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
			// The window ends before "to": its last day is the one before a midnight "to".
			Source:   fmt.Sprintf("iomt, patient %s, %s to %s", p.Name, from.In(loc).Format(time.DateOnly), to.Add(-time.Nanosecond).In(loc).Format(time.DateOnly)),
			Location: loc, Generated: time.Now(),
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
		// The AGP's 15-minute slots that hold readings (an empty slot's percentiles are
		// undefined), and each day's readings and figures: what the HTML page draws.
		"agp":   slices.DeleteFunc(glucose.AGP(rs, loc), func(p glucose.AGPPoint) bool { return p.N == 0 }),
		"daily": glucose.Daily(rs, loc),
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
