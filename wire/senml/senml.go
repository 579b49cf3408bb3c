package senml

import (
	"bytes"
	"fmt"
	"strings"

	"github.com/iomt/iomt"
)

// Version is the SenML version this package implements (RFC 8428); packs that declare a higher
// version are refused, as §4.4 requires.
const Version = 10

// DefaultMaxRecords is the record limit applied when DecodeOptions.MaxRecords is not set.
const DefaultMaxRecords = 10000

// Record is one SenML record as it appears in a pack, before base fields are applied.
//
// Optional numeric, boolean and string values are pointers so that absence is distinguishable
// from zero. BaseName, BaseTime, BaseUnit and Unit are plain values for convenience; a non-zero
// value counts as present, and Present marks the ones that were present with the zero value
// (for example "bt":0, which ends an earlier base time).
type Record struct {
	BaseName    string   // bn
	BaseTime    float64  // bt
	BaseUnit    string   // bu
	BaseValue   *float64 // bv
	BaseSum     *float64 // bs
	BaseVersion *int     // bver
	Name        string   // n
	Unit        string   // u
	Value       *float64 // v
	StringValue *string  // vs
	BoolValue   *bool    // vb
	DataValue   []byte   // vd (nil: absent; empty non-nil: present and empty)
	Sum         *float64 // s
	Time        float64  // t
	UpdateTime  float64  // ut

	// Present marks BaseName, BaseTime, BaseUnit and Unit as present even when they hold the
	// zero value. Decoders set it for every such field they saw.
	Present Presence
}

// Presence is a set of Record fields that were present in the encoded record.
type Presence uint8

// The fields whose zero value still means something when present.
const (
	HasBaseName Presence = 1 << iota // "bn":"" resets the base name
	HasBaseTime                      // "bt":0 resets the base time
	HasBaseUnit                      // "bu":"" resets the base unit
	HasUnit                          // "u":"" overrides the base unit with no unit
)

func (r *Record) hasBaseName() bool { return r.BaseName != "" || r.Present&HasBaseName != 0 }
func (r *Record) hasBaseTime() bool { return r.BaseTime != 0 || r.Present&HasBaseTime != 0 }
func (r *Record) hasBaseUnit() bool { return r.BaseUnit != "" || r.Present&HasBaseUnit != 0 }
func (r *Record) hasUnit() bool     { return r.Unit != "" || r.Present&HasUnit != 0 }

// Pack is a SenML pack: the records in their order of appearance.
type Pack []Record

