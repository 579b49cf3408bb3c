package senml

import (
	"encoding/binary"
	"fmt"
	"math"
	"strconv"
	"unicode/utf8"

	"github.com/fxamacker/cbor/v2"
)

// CBOR resource limits. A SenML pack is an array of flat maps, so anything deeper than a few
// levels can only come from extension fields, and a record with hundreds of fields is an
// attack rather than a measurement.
const (
	cborMaxNesting = 16
	cborMaxPairs   = 256
)

func cborDecOptions(maxRecords int) cbor.DecOptions {
	return cbor.DecOptions{
		MaxNestedLevels:  cborMaxNesting,
		MaxArrayElements: min(max(maxRecords, 16), math.MaxInt32), // the library's allowed range
		MaxMapPairs:      cborMaxPairs,
		IndefLength:      cbor.IndefLengthAllowed, // SensML streams use indefinite arrays (§6)
		TagsMd:           cbor.TagsAllowed,        // decimal fractions (tag 4) are numbers (§6)
	}
}

// defaultDecMode is built once because building a DecMode costs more than decoding a small
// pack; it is never modified.
var defaultDecMode = func() cbor.DecMode {
	dm, err := cborDecOptions(DefaultMaxRecords).DecMode()
	if err != nil {
		panic(fmt.Sprintf("senml: CBOR decoding options: %v", err)) // options are constants
	}
	return dm
}()

// DecodeCBOR decodes an application/senml+cbor pack. Labels may be the integers of RFC 8428
// Table 4 or the text labels of Table 1.
func (o DecodeOptions) DecodeCBOR(data []byte) (Pack, error) {
	if len(data) == 0 {
		return nil, packError("empty input", nil)
	}
	maxRecords := o.maxRecords()
	d := cborDecoder{data: data}
	major, ai, n, err := d.head()
	if err == nil && major == majorArray && ai != aiIndefinite && n > uint64(maxRecords) {
		// Refuse from the header alone, before scanning a large input.
		return nil, packError(fmt.Sprintf("pack has more than %d records", maxRecords), nil)
	}
	dm := defaultDecMode
	if maxRecords != DefaultMaxRecords {
		if dm, err = cborDecOptions(maxRecords).DecMode(); err != nil {
			return nil, packError("CBOR decoding options", err)
		}
	}
	if err := dm.Wellformed(data); err != nil {
		return nil, packError("malformed CBOR", err)
	}
	d = cborDecoder{data: data, b: newBuilder(maxRecords, int(min(n, uint64(maxRecords))))}
	if err := d.pack(); err != nil {
		return nil, err
	}
	return d.b.pack, nil
}

const (
	majorUint   = 0
	majorNint   = 1
	majorBytes  = 2
	majorText   = 3
	majorArray  = 4
	majorMap    = 5
	majorTag    = 6
	majorSimple = 7

	aiIndefinite = 31
	cborBreak    = 0xff

	simpleFalse = 20
	simpleTrue  = 21
	simpleNull  = 22
	aiFloat16   = 25
	aiFloat32   = 26
	aiFloat64   = 27

	tagDecimalFraction = 4
)

// cborDecoder walks CBOR that the library has found well-formed and within limits; it still
// checks bounds everywhere and never panics.
type cborDecoder struct {
	data []byte
	pos  int
	b    *builder
	rec  int // index of the record being decoded
}

func (d *cborDecoder) corrupt() error {
	return packError(fmt.Sprintf("unexpected CBOR at byte %d", d.pos), nil)
}

// head reads an initial byte and its argument: a count, a length, an integer, a tag number or
// the bits of a float, depending on the major type.
func (d *cborDecoder) head() (major, ai byte, arg uint64, err error) {
	if d.pos >= len(d.data) {
		return 0, 0, 0, d.corrupt()
	}
	ib := d.data[d.pos]
	d.pos++
	major, ai = ib>>5, ib&0x1f
	switch {
	case ai < 24:
		return major, ai, uint64(ai), nil
	case ai <= aiFloat64:
		n := 1 << (ai - 24)
		if len(d.data)-d.pos < n {
			return 0, 0, 0, d.corrupt()
		}
		b := d.data[d.pos : d.pos+n]
		d.pos += n
		switch n {
		case 1:
			arg = uint64(b[0])
		case 2:
			arg = uint64(binary.BigEndian.Uint16(b))
		case 4:
			arg = uint64(binary.BigEndian.Uint32(b))
		default:
			arg = binary.BigEndian.Uint64(b)
		}
		return major, ai, arg, nil
	case ai == aiIndefinite && major >= majorBytes && major <= majorMap:
		return major, ai, 0, nil
	}
	return 0, 0, 0, d.corrupt()
}

