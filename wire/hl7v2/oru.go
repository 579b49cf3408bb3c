package hl7v2

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/iomt/iomt"
	"github.com/iomt/iomt/codes"
)

// Report is what an ORU^R01 carries: who sent it, about which patient, and the observations,
// grouped by the OBR they follow.
type Report struct {
	ControlID  string   `json:"control_id"`           // MSH-10
	Version    string   `json:"version"`              // MSH-12
	Sender     string   `json:"sender,omitempty"`     // MSH-3 and MSH-4, as written
	Receiver   string   `json:"receiver,omitempty"`   // MSH-5 and MSH-6, as written
	Sent       *DTM     `json:"sent,omitempty"`       // MSH-7
	Profile    string   `json:"profile,omitempty"`    // MSH-21, e.g. IHE PCD ORU-R01 2006
	Patient    Patient  `json:"patient"`              // PID
	Orders     []Order  `json:"orders"`               // OBR groups in message order
	Unmapped   int      `json:"unmapped"`             // numeric observations the catalog could not take
	Assumption string   `json:"assumption,omitempty"` // how times without an offset were read
	Notes      []string `json:"notes,omitempty"`      // NTE after PID
}

// Patient is PID's identification of the patient.
type Patient struct {
	// ID is the identifier iomt uses: the first PID-3 of type PI (patient internal id), or
	// the first identifier when none says PI.
	ID          string       `json:"id,omitempty"`
	Identifiers []Identifier `json:"identifiers,omitempty"` // PID-3 repetitions
	Family      string       `json:"family,omitempty"`      // PID-5.1
	Given       string       `json:"given,omitempty"`       // PID-5.2
}

// Identifier is an HL7 CX (PID-3): an id, the authority that assigned it and its type.
type Identifier struct {
	ID        string `json:"id"`
	Authority string `json:"authority,omitempty"` // CX-4, first subcomponent
	Type      string `json:"type,omitempty"`      // CX-5, e.g. PI, MR
}

// Order is one OBR and the observations that follow it.
type Order struct {
	SetID        string        `json:"set_id,omitempty"`
	Placer       string        `json:"placer,omitempty"`       // OBR-2.1
	Filler       string        `json:"filler,omitempty"`       // OBR-3.1
	Service      Coded         `json:"service"`                // OBR-4
	Observed     *DTM          `json:"observed,omitempty"`     // OBR-7
	ObservedEnd  *DTM          `json:"observed_end,omitempty"` // OBR-8
	Notes        []string      `json:"notes,omitempty"`
	Observations []Observation `json:"observations"`
}

// Coded is an HL7 CE/CWE: code, text and coding system (MDC, UCUM, SNOMED-CT...).
type Coded struct {
	Code   string `json:"code,omitempty"`
	Text   string `json:"text,omitempty"`
	System string `json:"system,omitempty"`
}

func coded(r Repetition) Coded { return Coded{Code: r.Comp(1), Text: r.Comp(2), System: r.Comp(3)} }

// Equipment is an HL7 EI (OBX-18): entity id, namespace, universal id and its type.
type Equipment struct {
	ID            string `json:"id"`
	Namespace     string `json:"namespace,omitempty"`
	UniversalID   string `json:"universal_id,omitempty"`
	UniversalType string `json:"universal_type,omitempty"`
}

// deviceID is the identifier a device is known by: its EUI-64 where one is given (PCD-01
// puts it in the universal id, Continua in the entity id with namespace EUI-64).
func (e Equipment) deviceID() string {
	if e.UniversalID != "" && strings.EqualFold(e.UniversalType, "EUI-64") {
		return e.UniversalID
	}
	return e.ID
}

