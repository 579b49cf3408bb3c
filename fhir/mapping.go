package fhir

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/iomt/iomt"
	"github.com/iomt/iomt/codes"
)

// Mapper turns iomt's domain values into FHIR R4 resources and back. It is pure: no I/O, so
// the API and the EHR exporter build identical resources (and ids) from the same data.
type Mapper struct {
	Catalog *codes.Catalog
	// MRNSystem is the identifier system of Patient.identifier (the MRN); DefaultMRNSystem if "".
	MRNSystem string
}

func (m *Mapper) mrnSystem() string {
	if m.MRNSystem != "" {
		return m.MRNSystem
	}
	return DefaultMRNSystem
}

// dateTime formats t as a FHIR dateTime/instant in UTC with milliseconds.
func dateTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z07:00") }

// Categories of Observation (http://terminology.hl7.org/CodeSystem/observation-category).
const (
	CatVitalSigns = "vital-signs"
	CatLaboratory = "laboratory"
	CatActivity   = "activity"
	CatProcedure  = "procedure"
	CatSurvey     = "survey"
	CatTherapy    = "therapy"
)

var categoryDisplay = map[string]string{
	CatVitalSigns: "Vital Signs", CatLaboratory: "Laboratory", CatActivity: "Activity",
	CatProcedure: "Procedure", CatSurvey: "Survey", CatTherapy: "Therapy",
}

// Category is the Observation category of a code, "" for codes that are not served as
// Observations (device status: battery is a Device property; a sensor's status bits are the
// device's word on its signal, which the alarms read). Vital signs follow the R4
// profile; glucose is "laboratory" as in HL7's CGM guide; waveforms, pulmonary-artery
// pressures and ECG measures are "procedure" (the official ECG example); steps and falls are
// "activity"; assessment scales (ACVPU, NEWS2) are "survey", as in the NHS guides' NEWS2
// examples; supplemental oxygen flow is "therapy".
func Category(c codes.Code) string {
	switch {
	case c.Kind == codes.DeviceStatus || c.Kind == codes.SensorStatus || c.Kind == 0:
		return ""
	case c.Kind == codes.Score:
		return CatSurvey
	case c.Unit == "L/min":
		return CatTherapy
	case c.Kind == codes.Waveform:
		return CatProcedure
	case c.FHIRVitalSigns:
		return CatVitalSigns
	case c.Unit == "mg/dL":
		return CatLaboratory
	case c.Unit == "mm[Hg]" || strings.HasPrefix(c.MDC, "MDC_ECG_") || strings.HasSuffix(c.Display, " by EKG"):
		// Pulmonary-artery pressures and ECG measures such as the PVC rate or the ECG
		// watcher's (LOINC names the EKG method "by EKG"): catheterisation and
		// electrodiagnostics are FHIR's examples of "procedure".
		return CatProcedure
	default:
		return CatActivity
	}
}

func categoryConcept(cat string) []CodeableConcept {
	return []CodeableConcept{{Coding: []Coding{{System: SystemObsCategory, Code: cat, Display: categoryDisplay[cat]}}, Text: categoryDisplay[cat]}}
}

// codeConcept codes c by LOINC (the vital-signs profile's fixed code first where it differs,
// as 59408-5 needs 2708-6) and adds the MDC term as a further coding where there is one.
func (m *Mapper) codeConcept(c codes.Code) CodeableConcept {
	var cc CodeableConcept
	if c.VitalSignsLOINC != "" && c.VitalSignsLOINC != c.LOINC {
		d := ""
		if vc, ok := m.Catalog.ByID(c.VitalSignsLOINC); ok {
			d = vc.Display
		}
		cc.Coding = append(cc.Coding, Coding{System: SystemLOINC, Code: c.VitalSignsLOINC, Display: d})
	}
	if c.LOINC != "" {
		cc.Coding = append(cc.Coding, Coding{System: SystemLOINC, Code: c.LOINC, Display: c.Display})
	}
	if c.SNOMED != "" {
		cc.Coding = append(cc.Coding, Coding{System: SystemSNOMED, Code: c.SNOMED, Display: c.Display})
	}
	if c.MDCCode != 0 {
		cc.Coding = append(cc.Coding, mdcCoding(c))
	}
	cc.Text = c.Display
	return cc
}

// mdcCoding is c's IEEE 11073 MDC term as a coding by its number; c must have one.
func mdcCoding(c codes.Code) Coding {
	return Coding{System: SystemMDC, Code: strconv.FormatUint(uint64(c.MDCCode), 10), Display: c.MDC}
}

