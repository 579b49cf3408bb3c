package codes

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/iomt/iomt"
)

// Kind says what sort of value a code carries, which decides where ingest sends it.
type Kind int

// Kinds start at 1 so that a zero Code is not mistaken for a vital sign.
const (
	Vital        Kind = iota + 1 // a numeric spot or periodic value (heart rate, weight)
	Waveform                     // an evenly sampled signal (ECG lead, pleth)
	Event                        // something that happened (a fall); value 1 = detected
	DeviceStatus                 // about the device, not the patient (battery)
	Panel                        // groups other codes and has no value of its own (BP panel)
	Score                        // an assessment scale: charted by a clinician or computed (ACVPU, NEWS2)
	// SensorStatus is a device's own word on its sensor, as bits (probe off, poor signal):
	// kept with the readings, for the alarms and the record, but no FHIR Observation.
	SensorStatus
)

var kindNames = [...]string{Vital: "vital", Waveform: "waveform", Event: "event", DeviceStatus: "device-status", Panel: "panel", Score: "score", SensorStatus: "sensor-status"}

func (k Kind) String() string {
	if k > 0 && int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "Kind(" + strconv.Itoa(int(k)) + ")"
}

// MarshalText makes JSON show the kind by name.
func (k Kind) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// UnmarshalText is the inverse of MarshalText.
func (k *Kind) UnmarshalText(b []byte) error {
	for i, n := range kindNames {
		if n != "" && n == string(b) {
			*k = Kind(i)
			return nil
		}
	}
	return fmt.Errorf("codes: unknown kind %q", b)
}

// MDCTerm is one IEEE 11073-10101 term: reference id and numeric code (partition<<16 | term).
type MDCTerm struct {
	RefID string `json:"refid"`
	Code  uint32 `json:"code"`
}

// Code is one entry of the catalog. Codes returned by a Catalog share their slices with it:
// read them, do not modify them.
type Code struct {
	ID      string   `json:"id"`      // what iomt stores: the LOINC code where one exists, else the MDC reference id
	Display string   `json:"display"` // human name, LOINC's where there is a LOINC code
	LOINC   string   `json:"loinc,omitempty"`
	SNOMED  string   `json:"snomed,omitempty"`   // SNOMED CT concept, for codes LOINC lacks (NEWS2)
	MDC     string   `json:"mdc,omitempty"`      // MDC reference id, e.g. "MDC_ECG_HEART_RATE"
	MDCCode uint32   `json:"mdc_code,omitempty"` // partition<<16 | term code, e.g. 147842
	Aliases []string `json:"aliases,omitempty"`  // short names devices may use, lower case
	Unit    string   `json:"unit"`               // canonical UCUM unit; "" for a panel
	Kind    Kind     `json:"kind"`

	// Min and Max bound the physically possible values in Unit; ingest refuses the rest.
	Min float64 `json:"min"`
	Max float64 `json:"max"`
	// Scale is, for a Waveform, the canonical-unit value of one stored integer step.
	Scale float64 `json:"scale,omitempty"`

	// FHIRVitalSigns is true where the FHIR R4 vital-signs profiles cover the code.
	FHIRVitalSigns bool `json:"fhir_vital_signs,omitempty"`
	// VitalSignsLOINC is the LOINC code those profiles fix in Observation.code; FHIR mapping
	// adds it as a further coding where it differs from LOINC (59408-5 needs 2708-6).
	VitalSignsLOINC string `json:"vital_signs_loinc,omitempty"`

	// Components lists, for a Panel, the IDs of the codes it groups.
	Components []string `json:"components,omitempty"`
	// AltMDC lists further MDC terms that iomt files under this code, because its Observation
	// has no place for the distinction they make (the thermometer's body site, for instance).
	AltMDC []MDCTerm `json:"alt_mdc,omitempty"`
}

// Catalog is the immutable set of codes; it is safe for concurrent use.
type Catalog struct {
	codes  []Code
	conv   []map[string]linear // per code index: accepted unit → conversion to canonical
	byID   map[string]int
	byName map[string]int // every name form, exactly as the table spells it
	folded map[string]int // every name form, lower case
}

// maxName bounds the names Lookup folds on the stack; the longest name in the table is far
// shorter, so a longer one cannot match anyway.
const maxName = 64