// Observation is one OBX, with what IHE PCD-01 reads from it.
type Observation struct {
	SetID     string `json:"set_id,omitempty"`     // OBX-1
	ValueType string `json:"value_type,omitempty"` // OBX-2: NM, ST, CWE, NA, SN, DTM...
	Code      Coded  `json:"code"`                 // OBX-3, MDC in PCD-01
	// SubID is OBX-4 as written; Containment reads it as the MDS.VMD.CHAN.METRIC(.FACET)
	// path of IEEE 11073, nil when it is not a dotted list of numbers.
	SubID       string      `json:"sub_id,omitempty"`
	Containment []int       `json:"containment,omitempty"`
	Values      []string    `json:"values,omitempty"` // OBX-5 repetitions (NA: the components)
	Coded       []Coded     `json:"coded,omitempty"`  // OBX-5 for CWE/CE values
	Unit        Coded       `json:"unit"`             // OBX-6
	Range       string      `json:"range,omitempty"`  // OBX-7
	Flags       []string    `json:"flags,omitempty"`  // OBX-8 repetitions
	Status      string      `json:"status"`           // OBX-11
	Time        *DTM        `json:"time,omitempty"`   // when observed, UTC
	TimeSource  string      `json:"time_source,omitempty"`
	Methods     []Coded     `json:"methods,omitempty"`   // OBX-17
	Equipment   []Equipment `json:"equipment,omitempty"` // OBX-18
	// Device is the equipment the reading came from: this OBX's OBX-18 or that of the OBX
	// that contains it (the MDS), so that every metric names its device.
	Device string   `json:"device,omitempty"`
	Notes  []string `json:"notes,omitempty"`
	// Mapped is set for a numeric observation the catalog knows; Unmapped says why one is
	// not (unknown code, unit, range, status). Non-numeric observations have neither.
	Mapped   *Mapped `json:"mapped,omitempty"`
	Unmapped string  `json:"unmapped,omitempty"`
}

// Mapped is a numeric observation in the catalog's terms.
type Mapped struct {
	Code    string    `json:"code"` // catalog ID: LOINC where there is one
	Display string    `json:"display"`
	Unit    string    `json:"unit"` // canonical UCUM unit
	Value   float64   `json:"value"`
	Values  []float64 `json:"values,omitempty"` // NA: every sample, converted
}

// Readings returns the mapped single-value observations as domain observations, for ingest.
// Device is the OBX's device, Patient the report's patient id; times are at millisecond
// precision as iomt stores them.
func (r *Report) Readings() []iomt.Observation {
	var out []iomt.Observation
	for _, o := range r.Orders {
		for _, obs := range o.Observations {
			if obs.Mapped == nil || obs.Mapped.Values != nil || obs.Time == nil {
				continue
			}
			out = append(out, iomt.Observation{
				Patient: r.Patient.ID, Device: obs.Device, Code: obs.Mapped.Code,
				Time: obs.Time.Time.Truncate(time.Millisecond), Value: obs.Mapped.Value, Unit: obs.Mapped.Unit,
			})
		}
	}
	return out
}

// valueTypes is HL7 table 0125 (value types of OBX-2).
var valueTypes = map[string]bool{
	"AD": true, "CE": true, "CF": true, "CK": true, "CN": true, "CP": true, "CWE": true, "CX": true,
	"DR": true, "DT": true, "DTM": true, "ED": true, "FT": true, "ID": true, "IS": true, "MA": true,
	"MO": true, "NA": true, "NM": true, "PN": true, "RP": true, "SN": true, "ST": true, "TM": true,
	"TN": true, "TS": true, "TX": true, "XAD": true, "XCN": true, "XON": true, "XPN": true, "XTN": true,
	"CNE": true,
}

// resultStatus is HL7 table 0085 (OBX-11), with whether a result in that status is a reading
// to store.
var resultStatus = map[string]string{
	"C": "", "F": "", "P": "", "R": "", "S": "", "U": "",
	"D": "deleted", "I": "pending", "N": "not asked", "O": "order detail only", "W": "wrong, replaced", "X": "cannot be obtained",
}

