package fhir

import (
	"net/http"
	"strconv"

	"github.com/iomt/iomt"
)

type csSearchParam struct {
	Name          string `json:"name"`
	Definition    string `json:"definition,omitempty"`
	Type          string `json:"type"`
	Documentation string `json:"documentation,omitempty"`
}

type csInteraction struct {
	Code          string `json:"code"`
	Documentation string `json:"documentation,omitempty"`
}

type csOperation struct {
	Name          string `json:"name"`
	Definition    string `json:"definition"`
	Documentation string `json:"documentation,omitempty"`
}

type csResource struct {
	Type              string          `json:"type"`
	Profile           string          `json:"profile,omitempty"`
	SupportedProfile  []string        `json:"supportedProfile,omitempty"`
	Documentation     string          `json:"documentation,omitempty"`
	Interaction       []csInteraction `json:"interaction"`
	Versioning        string          `json:"versioning"`
	ReadHistory       bool            `json:"readHistory"`
	UpdateCreate      bool            `json:"updateCreate"`
	ConditionalCreate bool            `json:"conditionalCreate"`
	ConditionalRead   string          `json:"conditionalRead"`
	ConditionalUpdate bool            `json:"conditionalUpdate"`
	ConditionalDelete string          `json:"conditionalDelete"`
	SearchParam       []csSearchParam `json:"searchParam,omitempty"`
	Operation         []csOperation   `json:"operation,omitempty"`
}

type csRest struct {
	Mode          string          `json:"mode"`
	Documentation string          `json:"documentation,omitempty"`
	Security      map[string]any  `json:"security,omitempty"`
	Resource      []csResource    `json:"resource"`
	Interaction   []csInteraction `json:"interaction,omitempty"`
	SearchParam   []csSearchParam `json:"searchParam,omitempty"`
}

type capabilityStatement struct {
	ResourceType   string            `json:"resourceType"`
	Status         string            `json:"status"`
	Date           string            `json:"date"`
	Publisher      string            `json:"publisher,omitempty"`
	Kind           string            `json:"kind"`
	Software       map[string]string `json:"software,omitempty"`
	Implementation map[string]string `json:"implementation,omitempty"`
	FHIRVersion    string            `json:"fhirVersion"`
	Format         []string          `json:"format"`
	Rest           []csRest          `json:"rest"`
}

const spBase = "http://hl7.org/fhir/SearchParameter/"