func ucum(v float64, unit string) *Quantity {
	return &Quantity{Value: v, Unit: unit, System: SystemUCUM, Code: unit}
}

func patientRef(id string) *Reference { return &Reference{Reference: "Patient/" + id} }
func deviceRef(id string) *Reference {
	// "iomt-…" devices are iomt itself (computed scores) or a clinician (charted values).
	if id == "" || strings.HasPrefix(id, "iomt-") {
		return nil
	}
	return &Reference{Reference: "Device/" + id}
}

// Reading maps one stored reading to an Observation. Panels have no reading of their own
// (see BloodPressure) and device-status codes are not Observations: both are refused.
func (m *Mapper) Reading(o iomt.Observation) (Observation, error) {
	c, ok := m.Catalog.ByID(o.Code)
	if !ok {
		return Observation{}, fmt.Errorf("fhir: reading of unknown code %q: %w", o.Code, iomt.ErrInvalid)
	}
	cat := Category(c)
	if cat == "" || c.Kind == codes.Panel || c.Kind == codes.Waveform {
		return Observation{}, fmt.Errorf("fhir: code %s (%s) is not served as a numeric Observation: %w", c.ID, c.Kind, iomt.ErrInvalid)
	}
	id, err := ObservationID(m.Catalog, ObsKey{Kind: KindReading, Patient: o.Patient, Device: o.Device, Code: c.ID, Time: o.Time})
	if err != nil {
		return Observation{}, err
	}
	unit := cmp.Or(o.Unit, c.Unit)
	obs := Observation{
		ResourceType: "Observation", ID: id, Status: "final",
		Category: categoryConcept(cat), Code: m.codeConcept(c),
		Subject: patientRef(o.Patient), EffectiveDateTime: dateTime(o.Time),
		ValueQuantity: ucum(o.Value, unit), Device: deviceRef(o.Device),
	}
	if cat == CatVitalSigns {
		obs.Meta = &Meta{Profile: []string{ProfileVitalSigns}}
	}
	return obs, nil
}

// Codes of the blood-pressure panel and its components.
const (
	CodeBPPanel   = "85354-9"
	CodeSystolic  = "8480-6"
	CodeDiastolic = "8462-4"
)

// BloodPressure builds the 85354-9 panel from the systolic and diastolic readings of one
// device at one time: components only, no top-level value, as the bp profile requires.
func (m *Mapper) BloodPressure(sys, dia iomt.Observation) (Observation, error) {
	if sys.Code != CodeSystolic || dia.Code != CodeDiastolic || sys.Device != dia.Device || !sys.Time.Equal(dia.Time) || sys.Patient != dia.Patient {
		return Observation{}, fmt.Errorf("fhir: blood pressure needs the systolic and diastolic readings of one device at one time: %w", iomt.ErrInvalid)
	}
	panel, ok := m.Catalog.ByID(CodeBPPanel)
	if !ok {
		return Observation{}, fmt.Errorf("fhir: catalog lacks %s: %w", CodeBPPanel, iomt.ErrInvalid)
	}
	id, err := ObservationID(m.Catalog, ObsKey{Kind: KindBPPanel, Patient: sys.Patient, Device: sys.Device, Code: CodeBPPanel, Time: sys.Time})
	if err != nil {
		return Observation{}, err
	}
	obs := Observation{
		ResourceType: "Observation", ID: id, Meta: &Meta{Profile: []string{ProfileVitalSigns, "http://hl7.org/fhir/StructureDefinition/bp"}},
		Status: "final", Category: categoryConcept(CatVitalSigns), Code: m.codeConcept(panel),
		Subject: patientRef(sys.Patient), EffectiveDateTime: dateTime(sys.Time), Device: deviceRef(sys.Device),
	}
	for _, r := range []iomt.Observation{sys, dia} {
		c, _ := m.Catalog.ByID(r.Code)
		obs.Component = append(obs.Component, ObservationComponent{Code: m.codeConcept(c), ValueQuantity: ucum(r.Value, cmp.Or(r.Unit, c.Unit))})
	}
	return obs, nil
}