// DecodeORU reads an ORU^R01 message. Structural faults are refusals (*Error, for an AE or AR
// ACK); a numeric observation the catalog cannot take is not: it is kept with Unmapped set.
// cat may be nil to skip the mapping.
func DecodeORU(m *Message, cat *codes.Catalog) (*Report, error) {
	msh := m.Header()
	if err := checkHeader(msh, "ORU", "R01"); err != nil {
		return nil, err
	}
	rep := &Report{
		ControlID: msh.Get(10, 1),
		Version:   msh.Get(12, 1),
		Sender:    joinNonEmpty(msh.Get(3, 1), msh.Get(4, 1)),
		Receiver:  joinNonEmpty(msh.Get(5, 1), msh.Get(6, 1)),
		Profile:   msh.Get(21, 1),
	}
	loc := time.UTC
	if s := msh.Get(7, 1); s != "" {
		t, err := ParseDTM(s, nil)
		if err != nil {
			return nil, fieldErr(DataTypeError, "MSH", 1, 7, 1, 1, "MSH-7 (date/time of message)", err)
		}
		rep.Sent = &t
		if t.HasOffset {
			// HL7: a time without an offset is in the sender's zone, and MSH-7 tells it.
			loc = time.FixedZone(s[len(s)-5:], offsetOf(s))
		}
	}
	if rep.Sent == nil || !rep.Sent.HasOffset {
		rep.Assumption = "times without a UTC offset are read as UTC: MSH-7 gives no offset"
	} else {
		rep.Assumption = "times without a UTC offset are read at MSH-7's offset " + loc.String()
	}

	seen := map[string]int{}
	var order *Order
	var obs *Observation
	for i := 1; i < len(m.Segments); i++ {
		s := &m.Segments[i]
		seen[s.Name]++
		seq, line := seen[s.Name], i+1
		switch s.Name {
		case "PID":
			if order != nil || rep.Patient.Identifiers != nil {
				return nil, &Error{Code: SegmentSequenceError, Segment: "PID", SegmentSeq: seq, Line: line, Reason: "PID after the first OBR or a second PID: one patient per message is supported"}
			}
			rep.Patient = patient(s)
			if len(rep.Patient.Identifiers) == 0 {
				return nil, &Error{Code: RequiredFieldMissing, Segment: "PID", SegmentSeq: seq, Field: 3, Line: line, Reason: "PID-3 (patient identifier list) is empty"}
			}
			obs = nil
		case "OBR":
			o, err := decodeOBR(s, seq, line, loc)
			if err != nil {
				return nil, err
			}
			rep.Orders = append(rep.Orders, o)
			order, obs = &rep.Orders[len(rep.Orders)-1], nil
		case "OBX":
			if order == nil {
				return nil, &Error{Code: SegmentSequenceError, Segment: "OBX", SegmentSeq: seq, Line: line, Reason: "OBX before any OBR"}
			}
			o, err := decodeOBX(s, seq, line, loc)
			if err != nil {
				return nil, err
			}
			order.Observations = append(order.Observations, o)
			obs = &order.Observations[len(order.Observations)-1]
		case "NTE":
			note := s.Get(3, 1)
			switch {
			case obs != nil:
				obs.Notes = append(obs.Notes, note)
			case order != nil:
				order.Notes = append(order.Notes, note)
			default:
				rep.Notes = append(rep.Notes, note)
			}
		case "MSH":
			return nil, &Error{Code: SegmentSequenceError, Segment: "MSH", SegmentSeq: seq, Line: line, Reason: "a second MSH segment"}
		default:
			// PV1, ORC, SPM, Z segments: nothing PCD-01 observations need.
		}
	}
	if len(rep.Orders) == 0 {
		return nil, &Error{Code: SegmentSequenceError, Segment: "OBR", Reason: "no OBR segment: an ORU^R01 needs at least one order group"}
	}
	for i := range rep.Orders {
		resolve(&rep.Orders[i])
		if cat != nil {
			for j := range rep.Orders[i].Observations {
				o := &rep.Orders[i].Observations[j]
				mapObservation(o, cat)
				if o.Unmapped != "" {
					rep.Unmapped++
				}
			}
		}
	}
	return rep, nil
}

