package fhir

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/iomt/iomt"
	"github.com/iomt/iomt/codes"
	"github.com/iomt/iomt/policy"
)

// results is a search's matches, materialised page by page: counting is cheap, building a
// resource (a waveform window, say) is not. Matches are filtered to what the caller may see
// before they are counted, so totals and paging never show that hidden ones exist.
type results struct {
	n   int
	get func(i int) (id string, res any, err error)
	// patient returns the patient whose data match i is ("" for none), for the audit record.
	patient func(i int) string
}

func (s *server) search(w http.ResponseWriter, r *http.Request, typ string, q url.Values) error {
	c := callOf(r)
	c.act("fhir." + strings.ToLower(typ) + ".search")
	var spec paramSpec
	switch typ {
	case "Patient":
		spec = paramSpec{params: set("identifier", "name", "birthdate")}
	case "Device":
		spec = paramSpec{params: set("patient", "type", "identifier")}
	case "DeviceMetric":
		spec = paramSpec{params: set("source", "type")}
	case "Observation":
		spec = paramSpec{params: set("patient", "subject", "subject:Patient", "code", "combo-code", "category", "date", "_lastUpdated", "device"), sorts: set("date")}
	case "AuditEvent":
		spec = paramSpec{params: auditParams}
	}
	sp, err := s.checkParams(r, typ, q, spec)
	if err != nil {
		return err
	}
	used := url.Values(maps.Clone(sp.raw))
	if sp.offset > 0 {
		used.Set("_offset", strconv.Itoa(sp.offset))
	}
	c.query = used.Encode()
	if typ == "AuditEvent" {
		if err := s.require(r, policy.Request{Need: policy.Audit, Resource: "AuditEvent", Interaction: "s"}, nil); err != nil {
			return err
		}
		b, err := s.searchAudit(r, sp)
		if err != nil {
			return err
		}
		s.write(w, r, http.StatusOK, b)
		return nil
	}
	var res results
	switch typ {
	case "Patient":
		res, err = s.searchPatients(r, sp.raw)
	case "Device":
		res, err = s.searchDevices(r, sp.raw)
	case "DeviceMetric":
		res, err = s.searchDeviceMetrics(r, sp.raw)
	case "Observation":
		res, err = s.searchObservations(r, sp.raw, sp)
	}
	if err != nil {
		return err
	}
	b, err := s.page(r, typ, sp, res)
	if err != nil {
		return err
	}
	s.write(w, r, http.StatusOK, b)
	return nil
}

func set(names ...string) map[string]bool {
	m := make(map[string]bool, len(names))
	for _, n := range names {
		m[n] = true
	}
	return m
}