// PairBloodPressure splits readings into systolic/diastolic pairs of one device at one time
// (which become panels) and the rest. Input order is kept for the rest.
func PairBloodPressure(obs []iomt.Observation) (pairs [][2]iomt.Observation, rest []iomt.Observation) {
	type key struct {
		patient, device string
		ms              int64
	}
	dia := make(map[key]int)
	for i, o := range obs {
		if o.Code == CodeDiastolic {
			dia[key{o.Patient, o.Device, iomt.Millis(o.Time)}] = i
		}
	}
	used := make(map[int]bool)
	for i, o := range obs {
		if o.Code != CodeSystolic {
			continue
		}
		if j, ok := dia[key{o.Patient, o.Device, iomt.Millis(o.Time)}]; ok && !used[j] {
			used[i], used[j] = true, true
			pairs = append(pairs, [2]iomt.Observation{o, obs[j]})
		}
	}
	for i, o := range obs {
		if !used[i] {
			rest = append(rest, o)
		}
	}
	return pairs, rest
}

// Observations maps readings to Observations, blood pressure as panels; codes that are not
// served as Observations (device status) are skipped.
func (m *Mapper) Observations(obs []iomt.Observation) ([]Observation, error) {
	pairs, rest := PairBloodPressure(obs)
	out := make([]Observation, 0, len(pairs)+len(rest))
	for _, p := range pairs {
		o, err := m.BloodPressure(p[0], p[1])
		if err != nil {
			return nil, err
		}
		out = append(out, o)
	}
	for _, r := range rest {
		c, ok := m.Catalog.ByID(r.Code)
		if !ok || Category(c) == "" || c.Kind == codes.Waveform || c.Kind == codes.Panel {
			continue
		}
		o, err := m.Reading(r)
		if err != nil {
			return nil, err
		}
		out = append(out, o)
	}
	return out, nil
}

// DefaultWaveformWindow is how much of a waveform one Observation carries.
const DefaultWaveformWindow = 10 * time.Second

// WindowStart aligns t to the waveform window it falls in (windows are aligned to the epoch, so
// the same samples always land in the same Observation).
func WindowStart(t time.Time, window time.Duration) time.Time {
	ms := iomt.Millis(t)
	w := window.Milliseconds()
	start := ms - ((ms%w)+w)%w
	return iomt.FromMillis(start)
}

// CodeECG is the code of the ECG Observation: MDC_ECG_ELEC_POTL (131328) with one component
// per lead, as in the official example Observation-ekg.
const CodeECG = "MDC_ECG_ELEC_POTL"

// SystemMDCOID is the OID form of the MDC code system, which the official ECG example codes
// with; the ECG Observation and its components carry it besides SystemMDC, so that a query
// copied from the example finds them.
const SystemMDCOID = "urn:oid:2.16.840.1.113883.6.24"

// IsECGLead reports whether c is an ECG lead (MDC_ECG_ELEC_POTL_*, or MDC_ECG_ELEC_POTL itself,
// the unspecified lead): the leads of one device in one window share one Observation.
func IsECGLead(c codes.Code) bool {
	return c.Kind == codes.Waveform && strings.HasPrefix(c.ID, CodeECG)
}

// WaveformCode is the code of the Observation a waveform code is served in: CodeECG for every
// ECG lead, the code itself otherwise.
func (m *Mapper) WaveformCode(code string) string {
	if c, ok := m.Catalog.ByID(code); ok && IsECGLead(c) {
		return CodeECG
	}
	return code
}

// ecgConcept is the ECG Observation's code, as in the official example.
func ecgConcept() CodeableConcept {
	return CodeableConcept{Coding: []Coding{
		{System: SystemMDC, Code: "131328", Display: CodeECG},
		{System: SystemMDCOID, Code: "131328", Display: CodeECG},
	}, Text: "Electrocardiogram"}
}

// ecgLeadConcept is an ECG component's code: the lead's MDC term in both system forms.
func ecgLeadConcept(c codes.Code) CodeableConcept {
	mdc := mdcCoding(c)
	oid := mdc
	oid.System = SystemMDCOID
	return CodeableConcept{Coding: []Coding{mdc, oid}, Text: c.Display}
}