// capability describes exactly what this handler does; the tests check it against the routes.
func (s *server) capability(r *http.Request) capabilityStatement {
	read := csInteraction{Code: "read"}
	search := csInteraction{Code: "search-type"}
	common := []csSearchParam{
		{Name: "_id", Definition: spBase + "Resource-id", Type: "token"},
		{Name: "_count", Type: "number", Documentation: "page size; default " + strconv.Itoa(s.DefaultCount) + ", at most " + strconv.Itoa(s.MaxCount)},
		{Name: "_summary", Type: "token", Documentation: "count (the total only) or false; other values are refused"},
		{Name: "_total", Type: "token", Documentation: "accepted and ignored: the total is always given"},
		{Name: "_offset", Type: "number", Documentation: "where the page starts; set by the paging links"},
	}
	res := func(typ, doc string, inter []csInteraction, params ...csSearchParam) csResource {
		return csResource{Type: typ, Profile: "http://hl7.org/fhir/StructureDefinition/" + typ, Documentation: doc,
			Interaction: inter, Versioning: "no-version", ConditionalRead: "not-supported", ConditionalDelete: "not-supported",
			SearchParam: append(append([]csSearchParam{}, common...), params...)}
	}
	patient := res("Patient", "The registry's patients: identifier (the MRN, system "+s.m.mrnSystem()+"), one name (text, family, given), gender, birthDate. Writes holding other elements (telecom, address, contact, ...), name prefix, suffix or period, or meta.security are refused with 422, as iomt does not keep them; text and the rest of meta are ignored (iomt generates its own). PUT to an unknown id creates the patient (client-chosen id).",
		[]csInteraction{read, search, {Code: "create"}, {Code: "update"}},
		csSearchParam{Name: "identifier", Definition: spBase + "Patient-identifier", Type: "token"},
		csSearchParam{Name: "name", Definition: spBase + "Patient-name", Type: "string"},
		csSearchParam{Name: "birthdate", Definition: spBase + "individual-birthdate", Type: "date"})
	patient.UpdateCreate, patient.ConditionalCreate = true, true
	device := res("Device", "The registry's devices: identifier (system and value; serial number, UDI), type (system "+SystemDeviceKind+") the device kind, "+iomt.DeviceKindOther+" when a write gives none, patient the binding, property the battery level. Writes holding other elements, or identifiers with use, type, period or assigner, are refused with 422; text is ignored (iomt generates none). Devices created here get no credentials and cannot send data: create devices that send data through the REST API (POST /api/v1/devices), which shows their credentials once.",
		[]csInteraction{read, search, {Code: "create"}, {Code: "update"}},
		csSearchParam{Name: "identifier", Definition: spBase + "Device-identifier", Type: "token", Documentation: "[system|]value; one value for If-None-Exist"},
		csSearchParam{Name: "patient", Definition: spBase + "Device-patient", Type: "reference"},
		csSearchParam{Name: "type", Definition: spBase + "Device-type", Type: "token"})
	device.UpdateCreate, device.ConditionalCreate = true, true
	metric := res("DeviceMetric", "What each device measures, derived from its kind; read-only.",
		[]csInteraction{read, search},
		csSearchParam{Name: "source", Definition: spBase + "DeviceMetric-source", Type: "reference"},
		csSearchParam{Name: "type", Definition: spBase + "DeviceMetric-type", Type: "token"})
	obs := res("Observation", "Readings from devices (read-only: they arrive through ingest). Vital signs follow the R4 vital-signs profile; blood pressure is the 85354-9 panel of the systolic and diastolic readings of one device at one time; waveforms are valueSampledData per device and "+s.WaveformWindow.String()+" window: the ECG one Observation (MDC 131328) with a component per lead, as the official example, pleth one Observation. Ids encode patient, code, time and device. A search without patient (or subject) covers every patient whose record the caller may read.",
		[]csInteraction{read, search},
		csSearchParam{Name: "patient", Definition: spBase + "clinical-patient", Type: "reference", Documentation: "one patient; without it (or subject), the caller's patients"},
		csSearchParam{Name: "subject", Definition: spBase + "Observation-subject", Type: "reference"},
		csSearchParam{Name: "code", Definition: spBase + "clinical-code", Type: "token", Documentation: "matches any coding of Observation.code (LOINC, the vital-signs LOINC, MDC); an ECG lead's code also finds the ECG Observations holding that lead; comma = OR"},
		csSearchParam{Name: "combo-code", Definition: spBase + "Observation-combo-code", Type: "token", Documentation: "code or component code (finds blood-pressure panels by 8480-6, ECGs by a lead)"},
		csSearchParam{Name: "category", Definition: spBase + "Observation-category", Type: "token"},
		csSearchParam{Name: "date", Definition: spBase + "clinical-date", Type: "date", Documentation: "prefixes eq, ne, ge, gt, le, lt, sa, eb; repeatable (AND); partial dates"},
		csSearchParam{Name: "device", Definition: spBase + "Observation-device", Type: "reference"},
		csSearchParam{Name: "_lastUpdated", Definition: spBase + "Resource-lastUpdated", Type: "date", Documentation: "iomt records no storage time per reading and readings never change, so this filters on the effective time, like date; a reading replayed late by a gateway is not found by a _lastUpdated window covering its arrival"},
		csSearchParam{Name: "_sort", Type: "string", Documentation: "date or -date (default date ascending)"})
	obs.SupportedProfile = []string{ProfileVitalSigns, "http://hl7.org/fhir/StructureDefinition/bp"}
	obs.Operation = []csOperation{{Name: "lastn", Definition: "http://hl7.org/fhir/OperationDefinition/Observation-lastn",
		Documentation: "parameters patient (required), category, code, max; waveforms excluded"}}
	auditEvent := res("AuditEvent", "The tamper-evident audit trail (read-only), in IHE BALP shapes: type DICOM 110110 Patient Record for access to patient data (an entity Patient/<id>, role 1, per patient concerned), rest for other HTTP requests, 110114 User Authentication for sign-ins, 110113 Security Alert with subtype 110127 for break-the-glass (purposeOfEvent ETREAT); subtype the RESTful interaction and iomt's action (system "+SystemAuditAction+"); agent the actor (who.identifier system "+SystemAuditActor+", requestor true, network address); source.observer the node; outcome 0, 4 (refused) or 8 (failed). Ids are record numbers; records come oldest first. A page's Bundle has a total only when the search reached the end of the trail.",
		[]csInteraction{read, search},
		csSearchParam{Name: "patient", Definition: spBase + "AuditEvent-patient", Type: "reference", Documentation: "records naming the patient; one patient"},
		csSearchParam{Name: "agent", Definition: spBase + "AuditEvent-agent", Type: "reference", Documentation: "the actor as the trail names it: user:<id>, device:<id>, token:<id> (optionally prefixed " + SystemAuditActor + "|)"},
		csSearchParam{Name: "date", Definition: spBase + "AuditEvent-date", Type: "date", Documentation: "prefixes eq, ne, ge, gt, le, lt, sa, eb; repeatable (AND); partial dates"},
		csSearchParam{Name: "action", Definition: spBase + "AuditEvent-action", Type: "token", Documentation: "C, R, U, D or E; comma = OR"},
		csSearchParam{Name: "type", Definition: spBase + "AuditEvent-type", Type: "token"},
		csSearchParam{Name: "subtype", Definition: spBase + "AuditEvent-subtype", Type: "token", Documentation: "a RESTful interaction (read, search-type, ...), a DICOM code, or iomt's action (patient.read; a prefix ending in '.' such as patient. for all under it)"},
		csSearchParam{Name: "outcome", Definition: spBase + "AuditEvent-outcome", Type: "token", Documentation: "0 success, 4 refused, 8 failed"})
	now := dateTime(s.Now())
	return capabilityStatement{
		ResourceType: "CapabilityStatement", Status: "active", Date: now, Publisher: "iomt", Kind: "instance",
		Software:       map[string]string{"name": "iomt"},
		Implementation: map[string]string{"description": "iomt FHIR R4 API", "url": s.base(r)},
		FHIRVersion:    "4.0.1", Format: []string{"json"},
		Rest: []csRest{{
			Mode:          "server",
			Documentation: "JSON only. Unsupported search parameters are refused with 400 unless the request says Prefer: handling=lenient. Paging with _count and _offset; total is always given. No history, no versions, no batch/transaction, no delete.",
			Security: map[string]any{"cors": false,
				"service":     []CodeableConcept{{Coding: []Coding{{System: "http://terminology.hl7.org/CodeSystem/restful-security-service", Code: "SMART-on-FHIR", Display: "SMART-on-FHIR"}}}},
				"description": "Authorization: Bearer <token>: an API token an admin issued to a service account, or an access token of the configured OpenID provider, with SMART on FHIR v2 scopes (system/Observation.rs, user/Patient.r, patient/Observation.rs?category=vital-signs) applied on top of the account's roles; see .well-known/smart-configuration. Every read and write is limited to the caller's patients (their care teams and emergency accesses): searches leave out other patients, a read of one is refused (403 for a clinician of the same tenant, who may break the glass; 404 otherwise). Every request is recorded in the audit trail before its response is sent. GET metadata and .well-known/smart-configuration need no token."},
			Resource: []csResource{patient, device, metric, obs, auditEvent},
		}},
	}
}
