package senml

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"unicode/utf8"
)

// DecodeJSON decodes an application/senml+json pack.
func (o DecodeOptions) DecodeJSON(data []byte) (Pack, error) {
	if !json.Valid(data) {
		return nil, packError("invalid JSON", jsonSyntaxError(data))
	}
	// encoding/json would quietly replace invalid UTF-8; RFC 8428 §5 allows only UTF-8.
	if !utf8.Valid(data) {
		return nil, packError("JSON is not valid UTF-8", nil)
	}
	maxRecords := o.maxRecords()
	d := jsonDecoder{data: data, b: newBuilder(maxRecords, bytes.Count(data, []byte{'{'})+1)}
	if err := d.pack(); err != nil {
		return nil, err
	}
	return d.b.pack, nil
}

// jsonSyntaxError recovers a positioned syntax error for input that json.Valid refused; it
// runs only on the error path.
func jsonSyntaxError(data []byte) error {
	var raw json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return err
	}
	return errors.New("refused by the JSON validator")
}

// jsonDecoder walks JSON that json.Valid has accepted, so it only has to tell values apart,
// not check the grammar. It still checks bounds everywhere and never panics.
type jsonDecoder struct {
	data []byte
	pos  int
	b    *builder
	rec  int // index of the record being decoded
}

func (d *jsonDecoder) ws() {
	for d.pos < len(d.data) {
		switch d.data[d.pos] {
		case ' ', '\t', '\n', '\r':
			d.pos++
		default:
			return
		}
	}
}

func (d *jsonDecoder) peek() byte {
	if d.pos < len(d.data) {
		return d.data[d.pos]
	}
	return 0
}

// corrupt reports a structure that json.Valid should have excluded.
func (d *jsonDecoder) corrupt() error {
	return packError(fmt.Sprintf("unexpected JSON at byte %d", d.pos), nil)
}

func jsonKind(c byte) string {
	switch {
	case c == '"':
		return "string"
	case c == '{':
		return "object"
	case c == '[':
		return "array"
	case c == 't' || c == 'f':
		return "boolean"
	case c == 'n':
		return "null"
	case c == '-' || (c >= '0' && c <= '9'):
		return "number"
	}
	return "end of input"
}

func (d *jsonDecoder) pack() error {
	d.ws()
	if c := d.peek(); c != '[' {
		return packError("top level must be an array, got "+jsonKind(c), nil)
	}
	d.pos++
	d.ws()
	if d.peek() == ']' {
		return emptyPack()
	}
	for {
		if len(d.b.pack) == d.b.max {
			return d.b.tooMany()
		}
		d.rec = len(d.b.pack)
		if err := d.record(); err != nil {
			return err
		}
		d.ws()
		switch d.peek() {
		case ',':
			d.pos++
			d.ws()
		case ']':
			return nil
		default:
			return d.corrupt()
		}
	}
}

func (d *jsonDecoder) record() error {
	if c := d.peek(); c != '{' {
		return &Error{Record: d.rec, Reason: "want object, got " + jsonKind(c)}
	}
	d.pos++
	var r Record
	var s seen
	d.ws()
	if d.peek() == '}' {
		d.pos++
		return d.b.add(&r)
	}
	for {
		d.ws()
		key, err := d.str()
		if err != nil {
			return err
		}
		d.ws()
		if d.peek() != ':' {
			return d.corrupt()
		}
		d.pos++
		d.ws()
		if l := labelOf(key); l != labelNone {
			if err := s.add(d.rec, l); err != nil {
				return err
			}
			if err := d.value(&r, l); err != nil {
				return err
			}
		} else {
			if mustUnderstand(key) {
				return mustUnderstandError(d.rec, key)
			}
			if err := d.skip(); err != nil {
				return err
			}
		}
		d.ws()
		switch d.peek() {
		case ',':
			d.pos++
		case '}':
			d.pos++
			return d.b.add(&r)
		default:
			return d.corrupt()
		}
	}
}

func (d *jsonDecoder) want(l label, what string) error {
	return fieldError(d.rec, l, "want "+what+", got "+jsonKind(d.peek()))
}