// WaveformWindow builds the Observation of one window [start, start+window) of one device's
// waveform, as valueSampledData modelled on the official ECG example: origin 0 in the code's
// unit, period in ms, factor the stored scale, and "E" (no value) where the device sent
// nothing. ECG leads (code CodeECG or any lead) make one Observation, code CodeECG, with a
// component per lead the device sent in the window, in the catalog's lead order (I, II, III,
// aVR, ...), even for a single lead, so that an ECG always has the same shape. Other waveforms
// (pleth) are one Observation with valueSampledData. Segments of other devices or codes are
// ignored.
func (m *Mapper) WaveformWindow(segs []iomt.Waveform, patient, device, code string, start time.Time, window time.Duration) (Observation, error) {
	c, ok := m.Catalog.ByID(code)
	if !ok || c.Kind != codes.Waveform {
		return Observation{}, fmt.Errorf("fhir: %q is not a waveform code: %w", code, iomt.ErrInvalid)
	}
	ecg := IsECGLead(c)
	if ecg {
		c, _ = m.Catalog.ByID(CodeECG)
	}
	id, err := ObservationID(m.Catalog, ObsKey{Kind: KindWaveform, Patient: patient, Device: device, Code: c.ID, Time: start})
	if err != nil {
		return Observation{}, err
	}
	obs := Observation{
		ResourceType: "Observation", ID: id, Status: "final",
		Category: categoryConcept(CatProcedure), Code: m.codeConcept(c),
		Subject: patientRef(patient), EffectiveDateTime: dateTime(start), Device: deviceRef(device),
	}
	if !ecg {
		obs.ValueSampledData, err = sampledData(segs, device, c, start, window)
		return obs, err
	}
	obs.Code = ecgConcept()
	for _, lead := range m.Catalog.All() {
		if !IsECGLead(lead) {
			continue
		}
		sd, err := sampledData(segs, device, lead, start, window)
		if errors.Is(err, iomt.ErrNotFound) {
			continue
		}
		if err != nil {
			return Observation{}, err
		}
		obs.Component = append(obs.Component, ObservationComponent{Code: ecgLeadConcept(lead), ValueSampledData: sd})
	}
	if len(obs.Component) == 0 {
		return Observation{}, fmt.Errorf("fhir: no ECG samples from device %s in window %s: %w", device, dateTime(start), iomt.ErrNotFound)
	}
	return obs, nil
}

// sampledData is the samples of one code of one device in [start, start+window); ErrNotFound
// if there are none.
func sampledData(segs []iomt.Waveform, device string, c codes.Code, start time.Time, window time.Duration) (*SampledData, error) {
	end := start.Add(window)
	var period time.Duration
	factor := 0.0
	for _, w := range segs {
		if w.Device == device && w.Code == c.ID && w.Period > 0 && w.Start.Before(end) && w.End().After(start) {
			period, factor = w.Period, w.Scale
			break
		}
	}
	if period == 0 {
		return nil, fmt.Errorf("fhir: no samples of %s from device %s in window %s: %w", c.ID, device, dateTime(start), iomt.ErrNotFound)
	}
	if factor == 0 {
		factor = 1
	}
	n := int(window / period)
	vals := make([]float64, n)
	have := make([]bool, n)
	for _, w := range segs {
		if w.Device != device || w.Code != c.ID || w.Period <= 0 {
			continue
		}
		scale := w.Scale
		if scale == 0 {
			scale = 1
		}
		for i, s := range w.Samples {
			t := w.Start.Add(time.Duration(i) * w.Period)
			if t.Before(start) || !t.Before(end) {
				continue
			}
			j := int(math.Round(float64(t.Sub(start)) / float64(period)))
			if j >= n {
				continue
			}
			vals[j], have[j] = float64(s)*scale/factor, true
		}
	}
	var data bytes.Buffer
	for j := range vals {
		if j > 0 {
			data.WriteByte(' ')
		}
		if !have[j] {
			data.WriteByte('E')
			continue
		}
		data.WriteString(strconv.FormatFloat(vals[j], 'f', -1, 64))
	}
	return &SampledData{
		Origin:     Quantity{Value: 0, Unit: c.Unit, System: SystemUCUM, Code: c.Unit},
		Period:     float64(period) / float64(time.Millisecond),
		Factor:     factor,
		Dimensions: 1,
		Data:       data.String(),
	}, nil
}

// WindowKey names one waveform window: which Observation it becomes.
type WindowKey struct {
	Device string
	Code   string
	Start  time.Time
}

// WaveformWindows lists the windows that segments cover, sorted by start, code and device.
// Code is the Observation's (Mapper.WaveformCode): CodeECG for the ECG leads, which share
// one window.
func (m *Mapper) WaveformWindows(segs []iomt.Waveform, window time.Duration) []WindowKey {
	seen := make(map[WindowKey]bool)
	var out []WindowKey
	for _, w := range segs {
		if len(w.Samples) == 0 {
			continue
		}
		code := m.WaveformCode(w.Code)
		last := w.Start.Add(time.Duration(len(w.Samples)-1) * w.Period)
		for s := WindowStart(w.Start, window); !s.After(last); s = s.Add(window) {
			k := WindowKey{Device: w.Device, Code: code, Start: s}
			if !seen[k] {
				seen[k] = true
				out = append(out, k)
			}
		}
	}
	slices.SortFunc(out, func(a, b WindowKey) int {
		return cmp.Or(a.Start.Compare(b.Start), cmp.Compare(a.Code, b.Code), cmp.Compare(a.Device, b.Device))
	})
	return out
}