func (d *cborDecoder) atBreak() bool { return d.pos < len(d.data) && d.data[d.pos] == cborBreak }

func cborKind(major, ai byte, arg uint64) string {
	switch major {
	case majorUint:
		return "unsigned integer"
	case majorNint:
		return "negative integer"
	case majorBytes:
		return "byte string"
	case majorText:
		return "text string"
	case majorArray:
		return "array"
	case majorMap:
		return "map"
	case majorTag:
		return fmt.Sprintf("tag %d", arg)
	}
	switch ai {
	case simpleFalse, simpleTrue:
		return "boolean"
	case simpleNull:
		return "null"
	case aiFloat16, aiFloat32, aiFloat64:
		return "float"
	}
	return "simple value"
}

func (d *cborDecoder) pack() error {
	major, ai, n, err := d.head()
	if err != nil {
		return err
	}
	if major != majorArray {
		return packError("top level must be an array, got "+cborKind(major, ai, n), nil)
	}
	indefinite := ai == aiIndefinite
	for i := uint64(0); indefinite || i < n; i++ {
		if indefinite && d.atBreak() {
			d.pos++
			break
		}
		if len(d.b.pack) == d.b.max {
			return d.b.tooMany()
		}
		d.rec = len(d.b.pack)
		if err := d.record(); err != nil {
			return err
		}
	}
	if len(d.b.pack) == 0 {
		return emptyPack()
	}
	if d.pos != len(d.data) {
		return d.corrupt()
	}
	return nil
}

func (d *cborDecoder) record() error {
	major, ai, n, err := d.head()
	if err != nil {
		return err
	}
	if major != majorMap {
		return &Error{Record: d.rec, Reason: "want map, got " + cborKind(major, ai, n)}
	}
	indefinite := ai == aiIndefinite
	var r Record
	var s seen
	for j := uint64(0); indefinite || j < n; j++ {
		if indefinite && d.atBreak() {
			d.pos++
			break
		}
		l, key, err := d.key()
		if err != nil {
			return err
		}
		if l == labelNone {
			if mustUnderstand(key) {
				return mustUnderstandError(d.rec, key)
			}
			if err := d.skip(0); err != nil {
				return err
			}
			continue
		}
		if err := s.add(d.rec, l); err != nil {
			return err
		}
		if err := d.value(&r, l); err != nil {
			return err
		}
	}
	return d.b.add(&r)
}

// key reads a map key: an integer label (Table 4) or a text label (Table 1). Unknown integer
// labels are ignored; the RFC reserves only text labels for extensions, but a future integer
// label is better skipped than fatal.
func (d *cborDecoder) key() (label, []byte, error) {
	major, ai, arg, err := d.head()
	if err != nil {
		return labelNone, nil, err
	}
	switch {
	case major == majorUint:
		switch arg {
		case 0:
			return labelName, nil, nil
		case 1:
			return labelUnit, nil, nil
		case 2:
			return labelValue, nil, nil
		case 3:
			return labelStringValue, nil, nil
		case 4:
			return labelBoolValue, nil, nil
		case 5:
			return labelSum, nil, nil
		case 6:
			return labelTime, nil, nil
		case 7:
			return labelUpdateTime, nil, nil
		case 8:
			return labelDataValue, nil, nil
		}
		return labelNone, nil, nil
	case major == majorNint: // -1-arg
		switch arg {
		case 0:
			return labelBaseVersion, nil, nil
		case 1:
			return labelBaseName, nil, nil
		case 2:
			return labelBaseTime, nil, nil
		case 3:
			return labelBaseUnit, nil, nil
		case 4:
			return labelBaseValue, nil, nil
		case 5:
			return labelBaseSum, nil, nil
		}
		return labelNone, nil, nil
	case major == majorText && ai != aiIndefinite:
		b, err := d.bytes(arg)
		if err != nil {
			return labelNone, nil, err
		}
		return labelOf(b), b, nil
	}
	return labelNone, nil, &Error{Record: d.rec,
		Reason: "map key must be an integer or a definite-length text string, got " + cborKind(major, ai, arg)}
}

// bytes returns the next n bytes of the input.
func (d *cborDecoder) bytes(n uint64) ([]byte, error) {
	if n > uint64(len(d.data)-d.pos) {
		return nil, d.corrupt()
	}
	b := d.data[d.pos : d.pos+int(n)]
	d.pos += int(n)
	return b, nil
}