// New builds the catalog. It panics if the built-in table is inconsistent (a name used twice),
// which tests rule out.
func New() *Catalog {
	entries := table()
	c := &Catalog{
		codes:  make([]Code, len(entries)),
		conv:   make([]map[string]linear, len(entries)),
		byID:   make(map[string]int, len(entries)),
		byName: make(map[string]int, 8*len(entries)),
		folded: make(map[string]int, 8*len(entries)),
	}
	add := func(name string, i int) {
		if name == "" {
			return
		}
		if len(name) > maxName {
			panic("codes: name longer than maxName: " + name)
		}
		if j, dup := c.byName[name]; dup && j != i {
			panic(fmt.Sprintf("codes: name %q used by %s and %s", name, c.codes[j].ID, c.codes[i].ID))
		}
		c.byName[name] = i
		f := strings.ToLower(name)
		if j, dup := c.folded[f]; dup && j != i {
			panic(fmt.Sprintf("codes: name %q used by %s and %s", name, c.codes[j].ID, c.codes[i].ID))
		}
		c.folded[f] = i
	}
	for i, e := range entries {
		c.codes[i] = e.Code
		c.conv[i] = e.units.table()
		if _, dup := c.byID[e.ID]; dup {
			panic("codes: duplicate ID " + e.ID)
		}
		c.byID[e.ID] = i
		add(e.ID, i)
		add(e.LOINC, i)
		add(e.MDC, i)
		if e.MDCCode != 0 {
			add(strconv.FormatUint(uint64(e.MDCCode), 10), i)
		}
		for _, t := range e.AltMDC {
			add(t.RefID, i)
			add(strconv.FormatUint(uint64(t.Code), 10), i)
		}
		for _, a := range e.Aliases {
			add(a, i)
		}
	}
	return c
}

// Lookup finds a code by LOINC code, MDC reference id, decimal MDC code or alias. Aliases and
// MDC reference ids match whatever their case. It does not allocate.
func (c *Catalog) Lookup(name string) (Code, bool) {
	if i, ok := c.byName[name]; ok {
		return c.codes[i], true
	}
	if len(name) > maxName {
		return Code{}, false
	}
	var buf [maxName]byte
	for i := 0; i < len(name); i++ {
		b := name[i]
		if 'A' <= b && b <= 'Z' {
			b += 'a' - 'A'
		}
		buf[i] = b
	}
	// The compiler does not allocate for a string conversion used only as a map key.
	if i, ok := c.folded[string(buf[:len(name)])]; ok {
		return c.codes[i], true
	}
	return Code{}, false
}

// ByID finds a code by the ID iomt stores (exact match).
func (c *Catalog) ByID(id string) (Code, bool) {
	if i, ok := c.byID[id]; ok {
		return c.codes[i], true
	}
	return Code{}, false
}

// All returns every code, in the catalog's fixed order (vital signs first, then waveforms,
// events and device status). The slice is the caller's; the codes' slices are shared.
func (c *Catalog) All() []Code {
	out := make([]Code, len(c.codes))
	copy(out, c.codes)
	return out
}

// Aliases returns a fresh map from every alias to the ID of its code.
func (c *Catalog) Aliases() map[string]string {
	m := make(map[string]string)
	for _, code := range c.codes {
		for _, a := range code.Aliases {
			m[a] = code.ID
		}
	}
	return m
}

// Units returns the units Convert accepts for the code with this ID, canonical first, the
// rest sorted; nil if the ID is unknown.
func (c *Catalog) Units(id string) []string {
	i, ok := c.byID[id]
	if !ok {
		return nil
	}
	return c.codes[i].unitList(c.conv[i])
}

// Convert returns value expressed in code's canonical unit. unit may be the canonical unit,
// "" (canonical), a UCUM synonym, a SenML unit or an MDC_DIM_* reference id that can express
// the code. Otherwise the error, a *UnitError, names both units.
func (c *Catalog) Convert(code Code, value float64, unit string) (float64, error) {
	i, ok := c.byID[code.ID]
	if !ok {
		return 0, &UnknownCodeError{Name: code.ID}
	}
	canon := &c.codes[i]
	if canon.Kind == Panel {
		return 0, &UnitError{Unit: unit, Code: *canon}
	}
	if unit == "" || unit == canon.Unit {
		return value, nil
	}
	l, ok := c.conv[i][unit]
	if !ok {
		return 0, &UnitError{Unit: unit, Code: *canon}
	}
	return l.apply(value), nil
}

// UnitError is Convert's refusal of a unit. It matches iomt.ErrInvalid with errors.Is.
type UnitError struct {
	Unit string
	Code Code
}

func (e *UnitError) Error() string {
	if e.Code.Kind == Panel {
		return fmt.Sprintf("codes: %s (%s) is a panel and has no value of its own", e.Code.Display, e.Code.ID)
	}
	return fmt.Sprintf("codes: unit %q cannot express %s (%s, %s)", e.Unit, e.Code.Display, e.Code.ID, e.Code.Unit)
}

// Unwrap lets callers map the refusal to a protocol reply through iomt.ErrInvalid.
func (e *UnitError) Unwrap() error { return iomt.ErrInvalid }

// UnknownCodeError reports a code the catalog does not hold. It matches iomt.ErrInvalid.
type UnknownCodeError struct{ Name string }

func (e *UnknownCodeError) Error() string { return fmt.Sprintf("codes: unknown code %q", e.Name) }

// Unwrap lets callers map the refusal to a protocol reply through iomt.ErrInvalid.
func (e *UnknownCodeError) Unwrap() error { return iomt.ErrInvalid }