// ---- Patient ----

var mrType = &CodeableConcept{Coding: []Coding{{System: SystemV2Identifer, Code: "MR", Display: "Medical record number"}}}

// Patient maps a registry patient. The name has its text, and family and given when the
// patient's name was given in parts: iomt does not split a name kept as text only, as it
// cannot tell which part is the family name.
func (m *Mapper) Patient(p iomt.Patient) Patient {
	active := true
	out := Patient{ResourceType: "Patient", ID: p.ID, Active: &active, Gender: p.Gender, BirthDate: p.BirthDate}
	if p.MRN != "" {
		out.Identifier = []Identifier{{Use: "usual", Type: mrType, System: m.mrnSystem(), Value: p.MRN}}
	}
	if n := (HumanName{Text: p.Name, Family: p.Family, Given: p.Given}); n.Text != "" || n.Family != "" || len(n.Given) > 0 {
		out.Name = []HumanName{n}
	}
	return out
}

// InputError is a refusal of a resource a client sent, with the HTTP status and FHIR issue
// code to answer it with.
type InputError struct {
	Status     int
	Code       string // issue type: invalid, required, not-supported, value, ...
	Msg        string
	Expression string // FHIRPath of the offending element
}

func (e *InputError) Error() string { return e.Msg }

// Unwrap lets callers treat every refusal as iomt.ErrInvalid.
func (e *InputError) Unwrap() error { return iomt.ErrInvalid }

func unprocessable(code, expr, format string, a ...any) *InputError {
	return &InputError{Status: http.StatusUnprocessableEntity, Code: code, Expression: expr, Msg: fmt.Sprintf(format, a...)}
}

// decodeResource parses a resource strictly: JSON syntax errors are 400; elements outside
// allowed are 422, because iomt could not store them and dropping them silently would lose
// data the client meant to keep. text and meta are accepted and ignored (narrative and
// metadata are regenerated).
func decodeResource(body []byte, typ string, allowed []string, v any) error {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(body, &top); err != nil {
		return &InputError{Status: http.StatusBadRequest, Code: "structure", Msg: "body is not a JSON object: " + err.Error()}
	}
	var rt string
	if err := json.Unmarshal(top["resourceType"], &rt); err != nil || rt != typ {
		return &InputError{Status: http.StatusBadRequest, Code: "invalid", Expression: "resourceType", Msg: fmt.Sprintf("resourceType must be %q, got %s", typ, cmp.Or(string(top["resourceType"]), "nothing"))}
	}
	var extra []string
	for k := range top {
		if k != "resourceType" && k != "id" && k != "meta" && k != "text" && !slices.Contains(allowed, k) {
			extra = append(extra, typ+"."+k)
		}
	}
	if len(extra) > 0 {
		slices.Sort(extra)
		return unprocessable("not-supported", extra[0], "iomt cannot store %s; a %s here holds only %s", strings.Join(extra, ", "), typ, strings.Join(allowed, ", "))
	}
	if err := json.Unmarshal(body, v); err != nil {
		return &InputError{Status: http.StatusBadRequest, Code: "structure", Msg: "invalid " + typ + ": " + err.Error()}
	}
	return nil
}

// patientElements are the elements of a Patient iomt keeps (besides id, meta and text). What
// else a Patient may hold (telecom, address, contact, photo, maritalStatus, ...) is refused
// rather than dropped: iomt keeps the identifying data monitoring needs, not a demographic
// record, and a sender must learn that the rest was not kept.
var patientElements = []string{"identifier", "active", "name", "gender", "birthDate"}

