package sim

import (
	"encoding/binary"
	"fmt"
	"math"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/x448/float16"

	"github.com/iomt/iomt/sensing"
)

// packEncoder writes an emission straight into SenML bytes: the same bytes as
// senml.EncodeCBOR or senml.EncodeJSON of AppendPack's records (tests compare them), without
// building the records or going through reflection, and into a buffer the caller reuses. At
// 11,000 packs a second this is most of the simulator's CPU otherwise.
type packEncoder struct {
	cbor bool
	bn   map[string]string // device kind → base name
}

func newPackEncoder(cbor bool) *packEncoder {
	return &packEncoder{cbor: cbor, bn: map[string]string{}}
}

// baseName is AppendPack's base name for a device kind, built once per kind rather than
// once per pack.
func (pe *packEncoder) baseName(kind string) string {
	s, ok := pe.bn[kind]
	if !ok {
		s = baseName(kind)
		pe.bn[kind] = s
	}
	return s
}

// encodedRecord is what one SenML record of an emission holds.
type encodedRecord struct {
	name, unit string
	value, t   float64
}

// appendPack appends the pack for e to dst and says how many values it holds; it appends
// nothing for an emission without values.
func (pe *packEncoder) appendPack(dst []byte, e *sensing.Emission) ([]byte, int, error) {
	n := len(e.Samples)
	for _, c := range e.Chunks {
		n += len(c.Values)
	}
	records := n
	if e.Battery != nil {
		records++
	}
	if records == 0 {
		return dst, 0, nil
	}
	// Same arithmetic as AppendPack, so that times come out bit for bit the same.
	bt := float64(e.Time.UnixMilli()) / 1000
	rel := func(t time.Time) float64 { return float64(t.UnixMilli())/1000 - bt }
	w := recordWriter{cbor: pe.cbor, buf: dst, bn: pe.baseName(e.Device), bt: bt}
	w.begin(records)
	for i := range e.Samples {
		s := &e.Samples[i]
		w.record(encodedRecord{s.Code, s.Unit, s.Value, rel(s.Time)})
	}
	for _, c := range e.Chunks {
		t0 := float64(c.Start.UnixMilli()) / 1000
		per := c.Period.Seconds()
		for i := range c.Values {
			r := encodedRecord{name: c.Code, value: c.Values[i], t: t0 + float64(i)*per - bt}
			if i == 0 {
				r.unit = c.Unit
			}
			w.record(r)
		}
	}
	if e.Battery != nil {
		w.record(encodedRecord{name: sensing.CodeBattery, unit: batteryUnit, value: *e.Battery})
	}
	w.end()
	if w.err != nil {
		return dst, 0, w.err
	}
	return w.buf, n, nil
}

// recordWriter encodes records in the layout of wire/senml's encoders: members in the order
// bn, bt, n, u, v, t; absent (zero) ones left out; floats in CBOR in the shortest width that
// keeps the value, in JSON in the shortest form that reads back the same.
type recordWriter struct {
	cbor  bool
	buf   []byte
	bn    string
	bt    float64
	first bool // the next record is the pack's first, which carries bn and bt
	err   error
}

func (w *recordWriter) begin(records int) {
	w.first = true
	if w.cbor {
		w.buf = cborHead(w.buf, 4, uint64(records))
	} else {
		w.buf = append(w.buf, '[')
	}
}

func (w *recordWriter) end() {
	if !w.cbor {
		w.buf = append(w.buf, ']')
	}
}