func (d *jsonDecoder) value(r *Record, l label) error {
	c := d.peek()
	switch l.kind() {
	case kindNumber, kindVersion:
		if c != '-' && (c < '0' || c > '9') {
			return d.want(l, "number")
		}
		tok := d.number()
		f, err := strconv.ParseFloat(string(tok), 64)
		if err != nil && (math.IsInf(f, 0) || !errors.Is(err, strconv.ErrRange)) {
			// Underflow rounds to zero quietly, as IEEE 754 does; overflow is refused.
			return fieldError(d.rec, l, fmt.Sprintf("number %s is out of range", tok))
		}
		if l == labelBaseVersion {
			return d.b.setVersion(d.rec, r, f)
		}
		d.b.setNumber(r, l, f)
	case kindString:
		if c != '"' {
			return d.want(l, "string")
		}
		s, err := d.str()
		if err != nil {
			return err
		}
		d.b.setString(r, l, s)
	case kindBool:
		if c != 't' && c != 'f' {
			return d.want(l, "boolean")
		}
		v := c == 't'
		r.BoolValue = &v
		if v {
			d.pos += len("true")
		} else {
			d.pos += len("false")
		}
	case kindData:
		if c != '"' {
			return d.want(l, "string")
		}
		s, err := d.str()
		if err != nil {
			return err
		}
		buf := make([]byte, base64.RawURLEncoding.DecodedLen(len(s)))
		n, err := base64.RawURLEncoding.Decode(buf, s)
		if err != nil {
			return &Error{Record: d.rec, Field: l.String(), Reason: "want base64url without padding", Err: err}
		}
		r.DataValue = buf[:n]
	}
	return nil
}

// number returns the number token at the cursor.
func (d *jsonDecoder) number() []byte {
	start := d.pos
	for d.pos < len(d.data) {
		switch c := d.data[d.pos]; {
		case c >= '0' && c <= '9', c == '-', c == '+', c == '.', c == 'e', c == 'E':
			d.pos++
		default:
			return d.data[start:d.pos]
		}
	}
	return d.data[start:d.pos]
}

// str returns the contents of the string at the cursor. Strings without escapes are returned
// as a slice of the input; the builder copies what it keeps.
func (d *jsonDecoder) str() ([]byte, error) {
	if d.peek() != '"' {
		return nil, d.corrupt()
	}
	start := d.pos
	escaped := false
	for i := start + 1; i < len(d.data); i++ {
		switch d.data[i] {
		case '\\':
			escaped = true
			i++
		case '"':
			d.pos = i + 1
			if !escaped {
				return d.data[start+1 : i], nil
			}
			var s string
			if err := json.Unmarshal(d.data[start:i+1], &s); err != nil {
				return nil, packError(fmt.Sprintf("bad string at byte %d", start), err)
			}
			return []byte(s), nil
		}
	}
	return nil, d.corrupt()
}

// skip passes over the value of an ignored field.
func (d *jsonDecoder) skip() error {
	switch d.peek() {
	case '"':
		_, err := d.str()
		return err
	case '{', '[':
		depth := 0
		for d.pos < len(d.data) {
			switch d.data[d.pos] {
			case '"':
				if _, err := d.str(); err != nil {
					return err
				}
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					d.pos++
					return nil
				}
			}
			d.pos++
		}
		return d.corrupt()
	default: // number, true, false, null
		for d.pos < len(d.data) {
			switch d.data[d.pos] {
			case ',', '}', ']', ' ', '\t', '\n', '\r':
				return nil
			}
			d.pos++
		}
		return d.corrupt()
	}
}