// PatientFrom reads a Patient a client sent into a registry patient (ID, Tenant and CreatedAt
// are the caller's to set). It accepts the MRN identifier, one name (text, family, given), the
// gender and the birth date; the narrative and meta are ignored, as iomt generates its own.
func (m *Mapper) PatientFrom(body []byte) (iomt.Patient, string, error) {
	var in Patient
	if err := decodeResource(body, "Patient", patientElements, &in); err != nil {
		var ie *InputError
		if errors.As(err, &ie) && ie.Code == "not-supported" {
			ie.Msg += " (data minimisation: iomt keeps the identifying data monitoring needs, not addresses, phone numbers or contacts; this Patient was not stored, so that nothing is dropped silently)"
		}
		return iomt.Patient{}, "", err
	}
	var p iomt.Patient
	var raw struct {
		Meta map[string]json.RawMessage   `json:"meta"`
		Name []map[string]json.RawMessage `json:"name"`
	}
	if err := json.Unmarshal(body, &raw); err != nil || len(raw.Name) != len(in.Name) {
		return p, in.ID, &InputError{Status: http.StatusBadRequest, Code: "structure", Expression: "Patient.name", Msg: "Patient.name must be a list of HumanName objects"}
	}
	// meta.versionId and lastUpdated are the server's to assign, profile, tag and source are
	// the sender's bookkeeping: all safe to drop. Security labels are not: dropping one would
	// strip a restriction the sender put on who may see the patient, which iomt cannot
	// enforce.
	if _, ok := raw.Meta["security"]; ok {
		return p, in.ID, unprocessable("not-supported", "Patient.meta.security", "iomt cannot honour security labels: every user of the registry sees every patient of the tenant; send the patient without Patient.meta.security if that is acceptable")
	}
	if in.Active != nil && !*in.Active {
		return p, in.ID, unprocessable("not-supported", "Patient.active", "iomt keeps no inactive patients")
	}
	for i, id := range in.Identifier {
		isMRN := id.System == m.mrnSystem()
		if id.Type != nil {
			for _, c := range id.Type.Coding {
				isMRN = isMRN || (c.System == SystemV2Identifer && c.Code == "MR")
			}
		}
		expr := fmt.Sprintf("Patient.identifier[%d]", i)
		if !isMRN {
			return p, in.ID, unprocessable("not-supported", expr, "iomt stores only the medical record number (system %q or type MR), not identifier system %q", m.mrnSystem(), id.System)
		}
		if p.MRN != "" {
			return p, in.ID, unprocessable("not-supported", expr, "iomt stores one medical record number per patient")
		}
		if strings.TrimSpace(id.Value) == "" {
			return p, in.ID, unprocessable("required", expr+".value", "the medical record number has no value")
		}
		p.MRN = strings.TrimSpace(id.Value)
	}
	switch len(in.Name) {
	case 0:
		return p, in.ID, unprocessable("required", "Patient.name", "a name is required")
	case 1:
	default:
		return p, in.ID, unprocessable("not-supported", "Patient.name[1]", "iomt keeps one name per patient")
	}
	// use (official, usual, ...) says which of several names this is; with one name kept, it
	// changes nothing. Prefix, suffix and period would be lost.
	var extra []string
	for k := range raw.Name[0] {
		if !slices.Contains([]string{"use", "text", "family", "given"}, k) {
			extra = append(extra, "Patient.name[0]."+k)
		}
	}
	if len(extra) > 0 {
		slices.Sort(extra)
		return p, in.ID, unprocessable("not-supported", extra[0], "iomt keeps a name's text, family and given parts only, not %s", strings.Join(extra, ", "))
	}
	n := in.Name[0]
	for i, g := range n.Given {
		if g = strings.TrimSpace(g); g == "" {
			return p, in.ID, unprocessable("value", fmt.Sprintf("Patient.name[0].given[%d]", i), "a given name is empty")
		}
		p.Given = append(p.Given, g)
	}
	p.Family = strings.TrimSpace(n.Family)
	p.Name = cmp.Or(strings.TrimSpace(n.Text), iomt.JoinName(p.Given, p.Family))
	if p.Name == "" {
		return p, in.ID, unprocessable("required", "Patient.name[0]", "the name has neither text nor given/family parts")
	}
	if iomt.CheckGender(in.Gender) != nil {
		return p, in.ID, unprocessable("code-invalid", "Patient.gender", "Patient.gender must be one of %s (FHIR administrative gender), got %q", strings.Join(iomt.Genders(), ", "), in.Gender)
	}
	p.Gender = in.Gender
	if in.BirthDate != "" {
		d, err := time.Parse(time.DateOnly, in.BirthDate)
		if err != nil {
			return p, in.ID, unprocessable("value", "Patient.birthDate", "iomt stores a full birth date (YYYY-MM-DD), got %q", in.BirthDate)
		}
		if d.Year() < 1880 || d.After(time.Now()) {
			return p, in.ID, unprocessable("value", "Patient.birthDate", "birth date %s is not plausible", in.BirthDate)
		}
		p.BirthDate = in.BirthDate
	}
	// Control characters and over-long text, refused as the stores refuse them, but with the
	// element's path.
	var te *iomt.TextError
	if err := iomt.CheckPatient(p); errors.As(err, &te) {
		expr := map[string]string{"name": "Patient.name[0].text", "family": "Patient.name[0].family", "mrn": "Patient.identifier.value"}[te.Field]
		if g, ok := strings.CutPrefix(te.Field, "given"); ok {
			expr = "Patient.name[0].given" + g
		}
		expr = cmp.Or(expr, "Patient")
		return p, in.ID, unprocessable("value", expr, "%s %s", expr, te.Reason)
	}
	return p, in.ID, nil
}

