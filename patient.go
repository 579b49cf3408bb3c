package iomt

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Patient is a person whose vital signs are monitored.
type Patient struct {
	ID     string `json:"id"`
	Tenant string `json:"tenant"`
	// Name is the name as displayed. Family and Given are its parts when the sender gave
	// them (a FHIR HumanName's family and given); a name given only as text has no parts,
	// since splitting one would be a guess. See JoinName.
	Name      string   `json:"name"`
	Family    string   `json:"family,omitempty"`
	Given     []string `json:"given,omitempty"`
	Gender    string   `json:"gender,omitempty"`    // FHIR administrative gender; "" not given. See CheckGender
	BirthDate string   `json:"birthDate,omitempty"` // YYYY-MM-DD
	MRN       string   `json:"mrn,omitempty"`       // medical record number, unique per tenant
	// SpO2Scale is the NEWS2 SpO2 scale the pipeline scores this patient on: 0 (not set) and
	// 1 mean scale 1; 2 is scale 2, which a clinician prescribes for hypercapnic respiratory
	// failure with a target saturation of 88–92 %. See CheckSpO2Scale.
	SpO2Scale int `json:"spo2Scale,omitempty"`
	// CGMLimits are the patient's own CGM alert thresholds; the zero value means the defaults.
	CGMLimits GlucoseLimits `json:"cgmLimits,omitzero"`
	// Location is where the patient lies, as a path from the site down ("north/ward-3/bed-12",
	// or "home"); care teams that cover a location cover the patients below it.
	Location  string    `json:"location,omitempty"`
	CreatedAt time.Time `json:"createdAt"`
}

// GlucoseLimits are a patient's CGM alert thresholds in mg/dL, as their clinician sets them
// (say a low of 80 for someone with hypoglycaemia unawareness, or a high of 180 in pregnancy).
// All four are set together, or none: the zero value means the pipeline's defaults (urgent
// low 55, low 70, high 250, urgent high 300). See CheckGlucoseLimits.
type GlucoseLimits struct {
	UrgentLow  float64 `json:"urgentLow"`
	Low        float64 `json:"low"`
	High       float64 `json:"high"`
	UrgentHigh float64 `json:"urgentHigh"`
}

// IsZero reports whether no limits are set.
func (l GlucoseLimits) IsZero() bool { return l == GlucoseLimits{} }

// CheckGlucoseLimits refuses limits that are set but not 40 ≤ urgent low < low < high <
// urgent high ≤ 400 mg/dL (the range CGMs report), with an error wrapping ErrInvalid. Stores
// call it too, so that the alert monitor never meets limits it cannot use.
func CheckGlucoseLimits(l GlucoseLimits) error {
	if l.IsZero() {
		return nil
	}
	if !(40 <= l.UrgentLow && l.UrgentLow < l.Low && l.Low < l.High && l.High < l.UrgentHigh && l.UrgentHigh <= 400) {
		return fmt.Errorf("%w: CGM limits must satisfy 40 ≤ urgentLow < low < high < urgentHigh ≤ 400 mg/dL (all four set, or none), got %g/%g/%g/%g",
			ErrInvalid, l.UrgentLow, l.Low, l.High, l.UrgentHigh)
	}
	return nil
}

// CheckSpO2Scale refuses a NEWS2 SpO2 scale other than 0 (not set: scale 1), 1 or 2, with an
// error wrapping ErrInvalid. Stores call it too, so that no path writes a scale the scorer
// would have to guess about.
func CheckSpO2Scale(scale int) error {
	if scale < 0 || scale > 2 {
		return fmt.Errorf("%w: NEWS2 SpO2 scale must be 1 or 2 (0: not set, scale 1), got %d", ErrInvalid, scale)
	}
	return nil
}

// Administrative genders: FHIR R4's AdministrativeGender value set, which HL7 v2 and most
// EHRs map onto. "" means not given.
const (
	GenderMale    = "male"
	GenderFemale  = "female"
	GenderOther   = "other"
	GenderUnknown = "unknown"
)

// Genders lists the administrative genders CheckGender accepts (besides "").
func Genders() []string { return []string{GenderMale, GenderFemale, GenderOther, GenderUnknown} }

// CheckGender refuses anything but "" (not given) and the four administrative genders, with
// an error wrapping ErrInvalid. Stores call it too, so that a FHIR or HL7 client reading the
// registry never meets a code outside the value set (such as "m" or "F").
func CheckGender(g string) error {
	if g == "" || slices.Contains(Genders(), g) {
		return nil
	}
	return fmt.Errorf("%w: gender must be one of %s (or not given), got %q", ErrInvalid, strings.Join(Genders(), ", "), g)
}

// JoinName is the display text of a name given in parts: the given names, then the family
// name, separated by single spaces (empty parts left out).
func JoinName(given []string, family string) string {
	parts := make([]string, 0, len(given)+1)
	for _, g := range given {
		if g = strings.TrimSpace(g); g != "" {
			parts = append(parts, g)
		}
	}
	if family = strings.TrimSpace(family); family != "" {
		parts = append(parts, family)
	}
	return strings.Join(parts, " ")
}

// PatientFilter selects patients; zero fields match everything.
type PatientFilter struct {
	Tenant string
	MRN    string
	Limit  int
}

// CheckPatient refuses a patient whose SpO2 scale, CGM limits or gender the checks above
// refuse, or whose names and identifiers CheckText refuses (control characters, invalid UTF-8,
// longer than MaxNameLen) or a set location CheckLocation refuses, with the first error; a text error names the field as the REST API
// does ("name", "given[1]", "mrn"). The stores call it, so that every path that writes a
// patient (REST, FHIR, HL7, imports) is checked in one place.
func CheckPatient(p Patient) error {
	for _, err := range []error{CheckSpO2Scale(p.SpO2Scale), CheckGlucoseLimits(p.CGMLimits), CheckGender(p.Gender)} {
		if err != nil {
			return err
		}
	}
	// The parts before the name: a name joined from them would otherwise take the blame.
	if len(p.Given) > MaxGivenNames {
		return fmt.Errorf("%w: given has %d names, at most %d are allowed", ErrInvalid, len(p.Given), MaxGivenNames)
	}
	for i, g := range p.Given {
		if err := CheckText(fmt.Sprintf("given[%d]", i), g, MaxNameLen); err != nil {
			return err
		}
	}
	for _, f := range [...]struct{ name, v string }{{"id", p.ID}, {"tenant", p.Tenant}, {"family", p.Family}, {"name", p.Name},
		{"mrn", p.MRN}, {"birthDate", p.BirthDate}, {"location", p.Location}} {
		if err := CheckText(f.name, f.v, MaxNameLen); err != nil {
			return err
		}
	}
	if p.Location != "" {
		return CheckLocation("location", p.Location)
	}
	return nil
}

// MaxGivenNames bounds a patient's given names: more than anyone has, few enough that a
// record stays small.
const MaxGivenNames = 16
