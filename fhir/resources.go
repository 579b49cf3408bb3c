package fhir

import "encoding/json"

// The FHIR R4 data types and resources iomt emits and accepts, as plain structs: only the
// elements iomt fills or reads. encoding/json renders them as FHIR JSON.

// Code systems and URLs used in the resources.
const (
	SystemLOINC       = "http://loinc.org"
	SystemSNOMED      = "http://snomed.info/sct"
	SystemUCUM        = "http://unitsofmeasure.org"
	SystemMDC         = "urn:iso:std:iso:11073:10101"
	SystemObsCategory = "http://terminology.hl7.org/CodeSystem/observation-category"
	SystemV2Identifer = "http://terminology.hl7.org/CodeSystem/v2-0203"
	// SystemDeviceKind is iomt's own code system for Device.type: the device kinds of the
	// registry (pulse-oximeter, ecg-patch, ...).
	SystemDeviceKind = "urn:iomt:device-kind"
	// DefaultMRNSystem is the identifier system of medical record numbers unless
	// Config.MRNSystem says otherwise.
	DefaultMRNSystem = "urn:iomt:mrn"

	ProfileVitalSigns = "http://hl7.org/fhir/StructureDefinition/vitalsigns"
	ContentType       = "application/fhir+json"
)

// Coding is a code from a code system.
type Coding struct {
	System  string `json:"system,omitempty"`
	Code    string `json:"code,omitempty"`
	Display string `json:"display,omitempty"`
}

// CodeableConcept is a concept given by codings and/or text.
type CodeableConcept struct {
	Coding []Coding `json:"coding,omitempty"`
	Text   string   `json:"text,omitempty"`
}

// Identifier is a business identifier (an MRN).
type Identifier struct {
	Use    string           `json:"use,omitempty"`
	Type   *CodeableConcept `json:"type,omitempty"`
	System string           `json:"system,omitempty"`
	Value  string           `json:"value,omitempty"`
}

// Reference points at another resource.
type Reference struct {
	Reference  string      `json:"reference,omitempty"`
	Type       string      `json:"type,omitempty"`
	Identifier *Identifier `json:"identifier,omitempty"`
	Display    string      `json:"display,omitempty"`
}

// Quantity is a measured amount; Value is always written, 0 included.
type Quantity struct {
	Value  float64 `json:"value"`
	Unit   string  `json:"unit,omitempty"`
	System string  `json:"system,omitempty"`
	Code   string  `json:"code,omitempty"`
}

// Period is a time range.
type Period struct {
	Start string `json:"start,omitempty"`
	End   string `json:"end,omitempty"`
}

// Meta holds the profiles a resource claims and when it last changed.
type Meta struct {
	LastUpdated string   `json:"lastUpdated,omitempty"`
	Profile     []string `json:"profile,omitempty"`
}

// HumanName is a person's name.
type HumanName struct {
	Use    string   `json:"use,omitempty"`
	Text   string   `json:"text,omitempty"`
	Family string   `json:"family,omitempty"`
	Given  []string `json:"given,omitempty"`
}

// Patient is FHIR's Patient, as far as iomt keeps one.
type Patient struct {
	ResourceType string       `json:"resourceType"`
	ID           string       `json:"id,omitempty"`
	Meta         *Meta        `json:"meta,omitempty"`
	Identifier   []Identifier `json:"identifier,omitempty"`
	Active       *bool        `json:"active,omitempty"`
	Name         []HumanName  `json:"name,omitempty"`
	Gender       string       `json:"gender,omitempty"` // male | female | other | unknown
	BirthDate    string       `json:"birthDate,omitempty"`
}

// DeviceProperty is one reported property of a device (its battery level).
type DeviceProperty struct {
	Type          CodeableConcept `json:"type"`
	ValueQuantity []Quantity      `json:"valueQuantity,omitempty"`
}

// Device is FHIR's Device.
type Device struct {
	ResourceType string           `json:"resourceType"`
	ID           string           `json:"id,omitempty"`
	Meta         *Meta            `json:"meta,omitempty"`
	Identifier   []Identifier     `json:"identifier,omitempty"`
	Status       string           `json:"status,omitempty"`
	Type         *CodeableConcept `json:"type,omitempty"`
	Patient      *Reference       `json:"patient,omitempty"`
	Property     []DeviceProperty `json:"property,omitempty"`
}