// Error is a refusal of a pack, naming the record and field at fault.
type Error struct {
	Record int    // 0-based index of the record; -1 when the pack as a whole is at fault
	Field  string // SenML label ("v", "bn", an unknown "foo_"), or "" for the whole record
	Reason string // what is wrong, for people
	Err    error  // underlying cause, if any (a syntax error from the parser)
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("senml: ")
	if e.Record >= 0 {
		fmt.Fprintf(&b, "record %d: ", e.Record)
	}
	if e.Field != "" {
		fmt.Fprintf(&b, "field %q: ", e.Field)
	}
	b.WriteString(e.Reason)
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// Is reports every refusal as iomt.ErrInvalid, so callers can map it to a protocol reply
// without knowing this package.
func (e *Error) Is(target error) bool { return target == iomt.ErrInvalid }

func packError(reason string, err error) *Error {
	return &Error{Record: -1, Reason: reason, Err: err}
}

func fieldError(rec int, l label, reason string) *Error {
	return &Error{Record: rec, Field: l.String(), Reason: reason}
}

// DecodeOptions limits what a decoder accepts. The zero value is ready to use.
type DecodeOptions struct {
	// MaxRecords is the largest number of records a pack may hold; zero or negative means
	// DefaultMaxRecords.
	MaxRecords int
}

func (o DecodeOptions) maxRecords() int {
	if o.MaxRecords <= 0 {
		return DefaultMaxRecords
	}
	return o.MaxRecords
}

// Decode decodes a JSON pack when the first non-space byte is '[' and a CBOR pack otherwise.
func (o DecodeOptions) Decode(data []byte) (Pack, error) {
	trimmed := bytes.TrimLeft(data, " \t\r\n")
	if len(trimmed) == 0 {
		return nil, packError("empty input", nil)
	}
	// JSON text starts with an ASCII byte and a CBOR pack (an array) never does; so anything
	// ASCII is read as JSON, whose decoder best explains what is wrong with an object.
	if data[0] >= 0x80 {
		return o.DecodeCBOR(data)
	}
	return o.DecodeJSON(data)
}

// Decode is DecodeOptions{}.Decode.
func Decode(data []byte) (Pack, error) { return DecodeOptions{}.Decode(data) }

// DecodeJSON is DecodeOptions{}.DecodeJSON.
func DecodeJSON(data []byte) (Pack, error) { return DecodeOptions{}.DecodeJSON(data) }

// DecodeCBOR is DecodeOptions{}.DecodeCBOR.
func DecodeCBOR(data []byte) (Pack, error) { return DecodeOptions{}.DecodeCBOR(data) }

// label identifies a SenML field independently of its JSON or CBOR spelling.
type label uint8

const (
	labelNone label = iota
	labelBaseVersion
	labelBaseName
	labelBaseTime
	labelBaseUnit
	labelBaseValue
	labelBaseSum
	labelName
	labelUnit
	labelValue
	labelStringValue
	labelBoolValue
	labelSum
	labelTime
	labelUpdateTime
	labelDataValue
)

func (l label) String() string {
	switch l {
	case labelBaseVersion:
		return "bver"
	case labelBaseName:
		return "bn"
	case labelBaseTime:
		return "bt"
	case labelBaseUnit:
		return "bu"
	case labelBaseValue:
		return "bv"
	case labelBaseSum:
		return "bs"
	case labelName:
		return "n"
	case labelUnit:
		return "u"
	case labelValue:
		return "v"
	case labelStringValue:
		return "vs"
	case labelBoolValue:
		return "vb"
	case labelSum:
		return "s"
	case labelTime:
		return "t"
	case labelUpdateTime:
		return "ut"
	case labelDataValue:
		return "vd"
	}
	return ""
}

// labelOf maps a JSON member name or CBOR text key to its label; the string conversion in the
// switch does not allocate.
func labelOf(key []byte) label {
	switch string(key) {
	case "bver":
		return labelBaseVersion
	case "bn":
		return labelBaseName
	case "bt":
		return labelBaseTime
	case "bu":
		return labelBaseUnit
	case "bv":
		return labelBaseValue
	case "bs":
		return labelBaseSum
	case "n":
		return labelName
	case "u":
		return labelUnit
	case "v":
		return labelValue
	case "vs":
		return labelStringValue
	case "vb":
		return labelBoolValue
	case "s":
		return labelSum
	case "t":
		return labelTime
	case "ut":
		return labelUpdateTime
	case "vd":
		return labelDataValue
	}
	return labelNone
}

// kind is the value type RFC 8428 Table 1 gives a label.
type kind uint8

const (
	kindNumber kind = iota
	kindString
	kindBool
	kindData
	kindVersion
)

func (l label) kind() kind {
	switch l {
	case labelBaseName, labelBaseUnit, labelName, labelUnit, labelStringValue:
		return kindString
	case labelBoolValue:
		return kindBool
	case labelDataValue:
		return kindData
	case labelBaseVersion:
		return kindVersion
	}
	return kindNumber
}

// builder collects decoded records. It is shared by the JSON and CBOR decoders so that both
// apply the same field rules and produce identical packs.
type builder struct {
	pack    Pack
	max     int
	floats  []float64 // slab for *float64 fields: one allocation per 256 numbers, not per field
	version int       // version in force; records before the first bver are version 10
	// Last strings seen per label: waveform packs repeat names and units in every record, so
	// reusing the previous string saves an allocation and lets Resolve skip repeated work.
	lastName, lastUnit string
}

func newBuilder(max, sizeHint int) *builder {
	return &builder{pack: make(Pack, 0, min(max, sizeHint)), max: max, version: Version}
}

func (b *builder) float(f float64) *float64 {
	if len(b.floats) == 0 {
		// One slab for the values of a pack: as many as it has records (most values are
		// theirs), up to 256 at a time, so a vital-signs pack of two does not take 2 KB.
		b.floats = make([]float64, min(256, max(4, cap(b.pack)-len(b.pack))))
	}
	p := &b.floats[0]
	*p = f
	b.floats = b.floats[1:]
	return p
}

// str returns s as a string, reusing *last when the bytes are the same.
func str(s []byte, last *string) string {
	if string(s) == *last {
		return *last
	}
	*last = string(s)
	return *last
}

// setNumber stores a decoded number; f is finite (both decoders refuse NaN and infinities).
func (b *builder) setNumber(r *Record, l label, f float64) {
	switch l {
	case labelBaseTime:
		r.BaseTime = f
		r.Present |= HasBaseTime
	case labelBaseValue:
		r.BaseValue = b.float(f)
	case labelBaseSum:
		r.BaseSum = b.float(f)
	case labelValue:
		r.Value = b.float(f)
	case labelSum:
		r.Sum = b.float(f)
	case labelTime:
		r.Time = f
	case labelUpdateTime:
		r.UpdateTime = f
	}
}

func (b *builder) setString(r *Record, l label, s []byte) {
	switch l {
	case labelBaseName:
		r.BaseName = string(s)
		r.Present |= HasBaseName
	case labelBaseUnit:
		r.BaseUnit = string(s)
		r.Present |= HasBaseUnit
	case labelName:
		r.Name = str(s, &b.lastName)
	case labelUnit:
		r.Unit = str(s, &b.lastUnit)
		r.Present |= HasUnit
	case labelStringValue:
		v := string(s)
		r.StringValue = &v
	}
}

// setVersion checks a bver value, given as a float so that both decoders can report
// non-integers the same way.
func (b *builder) setVersion(rec int, r *Record, f float64) error {
	if f > Version {
		return fieldError(rec, labelBaseVersion, fmt.Sprintf("version %v is newer than the supported version %d", f, Version))
	}
	if f < 1 || f != float64(int(f)) {
		return fieldError(rec, labelBaseVersion, fmt.Sprintf("version %v is not a positive integer", f))
	}
	v := int(f)
	r.BaseVersion = &v
	return nil
}

// add appends a completed record after the pack-level checks.
func (b *builder) add(r *Record) error {
	if err := checkVersion(len(b.pack), r, &b.version); err != nil {
		return err
	}
	b.pack = append(b.pack, *r)
	return nil
}

// checkVersion enforces §4.4: a version above ours is refused, and all records of a pack must
// have the same version (records before the first bver have the default, 10).
func checkVersion(rec int, r *Record, current *int) error {
	if r.BaseVersion == nil {
		return nil
	}
	v := *r.BaseVersion
	switch {
	case v < 1:
		return fieldError(rec, labelBaseVersion, fmt.Sprintf("version %d is not a positive integer", v))
	case v > Version:
		return fieldError(rec, labelBaseVersion, fmt.Sprintf("version %d is newer than the supported version %d", v, Version))
	case rec > 0 && v != *current:
		return fieldError(rec, labelBaseVersion, fmt.Sprintf("version %d differs from version %d of the records before it", v, *current))
	}
	*current = v
	return nil
}

func (b *builder) tooMany() *Error {
	return packError(fmt.Sprintf("pack has more than %d records", b.max), nil)
}

func emptyPack() *Error { return packError("pack has no records", nil) }

// seen tracks the known labels of one record, to refuse duplicates.
type seen uint32

func (s *seen) add(rec int, l label) error {
	bit := seen(1) << l
	if *s&bit != 0 {
		return fieldError(rec, l, "duplicate field")
	}
	*s |= bit
	return nil
}

// mustUnderstand reports whether an unknown label demands an error (§4.4).
func mustUnderstand(key []byte) bool { return len(key) > 0 && key[len(key)-1] == '_' }

func mustUnderstandError(rec int, key []byte) *Error {
	return &Error{Record: rec, Field: string(key), Reason: "must-understand field is not supported"}
}