// EncodeJSON encodes p as application/senml+json. It refuses what JSON cannot carry (NaN,
// infinities, invalid UTF-8) and versions this package would refuse to decode.
func EncodeJSON(p Pack) ([]byte, error) {
	if err := checkEncodable(p); err != nil {
		return nil, err
	}
	e := jsonEncoder{buf: make([]byte, 0, 2+64*len(p))}
	e.buf = append(e.buf, '[')
	for i := range p {
		r := &p[i]
		if i > 0 {
			e.buf = append(e.buf, ',')
		}
		e.buf = append(e.buf, '{')
		e.first = true
		if r.hasBaseName() {
			e.string(labelBaseName, r.BaseName)
		}
		if r.hasBaseTime() {
			e.number(labelBaseTime, r.BaseTime)
		}
		if r.hasBaseUnit() {
			e.string(labelBaseUnit, r.BaseUnit)
		}
		if r.BaseValue != nil {
			e.number(labelBaseValue, *r.BaseValue)
		}
		if r.BaseSum != nil {
			e.number(labelBaseSum, *r.BaseSum)
		}
		if r.BaseVersion != nil {
			e.key(labelBaseVersion)
			e.buf = strconv.AppendInt(e.buf, int64(*r.BaseVersion), 10)
		}
		if r.Name != "" {
			e.string(labelName, r.Name)
		}
		if r.hasUnit() {
			e.string(labelUnit, r.Unit)
		}
		if r.Value != nil {
			e.number(labelValue, *r.Value)
		}
		if r.StringValue != nil {
			e.string(labelStringValue, *r.StringValue)
		}
		if r.BoolValue != nil {
			e.key(labelBoolValue)
			e.buf = strconv.AppendBool(e.buf, *r.BoolValue)
		}
		if r.DataValue != nil {
			e.key(labelDataValue)
			e.buf = append(e.buf, '"')
			e.buf = base64.RawURLEncoding.AppendEncode(e.buf, r.DataValue)
			e.buf = append(e.buf, '"')
		}
		if r.Sum != nil {
			e.number(labelSum, *r.Sum)
		}
		if r.Time != 0 {
			e.number(labelTime, r.Time)
		}
		if r.UpdateTime != 0 {
			e.number(labelUpdateTime, r.UpdateTime)
		}
		e.buf = append(e.buf, '}')
	}
	e.buf = append(e.buf, ']')
	return e.buf, nil
}

type jsonEncoder struct {
	buf   []byte
	first bool // no member written yet in the current object
}

func (e *jsonEncoder) key(l label) {
	if !e.first {
		e.buf = append(e.buf, ',')
	}
	e.first = false
	e.buf = append(e.buf, '"')
	e.buf = append(e.buf, l.String()...)
	e.buf = append(e.buf, '"', ':')
}

// number writes a finite float in the shortest form that reads back to the same value,
// switching to an exponent (lower-case 'e', as §5 requires) only for very large or small
// magnitudes.
func (e *jsonEncoder) number(l label, f float64) {
	e.key(l)
	format := byte('f')
	if a := math.Abs(f); a != 0 && (a < 1e-6 || a >= 1e21) {
		format = 'e'
	}
	e.buf = strconv.AppendFloat(e.buf, f, format, -1, 64)
}

const hexDigits = "0123456789abcdef"

// string writes s, which checkEncodable has found to be valid UTF-8, escaping what JSON
// requires.
func (e *jsonEncoder) string(l label, s string) {
	e.key(l)
	e.buf = append(e.buf, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		e.buf = append(e.buf, s[start:i]...)
		switch c {
		case '"', '\\':
			e.buf = append(e.buf, '\\', c)
		case '\n':
			e.buf = append(e.buf, '\\', 'n')
		case '\r':
			e.buf = append(e.buf, '\\', 'r')
		case '\t':
			e.buf = append(e.buf, '\\', 't')
		default:
			e.buf = append(e.buf, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		}
		start = i + 1
	}
	e.buf = append(e.buf, s[start:]...)
	e.buf = append(e.buf, '"')
}

// checkEncodable refuses packs that either encoding cannot represent faithfully or that this
// package would refuse to decode.
func checkEncodable(p Pack) error {
	version := Version
	for i := range p {
		r := &p[i]
		if err := checkVersion(i, r, &version); err != nil {
			return err
		}
		for _, f := range [...]struct {
			l label
			v *float64
		}{
			{labelBaseTime, &r.BaseTime}, {labelBaseValue, r.BaseValue}, {labelBaseSum, r.BaseSum},
			{labelValue, r.Value}, {labelSum, r.Sum}, {labelTime, &r.Time}, {labelUpdateTime, &r.UpdateTime},
		} {
			if f.v != nil && (math.IsNaN(*f.v) || math.IsInf(*f.v, 0)) {
				return fieldError(i, f.l, fmt.Sprintf("%v cannot be encoded", *f.v))
			}
		}
		for _, f := range [...]struct {
			l label
			s *string
		}{
			{labelBaseName, &r.BaseName}, {labelBaseUnit, &r.BaseUnit}, {labelName, &r.Name},
			{labelUnit, &r.Unit}, {labelStringValue, r.StringValue},
		} {
			if f.s != nil && !utf8.ValidString(*f.s) {
				return fieldError(i, f.l, "string is not valid UTF-8")
			}
		}
	}
	return nil
}