// ---- Device ----

// kindMetrics lists what each kind of device measures: its DeviceMetrics. Kind "other"
// measures nothing iomt knows in advance, so it has none.
var kindMetrics = map[string][]string{
	"pulse-oximeter":   {"59408-5", "8889-8", "MDC_PULS_OXIM_PLETH"},
	"ecg-patch":        {"MDC_ECG_ELEC_POTL_II", "8867-4", "9279-1"},
	"bp-monitor":       {"8480-6", "8462-4", "8478-0", "8867-4"},
	"thermometer":      {"8310-5"},
	"cgm":              {"99504-3"},
	"glucometer":       {"2339-0", "2345-7"},
	"scale":            {"29463-7", "8302-2", "39156-5"},
	"bedside-monitor":  {"8867-4", "9279-1", "59408-5", "8310-5", "8480-6", "8462-4", "8478-0", "MDC_ECG_ELEC_POTL_II", "MDC_PULS_OXIM_PLETH"},
	"multi-parameter":  {"8867-4", "9279-1", "59408-5", "8310-5", "8480-6", "8462-4", "8478-0"},
	"activity-tracker": {"55423-8", "8867-4"},
	"fall-sensor":      {"MDC_AI_TYPE_SENSOR_FALL"},
}

// Device maps a registry device. Credentials are never part of it.
func (m *Mapper) Device(d iomt.Device) Device {
	kind := kindConcept(d.Kind)
	out := Device{ResourceType: "Device", ID: d.ID, Status: "active", Type: &kind}
	for _, id := range d.Identifiers {
		out.Identifier = append(out.Identifier, Identifier{System: id.System, Value: id.Value})
	}
	if d.Patient != "" {
		out.Patient = patientRef(d.Patient)
	}
	if d.Battery != nil {
		if c, ok := m.Catalog.ByID("MDC_ATTR_VAL_BATT_CHARGE"); ok {
			out.Property = []DeviceProperty{{
				Type:          CodeableConcept{Coding: []Coding{mdcCoding(c)}, Text: c.Display},
				ValueQuantity: []Quantity{*ucum(*d.Battery, "%")},
			}}
		}
	}
	return out
}

// kindConcept is Device.type for a device kind.
func kindConcept(kind string) CodeableConcept {
	return CodeableConcept{Coding: []Coding{{System: SystemDeviceKind, Code: kind, Display: kind}}, Text: kind}
}

// DeviceFrom reads a Device a client sent into a registry device (ID, Tenant and CreatedAt are
// the caller's to set) and returns the id the body gives. It keeps the kind (Device.type;
// iomt.DeviceKindOther without one), the patient binding (Device.patient, "Patient/{id}") and
// the identifiers (system and value each). Other elements, and parts of an identifier iomt
// does not keep, are refused (422) rather than dropped.
func (m *Mapper) DeviceFrom(body []byte) (iomt.Device, string, error) {
	var in Device
	var d iomt.Device
	if err := decodeResource(body, "Device", []string{"status", "identifier", "type", "patient"}, &in); err != nil {
		return d, "", err
	}
	if in.Status != "" && in.Status != "active" {
		return d, in.ID, unprocessable("not-supported", "Device.status", "iomt keeps active devices only, got status %q", in.Status)
	}
	ids, err := deviceIdentifiers(body, in.Identifier)
	if err != nil {
		return d, in.ID, err
	}
	d.Identifiers = ids
	kinds := iomt.DeviceKinds()
	d.Kind = iomt.DeviceKindOther
	if in.Type != nil {
		kind := ""
		for _, c := range in.Type.Coding {
			if (c.System == SystemDeviceKind || c.System == "") && slices.Contains(kinds, c.Code) {
				kind = c.Code
			}
		}
		if kind == "" && slices.Contains(kinds, in.Type.Text) {
			kind = in.Type.Text
		}
		if kind == "" {
			return d, in.ID, unprocessable("code-invalid", "Device.type", "Device.type names no device kind iomt knows (system %s: %s); leave Device.type out for kind %q", SystemDeviceKind, strings.Join(kinds, ", "), iomt.DeviceKindOther)
		}
		d.Kind = kind
	}
	if in.Patient != nil {
		ref, ok := strings.CutPrefix(in.Patient.Reference, "Patient/")
		if !ok || !ValidID(ref) {
			return d, in.ID, unprocessable("invalid", "Device.patient", "Device.patient must be a literal reference Patient/{id}, got %q", in.Patient.Reference)
		}
		d.Patient = ref
	}
	return d, in.ID, nil
}