// page builds the searchset Bundle of one page with self, first, previous, next and last links.
func (s *server) page(r *http.Request, typ string, sp searchParams, res results) (Bundle, error) {
	total := res.n
	now := dateTime(s.Now())
	b := Bundle{ResourceType: "Bundle", Type: "searchset", Total: &total, Timestamp: now, Meta: &Meta{LastUpdated: now}}
	base := s.base(r) + "/" + typ
	link := func(rel string, offset int) {
		v := url.Values{}
		for k, vals := range sp.raw {
			v[k] = vals
		}
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
	if sp.count > 0 {
		link("first", 0)
		if sp.offset > 0 {
			link("previous", max(0, sp.offset-sp.count))
		}
		if sp.offset+sp.count < total {
			link("next", sp.offset+sp.count)
		}
		last := 0
		if total > 0 {
			last = (total - 1) / sp.count * sp.count
		}
		link("last", last)
	}
	end := min(total, sp.offset+sp.count)
	for i := sp.offset; i < end; i++ {
		id, rsc, err := res.get(i)
		if err != nil {
			return b, err
		}
		if res.patient != nil {
			s.returned(r, res.patient(i))
		}
		b.Entry = append(b.Entry, BundleEntry{FullURL: base + "/" + id, Resource: rsc, Search: &BundleEntrySearch{Mode: "match"}})
	}
	return b, nil
}

// splitOr splits a parameter value on commas (OR), honouring \, escapes.
func splitOr(v string) []string {
	var out []string
	var cur strings.Builder
	for i := 0; i < len(v); i++ {
		if v[i] == '\\' && i+1 < len(v) {
			i++
			cur.WriteByte(v[i])
			continue
		}
		if v[i] == ',' {
			out = append(out, cur.String())
			cur.Reset()
			continue
		}
		cur.WriteByte(v[i])
	}
	return append(out, cur.String())
}

// refID reads a reference parameter: "Type/id", "id" or an absolute URL ending in Type/id.
func refID(typ, v string) (string, error) {
	if i := strings.LastIndex(v, "/"+typ+"/"); i >= 0 {
		v = v[i+1:]
	}
	id := strings.TrimPrefix(v, typ+"/")
	if !ValidID(id) {
		return "", errorf(http.StatusBadRequest, "value", "%q is not a reference to a %s", v, typ)
	}
	return id, nil
}

// tokenMatch applies a token parameter (system|code, code, system|, |code) to codings.
func tokenMatch(tok string, cs []Coding) bool {
	sys, code, hasSys := strings.Cut(tok, "|")
	for _, c := range cs {
		switch {
		case !hasSys:
			if c.Code == tok {
				return true
			}
		case code == "":
			if c.System == sys {
				return true
			}
		case c.Code == code && c.System == sys:
			return true
		}
	}
	return false
}

// anyToken reports whether every parameter value (AND) has a token (OR) matching cs.
func anyToken(vals []string, cs []Coding) bool {
	for _, v := range vals {
		ok := false
		for _, tok := range splitOr(v) {
			ok = ok || tokenMatch(tok, cs)
		}
		if !ok {
			return false
		}
	}
	return true
}

// readEach reads the resources an _id parameter (comma = OR) names; unknown ids are skipped.
func readEach[T any](ids string, read func(id string) (T, error)) ([]T, error) {
	var out []T
	for _, id := range splitOr(ids) {
		v, err := read(id)
		if err == nil {
			out = append(out, v)
		} else if !isNotFound(err) {
			return nil, err
		}
	}
	return out, nil
}

// ---- Patient, Device, DeviceMetric ----

func (s *server) searchPatients(r *http.Request, q map[string][]string) (results, error) {
	scope, err := s.patientScope(r, "Patient", q)
	if err != nil {
		return results{}, err
	}
	tenant := callOf(r).tenant()
	var ps []iomt.Patient
	if ids, ok := q["_id"]; ok {
		if ps, err = readEach(ids[0], func(id string) (iomt.Patient, error) { return s.patient(r, id) }); err != nil {
			return results{}, err
		}
	} else {
		f := iomt.PatientFilter{Tenant: tenant}
		if v, ok := q["identifier"]; ok {
			if len(v) > 1 || strings.Contains(v[0], ",") {
				return results{}, errorf(http.StatusBadRequest, "not-supported", "identifier takes one value")
			}
			mrn, err := s.mrnToken(v[0])
			if err != nil {
				return results{}, err
			}
			f.MRN = mrn
		}
		if ps, err = s.Store.Patients(r.Context(), f); err != nil {
			return results{}, fmt.Errorf("fhir: search patients: %w", err)
		}
	}
	var preds []datePred
	for _, v := range q["birthdate"] {
		p, err := parseDatePred("birthdate", v)
		if err != nil {
			return results{}, err
		}
		preds = append(preds, p)
	}
	ps = slices.DeleteFunc(ps, func(p iomt.Patient) bool {
		if p.Tenant != tenant || !scope.Has(p.ID) {
			return true
		}
		for _, v := range q["name"] {
			if !nameMatch(p.Name, splitOr(v)) && !nameMatch(p.Family, splitOr(v)) && !slices.ContainsFunc(p.Given, func(g string) bool { return nameMatch(g, splitOr(v)) }) {
				return true
			}
		}
		if len(preds) > 0 {
			d, err := time.Parse(time.DateOnly, p.BirthDate)
			if err != nil {
				return true
			}
			for _, pr := range preds {
				if !pr.match(d) {
					return true
				}
			}
		}
		return false
	})
	slices.SortFunc(ps, func(a, b iomt.Patient) int { return cmp.Compare(a.ID, b.ID) })
	return results{n: len(ps), get: func(i int) (string, any, error) { return ps[i].ID, s.m.Patient(ps[i]), nil },
		patient: func(i int) string { return ps[i].ID }}, nil
}

// nameMatch is FHIR's string search: the name or any word of it starts with a value,
// ignoring case.
func nameMatch(name string, vals []string) bool {
	n := strings.ToLower(name)
	for _, v := range vals {
		v = strings.ToLower(strings.TrimSpace(v))
		if strings.HasPrefix(n, v) {
			return true
		}
		for _, word := range strings.Fields(n) {
			if strings.HasPrefix(word, v) {
				return true
			}
		}
	}
	return false
}

func isNotFound(err error) bool {
	var ae *apiError
	return errors.As(err, &ae) && ae.status == http.StatusNotFound
}

// devices finds the tenant's devices a search names; the caller applies the policy.
func (s *server) devices(r *http.Request, q map[string][]string) ([]iomt.Device, error) {
	tenant := callOf(r).tenant()
	var ds []iomt.Device
	if ids, ok := q["_id"]; ok {
		var err error
		if ds, err = readEach(ids[0], func(id string) (iomt.Device, error) { return s.device(r, id) }); err != nil {
			return nil, err
		}
	} else {
		f := iomt.DeviceFilter{Tenant: tenant}
		if v, ok := q["patient"]; ok {
			if len(v) > 1 || strings.Contains(v[0], ",") {
				return nil, errorf(http.StatusBadRequest, "not-supported", "patient takes one value")
			}
			id, err := refID("Patient", v[0])
			if err != nil {
				return nil, err
			}
			f.Patient = id
		}
		var err error
		if ds, err = s.Store.Devices(r.Context(), f); err != nil {
			return nil, fmt.Errorf("fhir: search devices: %w", err)
		}
	}
	ds = slices.DeleteFunc(ds, func(d iomt.Device) bool {
		if d.Tenant != tenant {
			return true
		}
		for _, v := range q["patient"] {
			if id, _ := refID("Patient", v); id != d.Patient {
				return true
			}
		}
		return !anyToken(q["type"], kindConcept(d.Kind).Coding) || !anyToken(q["identifier"], identifierCodings(d.Identifiers))
	})
	slices.SortFunc(ds, func(a, b iomt.Device) int { return cmp.Compare(a.ID, b.ID) })
	return ds, nil
}

// identifierCodings lets tokenMatch apply an identifier token (system|value, value, system|,
// |value) to identifiers, as to codings.
func identifierCodings(ids []iomt.Identifier) []Coding {
	out := make([]Coding, len(ids))
	for i, id := range ids {
		out[i] = Coding{System: id.System, Code: id.Value}
	}
	return out
}

func (s *server) searchDevices(r *http.Request, q map[string][]string) (results, error) {
	visible, err := s.deviceFilter(r, "Device", q)
	if err != nil {
		return results{}, err
	}
	ds, err := s.devices(r, q)
	if err != nil {
		return results{}, err
	}
	ds = slices.DeleteFunc(ds, func(d iomt.Device) bool { return !visible(d) })
	return results{n: len(ds), get: func(i int) (string, any, error) { return ds[i].ID, s.m.Device(ds[i]), nil },
		patient: func(i int) string { return ds[i].Patient }}, nil
}

func (s *server) searchDeviceMetrics(r *http.Request, q map[string][]string) (results, error) {
	visible, err := s.deviceFilter(r, "DeviceMetric", q)
	if err != nil {
		return results{}, err
	}
	type metric struct {
		dm      DeviceMetric
		patient string
	}
	var dms []metric
	if ids, ok := q["_id"]; ok {
		if dms, err = readEach(ids[0], func(id string) (metric, error) {
			dm, d, err := s.deviceMetric(r, id)
			if err == nil && !visible(d) {
				err = notFound("DeviceMetric", id)
			}
			return metric{dm, d.Patient}, err
		}); err != nil {
			return results{}, err
		}
	} else {
		dq := map[string][]string{}
		if v, ok := q["source"]; ok {
			id, err := refID("Device", v[0])
			if err != nil {
				return results{}, err
			}
			dq["_id"] = []string{id}
		}
		ds, err := s.devices(r, dq)
		if err != nil {
			return results{}, err
		}
		for _, d := range ds {
			if !visible(d) {
				continue
			}
			for _, dm := range s.m.DeviceMetrics(d) {
				dms = append(dms, metric{dm, d.Patient})
			}
		}
	}
	dms = slices.DeleteFunc(dms, func(m metric) bool { return !anyToken(q["type"], m.dm.Type.Coding) })
	return results{n: len(dms), get: func(i int) (string, any, error) { return dms[i].dm.ID, dms[i].dm, nil },
		patient: func(i int) string { return dms[i].patient }}, nil
}

// ---- Observation ----

// cand is a kind of Observation a search may return.
type cand struct {
	c    codes.Code // the Observation's code: the panel's for KindBPPanel, CodeECG for the ECG
	kind ObsKind
	// leads, for the ECG: the leads whose windows match (the Observation holds every lead).
	leads []string
}

// obsHit is one matching Observation before it is built.
type obsHit struct {
	patient  string // set by searches of many patients
	t        time.Time
	code     string
	device   string
	kind     ObsKind
	obs, dia *iomt.Observation // into the store's answer: hits stay small to sort
	segs     []iomt.Waveform
}

// candidates lists the Observation kinds matching the code, combo-code and category
// parameters (each a list of AND-ed values of OR-ed tokens).
//
// The ECG is one Observation per device and window (code CodeECG, a component per lead). Its
// code parameter also matches the leads' codes, so that a search by a lead's code (which used
// to be an Observation's code) still finds the ECGs holding that lead; combo-code matches
// them as component codes, as FHIR defines it.
func (s *server) candidates(q map[string][]string, includeWaveforms bool) []cand {
	var out []cand
	ecg := -1 // index of the ECG's cand in out
	for _, c := range s.Catalog.All() {
		cat := Category(c)
		if cat == "" || (c.Kind == codes.Waveform && !includeWaveforms) {
			continue
		}
		if IsECGLead(c) {
			cs := append(ecgConcept().Coding, ecgLeadConcept(c).Coding...)
			if !anyToken(q["category"], categoryConcept(cat)[0].Coding) || !anyToken(q["code"], cs) || !anyToken(q["combo-code"], cs) {
				continue
			}
			if ecg < 0 {
				group, _ := s.Catalog.ByID(CodeECG)
				ecg = len(out)
				out = append(out, cand{c: group, kind: KindWaveform})
			}
			out[ecg].leads = append(out[ecg].leads, c.ID)
			continue
		}
		kind := KindReading
		switch c.Kind {
		case codes.Panel:
			if c.ID != CodeBPPanel {
				continue
			}
			kind = KindBPPanel
		case codes.Waveform:
			kind = KindWaveform
		}
		cc := s.m.codeConcept(c)
		if !anyToken(q["code"], cc.Coding) || !anyToken(q["category"], categoryConcept(cat)[0].Coding) {
			continue
		}
		combo := cc.Coding
		for _, comp := range c.Components {
			if cc, ok := s.Catalog.ByID(comp); ok {
				combo = append(combo, s.m.codeConcept(cc).Coding...)
			}
		}
		if !anyToken(q["combo-code"], combo) {
			continue
		}
		out = append(out, cand{c: c, kind: kind})
	}
	return out
}

// collect fetches the hits of cands for one patient in [from, to) from the store. stored
// names the codes the patient has readings of (from Latest), so absent codes cost nothing.
func (s *server) collect(ctx context.Context, patient string, cands []cand, stored map[string]bool, from, to time.Time) ([]obsHit, error) {
	var hits []obsHit
	want := make(map[string]bool)
	bp := false
	for _, c := range cands {
		want[c.c.ID] = true
		bp = bp || c.c.ID == CodeBPPanel || c.c.ID == CodeSystolic || c.c.ID == CodeDiastolic
	}
	query := func(code string) ([]iomt.Observation, error) {
		if !stored[code] {
			return nil, nil
		}
		obs, err := s.Store.Observations(ctx, iomt.ObservationQuery{Patient: patient, Code: code, From: from, To: to})
		if err != nil {
			return nil, fmt.Errorf("fhir: search observations of %s: %w", code, err)
		}
		return obs, nil
	}
	for _, c := range cands {
		switch {
		case c.kind == KindReading && c.c.ID != CodeSystolic && c.c.ID != CodeDiastolic:
			obs, err := query(c.c.ID)
			if err != nil {
				return nil, err
			}
			hits = slices.Grow(hits, len(obs))
			for i := range obs {
				o := &obs[i]
				hits = append(hits, obsHit{t: o.Time, code: o.Code, device: o.Device, kind: KindReading, obs: o})
			}
		case c.kind == KindWaveform:
			wto := to
			if !to.IsZero() {
				wto = to.Add(s.WaveformWindow) // whole windows that start before to
			}
			segs, err := s.waveforms(ctx, patient, c.c.ID, from, wto)
			if err != nil {
				return nil, err
			}
			matching := segs
			if c.leads != nil {
				// Windows holding a matching lead; the Observation is built from all leads.
				matching = slices.DeleteFunc(slices.Clone(segs), func(w iomt.Waveform) bool { return !slices.Contains(c.leads, w.Code) })
			}
			for _, k := range s.m.WaveformWindows(matching, s.WaveformWindow) {
				hits = append(hits, obsHit{t: k.Start, code: k.Code, device: k.Device, kind: KindWaveform, segs: segs})
			}
		}
	}
	if bp {
		sys, err := query(CodeSystolic)
		if err != nil {
			return nil, err
		}
		dia, err := query(CodeDiastolic)
		if err != nil {
			return nil, err
		}
		pairs, rest := PairBloodPressure(append(sys, dia...))
		if want[CodeBPPanel] {
			hits = slices.Grow(hits, len(pairs))
			for i := range pairs {
				p := &pairs[i]
				hits = append(hits, obsHit{t: p[0].Time, code: CodeBPPanel, device: p[0].Device, kind: KindBPPanel, obs: &p[0], dia: &p[1]})
			}
		}
		for i := range rest {
			if o := &rest[i]; want[o.Code] {
				hits = append(hits, obsHit{t: o.Time, code: o.Code, device: o.Device, kind: KindReading, obs: o})
			}
		}
	}
	return hits, nil
}

// waveforms reads the segments behind the waveform Observations of code in [from, to): for
// the ECG (any lead), those of every lead.
func (s *server) waveforms(ctx context.Context, patient, code string, from, to time.Time) ([]iomt.Waveform, error) {
	leads := []string{code}
	if s.m.WaveformCode(code) == CodeECG {
		leads = leads[:0]
		for _, c := range s.Catalog.All() {
			if IsECGLead(c) {
				leads = append(leads, c.ID)
			}
		}
	}
	var segs []iomt.Waveform
	for _, l := range leads {
		got, err := s.Store.Waveforms(ctx, iomt.WaveformQuery{Patient: patient, Code: l, From: from, To: to})
		if err != nil {
			return nil, fmt.Errorf("fhir: read waveforms of %s: %w", l, err)
		}
		segs = append(segs, got...)
	}
	return segs, nil
}

func (s *server) build(patient string, h obsHit) (string, any, error) {
	var o Observation
	var err error
	switch h.kind {
	case KindReading:
		o, err = s.m.Reading(*h.obs)
	case KindBPPanel:
		o, err = s.m.BloodPressure(*h.obs, *h.dia)
	case KindWaveform:
		o, err = s.m.WaveformWindow(h.segs, patient, h.device, h.code, h.t, s.WaveformWindow)
	}
	return o.ID, o, err
}

// hitID is the id the hit's Observation will have.
func (s *server) hitID(patient string, h obsHit) string {
	id, _ := ObservationID(s.Catalog, ObsKey{Kind: h.kind, Patient: patient, Device: h.device, Code: h.code, Time: h.t})
	return id
}

func sortHits(hits []obsHit, desc bool) {
	slices.SortFunc(hits, func(a, b obsHit) int {
		c := cmp.Or(a.t.Compare(b.t), cmp.Compare(a.code, b.code), cmp.Compare(a.device, b.device), cmp.Compare(a.patient, b.patient))
		if desc {
			return -c
		}
		return c
	})
}

// observationPatient reads the patient/subject parameters: one patient is required, as the
// store is organised by patient and a cross-patient scan is not offered.
func observationPatient(q map[string][]string) (string, error) {
	var id string
	for _, name := range []string{"patient", "subject", "subject:Patient"} {
		for _, v := range q[name] {
			if strings.Contains(v, ",") {
				return "", errorf(http.StatusBadRequest, "not-supported", "%s takes one patient", name)
			}
			p, err := refID("Patient", v)
			if err != nil {
				return "", err
			}
			if id != "" && id != p {
				return "", errorf(http.StatusBadRequest, "not-supported", "one patient per search")
			}
			id = p
		}
	}
	return id, nil
}

func (s *server) searchObservations(r *http.Request, q map[string][]string, sp searchParams) (results, error) {
	ctx := r.Context()
	var only map[string]bool // _id: the ids asked for
	if ids, ok := q["_id"]; ok {
		only = make(map[string]bool)
		for _, id := range splitOr(ids[0]) {
			only[id] = true
		}
		if q["patient"] == nil && q["subject"] == nil && q["subject:Patient"] == nil {
			// Ids without a patient: read each (an id names its patient); other parameters
			// are not applied.
			for name := range q {
				if name != "_id" && name != "_count" && name != "_sort" && name != "_summary" && name != "_total" {
					return results{}, errorf(http.StatusBadRequest, "not-supported", "_id combines with %s only together with patient", name)
				}
			}
			if _, err := s.patientScope(r, "Observation", q); err != nil {
				return results{}, err
			}
			c := callOf(r)
			type match struct {
				o       Observation
				patient string
			}
			var obs []match
			for id := range only {
				// Ids of patients the caller may not read are left out, as unknown ones.
				k, err := ParseObservationID(s.Catalog, id)
				if err != nil || !s.Policy.Decide(c.pr, s.observationRequest(k, "s"), c.now).Allow {
					continue
				}
				o, err := s.observation(r, id)
				if err == nil {
					obs = append(obs, match{o, k.Patient})
				} else if !isNotFound(err) {
					return results{}, err
				}
			}
			slices.SortFunc(obs, func(a, b match) int { return cmp.Compare(a.o.ID, b.o.ID) })
			return results{n: len(obs), get: func(i int) (string, any, error) { return obs[i].o.ID, obs[i].o, nil },
				patient: func(i int) string { return obs[i].patient }}, nil
		}
	}
	patient, err := observationPatient(q)
	if err != nil {
		return results{}, err
	}
	var patients []string
	if patient == "" {
		if patients, err = s.observationPatients(r, q); err != nil {
			return results{}, err
		}
	} else {
		// A search of a patient the caller may not see finds nothing, as one of a patient who
		// does not exist; other refusals (a clinician outside the patient's teams, a scope)
		// are 403.
		hidden := errorf(http.StatusNotFound, "not-found", "")
		if err := s.require(r, policy.Request{Need: policy.PatientRead, Patient: patient, Resource: "Observation", Interaction: "s", Query: q}, hidden); err != nil {
			if err == hidden {
				return results{}, nil
			}
			return results{}, err
		}
		patients = []string{patient}
	}
	var preds []datePred
	for _, name := range []string{"date", "_lastUpdated"} {
		for _, v := range q[name] {
			p, err := parseDatePred(name, v)
			if err != nil {
				return results{}, err
			}
			preds = append(preds, p)
		}
	}
	device := ""
	if v, ok := q["device"]; ok {
		if device, err = refID("Device", v[0]); err != nil {
			return results{}, err
		}
	}
	from, to := window(preds)
	if !from.IsZero() && !to.IsZero() && !from.Before(to) {
		return results{}, nil
	}
	cands := s.candidates(q, true)
	var hits []obsHit
	for _, patient := range patients {
		if _, err := s.patient(r, patient); err != nil {
			if isNotFound(err) {
				continue
			}
			return results{}, err
		}
		latest, err := s.Store.Latest(ctx, patient)
		if err != nil {
			return results{}, fmt.Errorf("fhir: search observations: %w", err)
		}
		stored := make(map[string]bool, len(latest))
		for _, o := range latest {
			stored[o.Code] = true
		}
		got, err := s.collect(ctx, patient, cands, stored, from, to)
		if err != nil {
			return results{}, err
		}
		got = slices.DeleteFunc(got, func(h obsHit) bool {
			if device != "" && h.device != device {
				return true
			}
			if only != nil && !only[s.hitID(patient, h)] {
				return true
			}
			for _, p := range preds {
				if !p.match(h.t) {
					return true
				}
			}
			return false
		})
		for i := range got {
			got[i].patient = patient
		}
		hits = append(hits, got...)
	}
	sortHits(hits, sp.sortDesc)
	return results{n: len(hits), get: func(i int) (string, any, error) { return s.build(hits[i].patient, hits[i]) },
		patient: func(i int) string { return hits[i].patient }}, nil
}

// observationPatients decides a search of Observations without a patient and returns the
// patients it covers: the caller's (all of the tenant's for the bootstrap principal) whose
// records they may read with these parameters, in id order.
func (s *server) observationPatients(r *http.Request, q map[string][]string) ([]string, error) {
	scope, err := s.patientScope(r, "Observation", q)
	if err != nil {
		return nil, err
	}
	var ids []string
	if scope.All {
		ps, err := s.Store.Patients(r.Context(), iomt.PatientFilter{Tenant: callOf(r).tenant()})
		if err != nil {
			return nil, fmt.Errorf("fhir: search observations: %w", err)
		}
		for _, p := range ps {
			ids = append(ids, p.ID)
		}
	} else {
		for id := range scope.Patients {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	c := callOf(r)
	// Carers list patients but read no records; a scope's query applies to each.
	return slices.DeleteFunc(ids, func(id string) bool {
		return !s.Policy.Decide(c.pr, policy.Request{Need: policy.PatientRead, Patient: id, Resource: "Observation", Interaction: "s", Query: q}, c.now).Allow
	}), nil
}

// lastN is Observation/$lastn: the most recent max Observations of each code (default 1),
// for one patient, optionally narrowed by category and code. Waveforms are not included.
func (s *server) lastN(w http.ResponseWriter, r *http.Request, q url.Values) error {
	callOf(r).act("fhir.observation.lastn")
	spec := paramSpec{params: set("patient", "subject", "subject:Patient", "category", "code", "max")}
	if _, err := s.checkParams(r, "Observation/$lastn", q, spec); err != nil {
		return err
	}
	used := map[string][]string(q)
	patient, err := observationPatient(used)
	if err != nil {
		return err
	}
	if patient == "" {
		return errorf(http.StatusBadRequest, "required", "$lastn needs patient (or subject)")
	}
	if err := s.require(r, policy.Request{Need: policy.PatientRead, Patient: patient, Resource: "Observation", Interaction: "s", Query: q}, notFound("Patient", patient)); err != nil {
		return err
	}
	maxN := 1
	if v := q.Get("max"); v != "" {
		if maxN, err = strconv.Atoi(v); err != nil || maxN < 1 || maxN > s.MaxCount {
			return errorf(http.StatusBadRequest, "value", "max must be a whole number from 1 to %d, got %q", s.MaxCount, v)
		}
	}
	if _, err := s.patient(r, patient); err != nil {
		return err
	}
	ctx := r.Context()
	latest, err := s.Store.Latest(ctx, patient)
	if err != nil {
		return fmt.Errorf("fhir: $lastn: %w", err)
	}
	stored := make(map[string]bool, len(latest))
	last := make(map[string]time.Time, len(latest))
	for _, o := range latest {
		stored[o.Code], last[o.Code] = true, o.Time
	}
	// Blood pressure is one group: the panel and unpaired systolic or diastolic readings come
	// from the same two series. Unpaired ones are reported only within the window that holds
	// the last max panels, so that a patient without any does not cost a scan of all history.
	var groups [][]cand
	var bpGroup []cand
	for _, c := range s.candidates(used, false) {
		switch c.c.ID {
		case CodeBPPanel, CodeSystolic, CodeDiastolic:
			bpGroup = append(bpGroup, c)
		default:
			groups = append(groups, []cand{c})
		}
	}
	if bpGroup != nil {
		groups = append(groups, bpGroup)
	}
	var hits []obsHit
	for _, g := range groups {
		var end time.Time
		hasPanel := false
		for _, c := range g {
			hasPanel = hasPanel || c.kind == KindBPPanel
			src := []string{c.c.ID}
			if c.kind == KindBPPanel {
				src = []string{CodeSystolic, CodeDiastolic}
			}
			for _, code := range src {
				if t, ok := last[code]; ok && t.After(end) {
					end = t
				}
			}
		}
		if end.IsZero() {
			continue
		}
		end = end.Add(iomt.TimePrecision)
		// Widen the window back from the latest reading until it holds max readings: a
		// recent reading is the common case and costs one small query.
		for span := time.Hour; ; span *= 16 {
			got, err := s.collect(ctx, patient, g, stored, end.Add(-span), end)
			if err != nil {
				return err
			}
			sortHits(got, true)
			byCode := map[string][]obsHit{}
			for _, h := range got {
				byCode[h.code] = append(byCode[h.code], h)
			}
			done := span > 100*365*24*time.Hour
			if !done {
				done = true
				for _, c := range g {
					rides := hasPanel && c.kind != KindBPPanel
					if len(byCode[c.c.ID]) < maxN && !rides {
						done = false
					}
				}
			}
			if done {
				for _, c := range g {
					l := byCode[c.c.ID]
					hits = append(hits, l[:min(maxN, len(l))]...)
				}
				break
			}
		}
	}
	total := len(hits)
	base := s.base(r) + "/Observation"
	b := Bundle{ResourceType: "Bundle", Type: "searchset", Total: &total, Timestamp: dateTime(s.Now()),
		Link: []BundleLink{{Relation: "self", URL: base + "/$lastn?" + q.Encode()}}}
	for _, h := range hits {
		id, rsc, err := s.build(patient, h)
		if err != nil {
			return err
		}
		b.Entry = append(b.Entry, BundleEntry{FullURL: base + "/" + id, Resource: rsc, Search: &BundleEntrySearch{Mode: "match"}})
	}
	s.write(w, r, http.StatusOK, b)
	return nil
}