// DeviceMetric is one kind of measurement a device makes.
type DeviceMetric struct {
	ResourceType      string           `json:"resourceType"`
	ID                string           `json:"id,omitempty"`
	Type              CodeableConcept  `json:"type"`
	Unit              *CodeableConcept `json:"unit,omitempty"`
	Source            *Reference       `json:"source,omitempty"`
	OperationalStatus string           `json:"operationalStatus,omitempty"`
	Category          string           `json:"category"`
}

// SampledData is a series of evenly spaced samples: value = Origin + Factor * data[i].
type SampledData struct {
	Origin     Quantity `json:"origin"`
	Period     float64  `json:"period"` // milliseconds between samples
	Factor     float64  `json:"factor,omitempty"`
	LowerLimit *float64 `json:"lowerLimit,omitempty"`
	UpperLimit *float64 `json:"upperLimit,omitempty"`
	Dimensions int      `json:"dimensions"`
	Data       string   `json:"data,omitempty"`
}

// ObservationComponent is one part of a panel (systolic, diastolic) or multi-lead recording.
type ObservationComponent struct {
	Code             CodeableConcept `json:"code"`
	ValueQuantity    *Quantity       `json:"valueQuantity,omitempty"`
	ValueSampledData *SampledData    `json:"valueSampledData,omitempty"`
}

// Observation is FHIR's Observation.
type Observation struct {
	ResourceType      string                 `json:"resourceType"`
	ID                string                 `json:"id,omitempty"`
	Meta              *Meta                  `json:"meta,omitempty"`
	Status            string                 `json:"status"`
	Category          []CodeableConcept      `json:"category,omitempty"`
	Code              CodeableConcept        `json:"code"`
	Subject           *Reference             `json:"subject,omitempty"`
	EffectiveDateTime string                 `json:"effectiveDateTime,omitempty"`
	ValueQuantity     *Quantity              `json:"valueQuantity,omitempty"`
	ValueSampledData  *SampledData           `json:"valueSampledData,omitempty"`
	Device            *Reference             `json:"device,omitempty"`
	DerivedFrom       []Reference            `json:"derivedFrom,omitempty"`
	Component         []ObservationComponent `json:"component,omitempty"`
}

// BundleLink is a paging link of a searchset.
type BundleLink struct {
	Relation string `json:"relation"`
	URL      string `json:"url"`
}

// BundleEntrySearch says why an entry is in a searchset.
type BundleEntrySearch struct {
	Mode string `json:"mode,omitempty"`
}

// BundleEntryRequest is a transaction entry's HTTP request.
type BundleEntryRequest struct {
	Method      string `json:"method"`
	URL         string `json:"url"`
	IfNoneExist string `json:"ifNoneExist,omitempty"`
}

// BundleEntryResponse is a transaction-response entry's outcome.
type BundleEntryResponse struct {
	Status   string          `json:"status"`
	Location string          `json:"location,omitempty"`
	Outcome  json.RawMessage `json:"outcome,omitempty"`
}

// BundleEntry is one entry of a Bundle; Resource is any of the resource structs or raw JSON.
type BundleEntry struct {
	FullURL  string               `json:"fullUrl,omitempty"`
	Resource any                  `json:"resource,omitempty"`
	Search   *BundleEntrySearch   `json:"search,omitempty"`
	Request  *BundleEntryRequest  `json:"request,omitempty"`
	Response *BundleEntryResponse `json:"response,omitempty"`
}

// Bundle is a searchset, transaction or transaction-response.
type Bundle struct {
	ResourceType string        `json:"resourceType"`
	ID           string        `json:"id,omitempty"`
	Meta         *Meta         `json:"meta,omitempty"`
	Type         string        `json:"type"`
	Timestamp    string        `json:"timestamp,omitempty"`
	Total        *int          `json:"total,omitempty"`
	Link         []BundleLink  `json:"link,omitempty"`
	Entry        []BundleEntry `json:"entry,omitempty"`
}

// Issue is one problem an OperationOutcome reports.
type Issue struct {
	Severity    string   `json:"severity"`
	Code        string   `json:"code"`
	Diagnostics string   `json:"diagnostics,omitempty"`
	Expression  []string `json:"expression,omitempty"`
}

// OperationOutcome is FHIR's error (and warning) report.
type OperationOutcome struct {
	ResourceType string  `json:"resourceType"`
	Issue        []Issue `json:"issue"`
}

// Outcome builds a one-issue OperationOutcome.
func Outcome(severity, code, diagnostics string, expression ...string) OperationOutcome {
	return OperationOutcome{ResourceType: "OperationOutcome", Issue: []Issue{{Severity: severity, Code: code, Diagnostics: diagnostics, Expression: expression}}}
}