func offsetOf(s string) int {
	t, err := ParseDTM(s, nil)
	if err != nil || !t.HasOffset {
		return 0
	}
	i := strings.LastIndexAny(s, "+-")
	tz := s[i:]
	secs := (int(tz[1]-'0')*10+int(tz[2]-'0'))*3600 + (int(tz[3]-'0')*10+int(tz[4]-'0'))*60
	if tz[0] == '-' {
		secs = -secs
	}
	return secs
}

func joinNonEmpty(a, b string) string {
	switch {
	case a == "":
		return b
	case b == "":
		return a
	}
	return a + " / " + b
}

// checkHeader refuses a message this receiver does not take, with the codes that make the
// ACK an AR.
func checkHeader(msh *Segment, code, trigger string) error {
	for _, f := range []struct {
		n    int
		name string
	}{{9, "message type"}, {10, "message control id"}, {11, "processing id"}, {12, "version id"}} {
		if msh.Field(f.n).Empty() {
			return &Error{Code: RequiredFieldMissing, Segment: "MSH", SegmentSeq: 1, Field: f.n, Line: 1, Reason: fmt.Sprintf("MSH-%d (%s) is empty", f.n, f.name)}
		}
	}
	c, t := msh.Get(9, 1), msh.Get(9, 2)
	if c != code {
		return &Error{Code: UnsupportedMessageType, Segment: "MSH", SegmentSeq: 1, Field: 9, Component: 1, Line: 1, Reason: fmt.Sprintf("message type %q: only %s^%s is taken", c, code, trigger)}
	}
	if t != trigger {
		return &Error{Code: UnsupportedEventCode, Segment: "MSH", SegmentSeq: 1, Field: 9, Component: 2, Line: 1, Reason: fmt.Sprintf("trigger event %q: only %s^%s is taken", t, code, trigger)}
	}
	switch p := msh.Get(11, 1); p {
	case "P", "D", "T":
	default:
		return &Error{Code: UnsupportedProcessing, Segment: "MSH", SegmentSeq: 1, Field: 11, Line: 1, Reason: fmt.Sprintf("processing id %q is not P, D or T", p)}
	}
	if v := msh.Get(12, 1); !strings.HasPrefix(v, "2.") {
		return &Error{Code: UnsupportedVersion, Segment: "MSH", SegmentSeq: 1, Field: 12, Line: 1, Reason: fmt.Sprintf("version %q is not HL7 v2", v)}
	}
	return nil
}

func fieldErr(code ErrorCode, seg string, seq, line, field, comp int, what string, err error) *Error {
	return &Error{Code: code, Segment: seg, SegmentSeq: seq, Line: line, Field: field, Component: comp, Reason: what, Err: err}
}

func patient(s *Segment) Patient {
	var p Patient
	for _, r := range s.Field(3) {
		id := Identifier{ID: r.Comp(1), Authority: r.Sub(4, 1), Type: strings.TrimSpace(r.Comp(5))}
		if id.ID == "" {
			continue
		}
		p.Identifiers = append(p.Identifiers, id)
		if p.ID == "" && id.Type == "PI" {
			p.ID = id.ID
		}
	}
	if p.ID == "" && len(p.Identifiers) > 0 {
		p.ID = p.Identifiers[0].ID
	}
	name := s.Field(5)
	p.Family, p.Given = name.Comp(1), name.Comp(2)
	return p
}

func decodeOBR(s *Segment, seq, line int, loc *time.Location) (Order, error) {
	o := Order{
		SetID:   s.Get(1, 1),
		Placer:  s.Get(2, 1),
		Filler:  s.Get(3, 1),
		Service: coded(first(s.Field(4))),
	}
	for _, f := range []struct {
		n    int
		dst  **DTM
		what string
	}{{7, &o.Observed, "OBR-7 (observation date/time)"}, {8, &o.ObservedEnd, "OBR-8 (observation end date/time)"}} {
		v := s.Get(f.n, 1)
		if v == "" || v == Null {
			continue
		}
		t, err := ParseDTM(v, loc)
		if err != nil {
			return o, fieldErr(DataTypeError, "OBR", seq, line, f.n, 1, f.what, err)
		}
		*f.dst = &t
	}
	return o, nil
}