func (d *cborDecoder) value(r *Record, l label) error {
	switch l.kind() {
	case kindNumber:
		f, err := d.number(l)
		if err != nil {
			return err
		}
		d.b.setNumber(r, l, f)
	case kindVersion:
		// §6: "For the version number, only an unsigned integer is allowed."
		major, ai, arg, err := d.head()
		if err != nil {
			return err
		}
		if major != majorUint {
			return fieldError(d.rec, l, "want unsigned integer, got "+cborKind(major, ai, arg))
		}
		return d.b.setVersion(d.rec, r, float64(arg))
	case kindString:
		major, ai, arg, err := d.head()
		if err != nil {
			return err
		}
		if major != majorText {
			return fieldError(d.rec, l, "want text string, got "+cborKind(major, ai, arg))
		}
		if ai == aiIndefinite {
			return fieldError(d.rec, l, "want definite-length text string, got indefinite-length")
		}
		b, err := d.bytes(arg)
		if err != nil {
			return err
		}
		if !utf8.Valid(b) {
			return fieldError(d.rec, l, "text string is not valid UTF-8")
		}
		d.b.setString(r, l, b)
	case kindBool:
		major, ai, arg, err := d.head()
		if err != nil {
			return err
		}
		if major != majorSimple || (ai != simpleFalse && ai != simpleTrue) {
			return fieldError(d.rec, l, "want boolean, got "+cborKind(major, ai, arg))
		}
		v := ai == simpleTrue
		r.BoolValue = &v
	case kindData:
		major, ai, arg, err := d.head()
		if err != nil {
			return err
		}
		if major != majorBytes {
			return fieldError(d.rec, l, "want byte string, got "+cborKind(major, ai, arg))
		}
		if ai == aiIndefinite {
			return fieldError(d.rec, l, "want definite-length byte string, got indefinite-length")
		}
		b, err := d.bytes(arg)
		if err != nil {
			return err
		}
		r.DataValue = append([]byte{}, b...) // the caller may reuse its buffer
	}
	return nil
}

// number reads an integer, a float of any width or a decimal fraction (tag 4), refusing NaN
// and infinities, which JSON cannot carry and no measurement needs.
func (d *cborDecoder) number(l label) (float64, error) {
	major, ai, arg, err := d.head()
	if err != nil {
		return 0, err
	}
	var f float64
	switch {
	case major == majorUint:
		return float64(arg), nil
	case major == majorNint:
		return -1 - float64(arg), nil
	case major == majorSimple && ai == aiFloat16:
		f = float16(uint16(arg))
	case major == majorSimple && ai == aiFloat32:
		f = float64(math.Float32frombits(uint32(arg)))
	case major == majorSimple && ai == aiFloat64:
		f = math.Float64frombits(arg)
	case major == majorTag && arg == tagDecimalFraction:
		return d.decimalFraction(l)
	default:
		return 0, fieldError(d.rec, l, "want number, got "+cborKind(major, ai, arg))
	}
	switch {
	case math.IsNaN(f):
		return 0, fieldError(d.rec, l, "NaN is not a number SenML allows")
	case math.IsInf(f, 0):
		return 0, fieldError(d.rec, l, "infinity is not a number SenML allows")
	}
	return f, nil
}

// decimalFraction reads the [exponent, mantissa] array of tag 4 and rounds it to the nearest
// float64 by letting strconv parse the decimal text.
func (d *cborDecoder) decimalFraction(l label) (float64, error) {
	bad := func(reason string) error { return fieldError(d.rec, l, "decimal fraction "+reason) }
	major, ai, n, err := d.head()
	if err != nil {
		return 0, err
	}
	if major != majorArray || ai == aiIndefinite || n != 2 {
		return 0, bad("must be an array of two integers")
	}
	var parts [2]uint64
	var negative [2]bool
	for i := range parts {
		major, _, arg, err := d.head()
		if err != nil {
			return 0, err
		}
		if major != majorUint && major != majorNint {
			return 0, bad("must be an array of two integers")
		}
		if major == majorNint && arg == math.MaxUint64 {
			return 0, bad("is out of range")
		}
		parts[i], negative[i] = arg, major == majorNint
	}
	appendInt := func(b []byte, arg uint64, negative bool) []byte {
		if negative {
			return strconv.AppendUint(append(b, '-'), arg+1, 10) // -1-arg
		}
		return strconv.AppendUint(b, arg, 10)
	}
	var buf [48]byte
	text := appendInt(buf[:0], parts[1], negative[1])
	text = appendInt(append(text, 'e'), parts[0], negative[0])
	f, err := strconv.ParseFloat(string(text), 64)
	if err != nil && math.IsInf(f, 0) {
		return 0, bad("is out of range")
	}
	return f, nil
}