func (w *recordWriter) record(r encodedRecord) {
	if w.err != nil {
		return
	}
	for _, f := range [...]float64{r.value, r.t} {
		if math.IsNaN(f) || math.IsInf(f, 0) {
			w.err = fmt.Errorf("senml: %v cannot be encoded", f)
			return
		}
	}
	for _, s := range [...]string{r.name, r.unit} {
		if !utf8.ValidString(s) {
			w.err = fmt.Errorf("senml: %q is not valid UTF-8", s)
			return
		}
	}
	first := w.first
	w.first = false
	if w.cbor {
		pairs := uint64(1) // v
		if first {
			pairs++
			if w.bt != 0 {
				pairs++
			}
		}
		if r.name != "" {
			pairs++
		}
		if r.unit != "" {
			pairs++
		}
		if r.t != 0 {
			pairs++
		}
		w.buf = cborHead(w.buf, 5, pairs)
		if first {
			w.buf = append(w.buf, 0x21) // -2: bn
			w.buf = cborText(w.buf, w.bn)
			if w.bt != 0 {
				w.buf = append(w.buf, 0x22) // -3: bt
				w.buf = cborFloat(w.buf, w.bt)
			}
		}
		if r.name != "" {
			w.buf = append(w.buf, 0x00) // n
			w.buf = cborText(w.buf, r.name)
		}
		if r.unit != "" {
			w.buf = append(w.buf, 0x01) // u
			w.buf = cborText(w.buf, r.unit)
		}
		w.buf = append(w.buf, 0x02) // v
		w.buf = cborFloat(w.buf, r.value)
		if r.t != 0 {
			w.buf = append(w.buf, 0x06) // t
			w.buf = cborFloat(w.buf, r.t)
		}
		return
	}
	if !first {
		w.buf = append(w.buf, ',')
	}
	w.buf = append(w.buf, '{')
	sep := false
	key := func(k string) {
		if sep {
			w.buf = append(w.buf, ',')
		}
		sep = true
		w.buf = append(w.buf, k...)
	}
	if first {
		key(`"bn":`)
		w.buf = jsonString(w.buf, w.bn)
		if w.bt != 0 {
			key(`"bt":`)
			w.buf = jsonNumber(w.buf, w.bt)
		}
	}
	if r.name != "" {
		key(`"n":`)
		w.buf = jsonString(w.buf, r.name)
	}
	if r.unit != "" {
		key(`"u":`)
		w.buf = jsonString(w.buf, r.unit)
	}
	key(`"v":`)
	w.buf = jsonNumber(w.buf, r.value)
	if r.t != 0 {
		key(`"t":`)
		w.buf = jsonNumber(w.buf, r.t)
	}
	w.buf = append(w.buf, '}')
}

// cborHead appends a CBOR data item head of the given major type, in its shortest form.
func cborHead(b []byte, major byte, n uint64) []byte {
	m := major << 5
	switch {
	case n < 24:
		return append(b, m|byte(n))
	case n <= math.MaxUint8:
		return append(b, m|24, byte(n))
	case n <= math.MaxUint16:
		return binary.BigEndian.AppendUint16(append(b, m|25), uint16(n))
	case n <= math.MaxUint32:
		return binary.BigEndian.AppendUint32(append(b, m|26), uint32(n))
	}
	return binary.BigEndian.AppendUint64(append(b, m|27), n)
}

func cborText(b []byte, s string) []byte {
	return append(cborHead(b, 3, uint64(len(s))), s...)
}

// cborFloat writes f as fxamacker/cbor does with ShortestFloat16 (wire/senml's setting): the
// narrowest of float16, float32 and float64 that holds f exactly.
func cborFloat(b []byte, f float64) []byte {
	f32 := float32(f)
	if float64(f32) != f {
		return binary.BigEndian.AppendUint64(append(b, 0xfb), math.Float64bits(f))
	}
	p := float16.PrecisionFromfloat32(f32)
	var h float16.Float16
	switch p {
	case float16.PrecisionExact:
		h = float16.Fromfloat32(f32)
	case float16.PrecisionUnknown:
		h = float16.Fromfloat32(f32)
		if h.Float32() == f32 {
			p = float16.PrecisionExact
		}
	}
	if p == float16.PrecisionExact {
		return binary.BigEndian.AppendUint16(append(b, 0xf9), uint16(h))
	}
	return binary.BigEndian.AppendUint32(append(b, 0xfa), math.Float32bits(f32))
}

// jsonNumber writes a finite float in the shortest form that reads back the same, with an
// exponent only for very large or small magnitudes (as wire/senml does).
func jsonNumber(b []byte, f float64) []byte {
	format := byte('f')
	if a := math.Abs(f); a != 0 && (a < 1e-6 || a >= 1e21) {
		format = 'e'
	}
	return strconv.AppendFloat(b, f, format, -1, 64)
}

const hexDigits = "0123456789abcdef"

// jsonString writes s (valid UTF-8) quoted, escaping what JSON requires.
func jsonString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		b = append(b, s[start:i]...)
		switch c {
		case '"', '\\':
			b = append(b, '\\', c)
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		case '\t':
			b = append(b, '\\', 't')
		default:
			b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		}
		start = i + 1
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