func first(f Field) Repetition {
	if len(f) == 0 {
		return nil
	}
	return f[0]
}

func decodeOBX(s *Segment, seq, line int, loc *time.Location) (Observation, error) {
	o := Observation{
		SetID:     s.Get(1, 1),
		ValueType: s.Get(2, 1),
		Code:      coded(first(s.Field(3))),
		SubID:     s.Get(4, 1),
		Unit:      coded(first(s.Field(6))),
		Range:     s.Get(7, 1),
		Status:    s.Get(11, 1),
	}
	value := s.Field(5)
	if o.Code.Code == "" && o.Code.Text == "" {
		return o, &Error{Code: RequiredFieldMissing, Segment: "OBX", SegmentSeq: seq, Field: 3, Line: line, Reason: "OBX-3 (observation identifier) is empty"}
	}
	if o.ValueType == "" {
		if !value.Empty() {
			return o, &Error{Code: RequiredFieldMissing, Segment: "OBX", SegmentSeq: seq, Field: 2, Line: line,
				Reason: fmt.Sprintf("OBX-2 (value type) is empty while OBX-5 holds a value (%s): HL7 requires the value type whenever OBX-5 is valued", o.Code.Text+" "+o.Code.Code)}
		}
	} else if !valueTypes[o.ValueType] {
		return o, &Error{Code: TableValueNotFound, Segment: "OBX", SegmentSeq: seq, Field: 2, Line: line, Reason: fmt.Sprintf("OBX-2 value type %q is not in HL7 table 0125", o.ValueType)}
	}
	// OBX-11 is required by HL7, but Continua's reference messages (ipf_valid-bp-continua-wan)
	// put the status of their time-sync OBX one field early. An empty status is tolerated
	// here and keeps a numeric value from becoming a reading (see mapObservation).
	if _, ok := resultStatus[o.Status]; !ok && o.Status != "" {
		return o, &Error{Code: TableValueNotFound, Segment: "OBX", SegmentSeq: seq, Field: 11, Line: line, Reason: fmt.Sprintf("OBX-11 result status %q is not in HL7 table 0085", o.Status)}
	}
	o.Containment = containment(o.SubID)

	switch o.ValueType {
	case "NA":
		// A numeric array is one repetition whose components are the samples.
		for _, r := range value {
			for j := range r {
				o.Values = append(o.Values, r.Comp(j+1))
			}
		}
	case "CWE", "CE", "CNE":
		for _, r := range value {
			o.Coded = append(o.Coded, coded(r))
		}
	case "SN":
		for _, r := range value {
			// Comparator, number, separator, number: kept as written, "<^5" reads "<5".
			o.Values = append(o.Values, r.Comp(1)+r.Comp(2)+r.Comp(3)+r.Comp(4))
		}
	default:
		for _, r := range value {
			o.Values = append(o.Values, r.Comp(1))
		}
	}
	for i, v := range o.Values {
		var err error
		switch o.ValueType {
		case "NM", "NA":
			if v != "" && v != Null {
				_, err = parseNumber(v)
			}
		case "DTM", "TS":
			if v != "" && v != Null {
				_, err = ParseDTM(v, loc)
			}
		}
		if err != nil {
			return o, &Error{Code: DataTypeError, Segment: "OBX", SegmentSeq: seq, Field: 5, Component: i + 1, Line: line,
				Reason: fmt.Sprintf("OBX-5 is not a valid %s", o.ValueType), Err: err}
		}
	}
	if v := s.Get(14, 1); v != "" && v != Null {
		t, err := ParseDTM(v, loc)
		if err != nil {
			return o, fieldErr(DataTypeError, "OBX", seq, line, 14, 1, "OBX-14 (date/time of the observation)", err)
		}
		o.Time, o.TimeSource = &t, "OBX-14"
	}
	for _, r := range s.Field(8) {
		o.Flags = append(o.Flags, r.Comp(1))
	}
	for _, r := range s.Field(17) {
		o.Methods = append(o.Methods, coded(r))
	}
	for _, r := range s.Field(18) {
		e := Equipment{ID: r.Comp(1), Namespace: r.Comp(2), UniversalID: r.Comp(3), UniversalType: r.Comp(4)}
		if e.ID != "" || e.UniversalID != "" {
			o.Equipment = append(o.Equipment, e)
		}
	}
	if len(o.Equipment) > 0 {
		o.Device = o.Equipment[0].deviceID()
	}
	return o, nil
}