// skip passes over one data item of an ignored field. The library has checked nesting, so
// the recursion is bounded; depth is checked again in case the two ever disagree.
func (d *cborDecoder) skip(depth int) error {
	if depth > cborMaxNesting {
		return d.corrupt()
	}
	major, ai, arg, err := d.head()
	if err != nil {
		return err
	}
	switch major {
	case majorBytes, majorText, majorArray, majorMap:
		if ai == aiIndefinite {
			for !d.atBreak() {
				if err := d.skip(depth + 1); err != nil {
					return err
				}
			}
			d.pos++
			return nil
		}
		if major == majorBytes || major == majorText {
			_, err := d.bytes(arg)
			return err
		}
		if arg > uint64(len(d.data)-d.pos) { // every item takes at least one byte
			return d.corrupt()
		}
		items := arg
		if major == majorMap {
			items *= 2
		}
		for range items {
			if err := d.skip(depth + 1); err != nil {
				return err
			}
		}
	case majorTag:
		return d.skip(depth + 1)
	}
	return nil
}

// float16 widens an IEEE 754 half-precision float.
func float16(h uint16) float64 {
	exp := int(h>>10) & 0x1f
	frac := float64(h & 0x3ff)
	var f float64
	switch exp {
	case 0: // zero and subnormals: frac × 2^-24
		f = math.Ldexp(frac, -24)
	case 0x1f:
		if frac == 0 {
			f = math.Inf(1)
		} else {
			f = math.NaN()
		}
	default: // (1 + frac/1024) × 2^(exp-15)
		f = math.Ldexp(1024+frac, exp-25)
	}
	if h&0x8000 != 0 {
		f = -f
	}
	return f
}

// cborRecord is the encoding shape: integer labels (Table 4), pointers so that a present zero
// is written and an absent field is not.
type cborRecord struct {
	BaseName    *string  `cbor:"-2,keyasint,omitempty"`
	BaseTime    *float64 `cbor:"-3,keyasint,omitempty"`
	BaseUnit    *string  `cbor:"-4,keyasint,omitempty"`
	BaseVersion *uint    `cbor:"-1,keyasint,omitempty"`
	BaseValue   *float64 `cbor:"-5,keyasint,omitempty"`
	BaseSum     *float64 `cbor:"-6,keyasint,omitempty"`
	Name        *string  `cbor:"0,keyasint,omitempty"`
	Unit        *string  `cbor:"1,keyasint,omitempty"`
	Value       *float64 `cbor:"2,keyasint,omitempty"`
	StringValue *string  `cbor:"3,keyasint,omitempty"`
	BoolValue   *bool    `cbor:"4,keyasint,omitempty"`
	Sum         *float64 `cbor:"5,keyasint,omitempty"`
	Time        *float64 `cbor:"6,keyasint,omitempty"`
	UpdateTime  *float64 `cbor:"7,keyasint,omitempty"`
	DataValue   *[]byte  `cbor:"8,keyasint,omitempty"`
}

// encMode writes definite lengths (§6 requires them outside SensML streams) and each float in
// the shortest width that keeps its value exactly, as §6 recommends. Built once, never changed.
var encMode = func() cbor.EncMode {
	em, err := cbor.EncOptions{
		ShortestFloat: cbor.ShortestFloat16,
		IndefLength:   cbor.IndefLengthForbidden,
	}.EncMode()
	if err != nil {
		panic(fmt.Sprintf("senml: CBOR encoding options: %v", err)) // options are constants
	}
	return em
}()

// EncodeCBOR encodes p as application/senml+cbor with the integer labels of RFC 8428 Table 4.
func EncodeCBOR(p Pack) ([]byte, error) {
	if err := checkEncodable(p); err != nil {
		return nil, err
	}
	out := make([]cborRecord, len(p))
	for i := range p {
		r, c := &p[i], &out[i]
		if r.hasBaseName() {
			c.BaseName = &r.BaseName
		}
		if r.hasBaseTime() {
			c.BaseTime = &r.BaseTime
		}
		if r.hasBaseUnit() {
			c.BaseUnit = &r.BaseUnit
		}
		if r.BaseVersion != nil {
			v := uint(*r.BaseVersion) // checkEncodable has made sure it is positive
			c.BaseVersion = &v
		}
		c.BaseValue, c.BaseSum = r.BaseValue, r.BaseSum
		if r.Name != "" {
			c.Name = &r.Name
		}
		if r.hasUnit() {
			c.Unit = &r.Unit
		}
		c.Value, c.StringValue, c.BoolValue, c.Sum = r.Value, r.StringValue, r.BoolValue, r.Sum
		if r.DataValue != nil {
			c.DataValue = &r.DataValue
		}
		if r.Time != 0 {
			c.Time = &r.Time
		}
		if r.UpdateTime != 0 {
			c.UpdateTime = &r.UpdateTime
		}
	}
	b, err := encMode.Marshal(out)
	if err != nil {
		return nil, fmt.Errorf("senml: encoding CBOR: %w", err)
	}
	return b, nil
}