// deviceIdentifiers reads Device.identifier (decoded, and raw in body): system and value are
// kept; use, type, period and assigner would be lost, so an identifier carrying them is
// refused.
func deviceIdentifiers(body []byte, decoded []Identifier) ([]iomt.Identifier, error) {
	var raw struct {
		Identifier []map[string]json.RawMessage `json:"identifier"`
	}
	if err := json.Unmarshal(body, &raw); err != nil || len(raw.Identifier) != len(decoded) {
		return nil, &InputError{Status: http.StatusBadRequest, Code: "structure", Expression: "Device.identifier", Msg: "Device.identifier must be a list of Identifier objects"}
	}
	var out []iomt.Identifier
	for i, fields := range raw.Identifier {
		expr := fmt.Sprintf("Device.identifier[%d]", i)
		var extra []string
		for k := range fields {
			if k != "system" && k != "value" {
				extra = append(extra, expr+"."+k)
			}
		}
		if len(extra) > 0 {
			slices.Sort(extra)
			return nil, unprocessable("not-supported", extra[0], "iomt keeps a device identifier's system and value only, not %s", strings.Join(extra, ", "))
		}
		id := iomt.Identifier{System: decoded[i].System, Value: decoded[i].Value}
		if id.Value == "" {
			return nil, unprocessable("required", expr+".value", "%s has no value: iomt keeps identifiers by value", expr)
		}
		out = append(out, id)
	}
	if err := iomt.CheckIdentifiers(out); err != nil {
		return nil, unprocessable("value", "Device.identifier", "Device.identifier: %s", strings.TrimPrefix(err.Error(), iomt.ErrInvalid.Error()+": "))
	}
	return out, nil
}

// DeviceMetrics lists the measurements a device of d's kind makes, one DeviceMetric each.
func (m *Mapper) DeviceMetrics(d iomt.Device) []DeviceMetric {
	var out []DeviceMetric
	for _, id := range kindMetrics[d.Kind] {
		if dm, ok := m.DeviceMetric(d, id); ok {
			out = append(out, dm)
		}
	}
	return out
}

// DeviceMetricID is the id of the DeviceMetric of device for code: the device id and the
// code's MDC number (or LOINC code).
func (m *Mapper) DeviceMetricID(device string, c codes.Code) string {
	if c.MDCCode != 0 {
		return device + "-" + strconv.FormatUint(uint64(c.MDCCode), 10)
	}
	return device + "-" + c.ID
}

// DeviceMetric builds the metric of d for one catalog code, if d's kind measures it.
func (m *Mapper) DeviceMetric(d iomt.Device, code string) (DeviceMetric, bool) {
	c, ok := m.Catalog.ByID(code)
	if !ok || !slices.Contains(kindMetrics[d.Kind], c.ID) {
		return DeviceMetric{}, false
	}
	var t CodeableConcept
	if c.MDCCode != 0 {
		t.Coding = append(t.Coding, mdcCoding(c))
	}
	if c.LOINC != "" {
		t.Coding = append(t.Coding, Coding{System: SystemLOINC, Code: c.LOINC, Display: c.Display})
	}
	t.Text = c.Display
	dm := DeviceMetric{
		ResourceType: "DeviceMetric", ID: m.DeviceMetricID(d.ID, c), Type: t,
		Source: deviceRef(d.ID), OperationalStatus: "on", Category: "measurement",
	}
	if c.Unit != "" {
		dm.Unit = &CodeableConcept{Coding: []Coding{{System: SystemUCUM, Code: c.Unit, Display: c.Unit}}}
	}
	return dm, true
}