// parseNumber reads an HL7 NM: optional sign, digits, optional decimal point. No exponents,
// no NaN or Inf, which strconv would accept.
func parseNumber(s string) (float64, error) {
	t := strings.TrimSpace(s)
	body := strings.TrimLeft(t, "+-")
	if len(t)-len(body) > 1 || body == "" || body == "." {
		return 0, fmt.Errorf("%q is not a number", s)
	}
	dot := false
	for i := 0; i < len(body); i++ {
		switch c := body[i]; {
		case c == '.' && !dot:
			dot = true
		case c < '0' || c > '9':
			return 0, fmt.Errorf("%q is not a number", s)
		}
	}
	v, err := strconv.ParseFloat(t, 64)
	if err != nil {
		return 0, fmt.Errorf("%q: %w", s, err)
	}
	return v, nil
}

// containment reads OBX-4 "1.0.0.1" as [1 0 0 1]; nil if it is not a dotted list of numbers.
func containment(s string) []int {
	if s == "" {
		return nil
	}
	var out []int
	for p := range strings.SplitSeq(s, ".") {
		v, err := strconv.Atoi(p)
		if err != nil || v < 0 || p[0] == '+' {
			return nil
		}
		out = append(out, v)
	}
	return out
}

// contains reports whether the containment path a is an ancestor of b, i.e. a proper
// prefix: MDS 1 contains 1.0.1 (its NIBP channel), which contains 1.0.1.2 (the diastolic).
func contains(a, b []int) bool {
	if len(a) == 0 || len(a) >= len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// resolve gives each observation of an order group the time and device its containers give
// when it has none of its own, as PCD-01 intends: a metric without OBX-14 was observed when
// its channel or MDS was, or else at OBR-7; a metric's device is its MDS's equipment.
func resolve(o *Order) {
	obs := o.Observations
	for i := range obs {
		var timeFrom, devFrom *Observation
		best, bestDev := -1, -1
		for j := range obs {
			if j == i || !contains(obs[j].Containment, obs[i].Containment) {
				continue
			}
			depth := len(obs[j].Containment)
			if obs[j].TimeSource == "OBX-14" && depth > best {
				timeFrom, best = &obs[j], depth
			}
			if len(obs[j].Equipment) > 0 && depth > bestDev {
				devFrom, bestDev = &obs[j], depth
			}
		}
		if obs[i].Time == nil {
			switch {
			case timeFrom != nil:
				t := *timeFrom.Time
				obs[i].Time, obs[i].TimeSource = &t, "OBX-14 of OBX "+timeFrom.SubID
			case o.Observed != nil:
				t := *o.Observed
				obs[i].Time, obs[i].TimeSource = &t, "OBR-7"
			}
		}
		if obs[i].Device == "" && devFrom != nil {
			obs[i].Device = devFrom.Device
		}
	}
}

var errNoTime = errors.New("no observation time: neither OBX-14, a containing OBX nor OBR-7 gives one")

// mapObservation maps a numeric observation onto the catalog, or says why it cannot.
func mapObservation(o *Observation, cat *codes.Catalog) {
	switch o.ValueType {
	case "NM", "NA", "SN":
	case "CWE", "CE", "CNE":
		mapBits(o, cat)
		return
	default:
		return
	}
	if len(o.Values) == 0 || (len(o.Values) == 1 && (o.Values[0] == "" || o.Values[0] == Null)) {
		return
	}
	if !isReading(o) {
		return
	}
	code, why := lookup(cat, o.Code)
	if why != "" {
		o.Unmapped = why
		return
	}
	if code.Kind == codes.Panel {
		o.Unmapped = fmt.Sprintf("code %s is a panel, which has no value of its own", describe(o.Code))
		return
	}
	var unitErr error
	convert := func(v float64) (float64, bool) {
		for _, u := range unitNames(o.Unit) {
			c, err := cat.Convert(code, v, u)
			if err == nil {
				return c, true
			}
			unitErr = err
		}
		return 0, false
	}
	values := make([]float64, 0, len(o.Values))
	for _, s := range o.Values {
		if o.ValueType == "SN" {
			// Only a plain number maps; "<5" or "1:2" are not readings.
			if strings.ContainsAny(s, "<>=:/-+") && !isPlainNumber(s) {
				o.Unmapped = fmt.Sprintf("structured numeric %q is not a single value", s)
				return
			}
		}
		v, err := parseNumber(s)
		if err != nil {
			o.Unmapped = err.Error()
			return
		}
		c, ok := convert(v)
		if !ok {
			if unitErr == nil {
				o.Unmapped = "OBX-6 (units) is empty"
				return
			}
			o.Unmapped = fmt.Sprintf("unit %s: %v", describe(o.Unit), unitErr)
			return
		}
		if c < code.Min || c > code.Max || math.IsNaN(c) {
			o.Unmapped = fmt.Sprintf("value %g %s is outside the possible range %g..%g of %s", c, code.Unit, code.Min, code.Max, code.ID)
			return
		}
		values = append(values, c)
	}
	if o.Time == nil {
		o.Unmapped = errNoTime.Error()
		return
	}
	m := &Mapped{Code: code.ID, Display: code.Display, Unit: code.Unit, Value: values[0]}
	if o.ValueType == "NA" {
		m.Values = values
	}
	o.Mapped = m
}

// isReading says whether OBX-11 makes o a reading, setting Unmapped when it does not.
func isReading(o *Observation) bool {
	if o.Status == "" {
		o.Unmapped = "OBX-11 (result status) is empty: not known to be a reading"
		return false
	}
	if why := resultStatus[o.Status]; why != "" {
		o.Unmapped = fmt.Sprintf("result status %s (%s): not a reading", o.Status, why)
		return false
	}
	return true
}

// mapBits maps a coded observation whose catalog code is a sensor status (an IEEE 11073
// BITS-16, such as MDC_PULS_OXIM_DEV_STATUS) to its value as a number, bit n of the standard
// being 1 << (15 − n) as codes.OximeterQuality reads it. The Continua WAN interface writes a
// BITS value as one OBX-5 repetition per bit reported, state^name(bit): "1^sensor-off(4)" set,
// "0^…" cleared (the reference glucose message's "1^sensor-strip-insertion(3)"); Y and N are
// taken for 1 and 0 as in HL7's binary table. Bits not written are clear. Other coded
// observations (context values, enumerations) are not readings and are left alone.
func mapBits(o *Observation, cat *codes.Catalog) {
	if !slices.ContainsFunc([]string{o.Code.Code, o.Code.Text}, func(id string) bool {
		c, ok := cat.Lookup(id)
		return ok && id != "" && c.Kind == codes.SensorStatus
	}) {
		return // a coded value that is no reading
	}
	code, why := lookup(cat, o.Code)
	if why != "" {
		o.Unmapped = why // a status whose code and name disagree
		return
	}
	if code.Kind != codes.SensorStatus || !slices.ContainsFunc(o.Coded, hasBit) || !isReading(o) {
		// No value (empty, or HL7's "" null) is no reading, not a status with every bit clear.
		return
	}
	var bits uint16
	for _, c := range o.Coded {
		if !hasBit(c) {
			continue
		}
		n, ok := bitNumber(c.Text)
		if !ok {
			o.Unmapped = fmt.Sprintf("bit %q: not name(bit) with a bit number 0–15", c.Text)
			return
		}
		switch strings.ToUpper(c.Code) {
		case "1", "Y":
			bits |= 1 << (15 - n)
		case "0", "N":
		default:
			o.Unmapped = fmt.Sprintf("bit %s: state %q is neither 1 (set) nor 0 (cleared)", c.Text, c.Code)
			return
		}
	}
	if o.Time == nil {
		o.Unmapped = errNoTime.Error()
		return
	}
	o.Mapped = &Mapped{Code: code.ID, Display: code.Display, Unit: code.Unit, Value: float64(bits)}
}

// hasBit says whether a repetition of a BITS value holds anything.
func hasBit(c Coded) bool { return (c.Code != "" && c.Code != Null) || c.Text != "" }

// bitNumber reads the bit of "sensor-off(4)".
func bitNumber(name string) (int, bool) {
	open := strings.LastIndexByte(name, '(')
	if open < 0 || !strings.HasSuffix(name, ")") {
		return 0, false
	}
	n, err := strconv.Atoi(name[open+1 : len(name)-1])
	return n, err == nil && n >= 0 && n <= 15
}

func isPlainNumber(s string) bool { _, err := parseNumber(s); return err == nil }

// lookup finds OBX-3 in the catalog, or says why not. The numeric MDC code is what PCD-01
// makes normative; the reference id in the text component is used when no numeric code is
// given. When both are given they must agree, because a code and a name that disagree
// (1500212 named MDC_PRESS_BLD_NONINV_SYS) leave it unknown which one the device meant.
func lookup(cat *codes.Catalog, c Coded) (codes.Code, string) {
	byCode, okCode := codes.Code{}, false
	if c.Code != "" {
		byCode, okCode = cat.Lookup(c.Code)
	}
	byText, okText := codes.Code{}, false
	if c.Text != "" && c.Text != c.Code {
		byText, okText = cat.Lookup(c.Text)
	}
	switch {
	case okCode && okText && byCode.ID != byText.ID:
		return codes.Code{}, fmt.Sprintf("code %s: the code means %s but the text means %s", describe(c), byCode.ID, byText.ID)
	case okCode:
		return byCode, ""
	case okText && c.Code != "":
		return codes.Code{}, fmt.Sprintf("code %s: the text names %s but the code %s is not one of its MDC codes", describe(c), byText.ID, c.Code)
	case okText:
		return byText, ""
	}
	if n, err := strconv.ParseUint(c.Code, 10, 32); err == nil && n>>16 == 1 || strings.HasPrefix(c.Text, "MDC_ATTR_") {
		// Partition 1 holds object attributes: a duration in Continua messages qualifies the
		// session or context above it rather than being a reading of its own.
		return codes.Code{}, fmt.Sprintf("code %s is an attribute of the observation it belongs to, not a reading, and is not in the codes catalog", describe(c))
	}
	return codes.Code{}, fmt.Sprintf("code %s is not in the codes catalog", describe(c))
}

// unitNames lists the names of an OBX-6 unit that Convert may know: for MDC the reference id
// (MDC_DIM_PERCENT) before the numeric code, for UCUM and others the code as written.
func unitNames(u Coded) []string {
	switch {
	case u.Code == "" && u.Text == "":
		// No unit is not "the canonical unit": 98.6 could be either scale.
		return nil
	case strings.EqualFold(u.System, "MDC"):
		return []string{u.Text, u.Code}
	}
	return []string{u.Code, u.Text}
}

func describe(c Coded) string {
	s := c.Code
	if c.Text != "" && c.Text != c.Code {
		s += " (" + c.Text + ")"
	}
	if c.System != "" {
		s += " [" + c.System + "]"
	}
	return s
}
