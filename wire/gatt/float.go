package gatt

import (
	"math"
	"strconv"
)

// Special says whether an IEEE 11073-20601 number is a number or one of the special values.
type Special uint8

// The special values of IEEE 11073-20601 §F.8 (FLOAT) and §F.9 (SFLOAT). They exist only with
// exponent 0; any other exponent with the same mantissa is an ordinary number.
const (
	Number   Special = iota // a finite value Mantissa × 10^Exponent
	NaN                     // not a number: the device has no valid value
	NRes                    // not at this resolution: the value does not fit the format
	PosInf                  // +INFINITY
	NegInf                  // -INFINITY
	Reserved                // reserved for future use; decoders of measurements refuse it
)

func (s Special) String() string {
	switch s {
	case Number:
		return "number"
	case NaN:
		return "NaN"
	case NRes:
		return "NRes"
	case PosInf:
		return "+INFINITY"
	case NegInf:
		return "-INFINITY"
	case Reserved:
		return "reserved"
	}
	return "Special(" + strconv.Itoa(int(s)) + ")"
}

// Float is an IEEE 11073-20601 SFLOAT (16-bit) or FLOAT (32-bit) as the device sent it. The
// decimal mantissa and exponent are kept so that 37.60 stays 37.60 (the device's resolution)
// instead of becoming the nearest binary fraction.
type Float struct {
	Mantissa int32
	Exponent int8
	Special  Special
}

// SFloat decodes a 16-bit SFLOAT: a 4-bit signed exponent above a 12-bit signed mantissa.
func SFloat(raw uint16) Float {
	// Shifting left then arithmetically right sign-extends each part.
	return newFloat(int32(int16(raw<<4))>>4, int8(raw>>8)>>4, 0x07FF)
}

// Float32 decodes a 32-bit FLOAT: an 8-bit signed exponent above a 24-bit signed mantissa.
func Float32(raw uint32) Float {
	return newFloat(int32(raw<<8)>>8, int8(raw>>24), 0x7FFFFF)
}

// newFloat classifies mantissa m and exponent e; top is the largest mantissa of the format.
// The special values are the five mantissas at the ends of the range with exponent 0.
func newFloat(m int32, e int8, top int32) Float {
	if e == 0 {
		switch m {
		case top:
			return Float{Mantissa: m, Special: NaN}
		case -top - 1:
			return Float{Mantissa: m, Special: NRes}
		case top - 1:
			return Float{Mantissa: m, Special: PosInf}
		case -(top - 1):
			return Float{Mantissa: m, Special: NegInf}
		case -top:
			return Float{Mantissa: m, Special: Reserved}
		}
	}
	return Float{Mantissa: m, Exponent: e}
}

// IsNumber reports whether f is a finite value rather than a special value.
func (f Float) IsNumber() bool { return f.Special == Number }

// Float64 returns the value nearest to Mantissa × 10^Exponent; NaN for NaN, NRes and
// reserved; ±Inf for the infinities.
func (f Float) Float64() float64 {
	switch f.Special {
	case Number:
	case PosInf:
		return math.Inf(1)
	case NegInf:
		return math.Inf(-1)
	default:
		return math.NaN()
	}
	// Powers of ten up to 1e22 are exact in float64, so one multiplication or division
	// rounds correctly; the rare larger exponents of FLOAT go through the decimal parser.
	m := float64(f.Mantissa)
	switch {
	case f.Mantissa == 0:
		return 0
	case f.Exponent >= 0 && f.Exponent <= 22:
		return m * math.Pow10(int(f.Exponent))
	case f.Exponent < 0 && f.Exponent >= -22:
		return m / math.Pow10(-int(f.Exponent))
	}
	v, _ := strconv.ParseFloat(strconv.Itoa(int(f.Mantissa))+"e"+strconv.Itoa(int(f.Exponent)), 64)
	return v
}

// String is the exact decimal ("37.60", "-0.5", "1200", "7e100") or the special value's name.
func (f Float) String() string {
	if f.Special != Number {
		return f.Special.String()
	}
	return string(f.appendDecimal(nil))
}

// appendDecimal writes the exact decimal as a valid JSON number.
func (f Float) appendDecimal(b []byte) []byte {
	m, e := int64(f.Mantissa), int(f.Exponent)
	if m == 0 {
		return append(b, '0')
	}
	switch {
	case e >= 0 && e <= 9:
		b = strconv.AppendInt(b, m, 10)
		for range e {
			b = append(b, '0')
		}
		return b
	case e < 0 && e >= -12:
		if m < 0 {
			b = append(b, '-')
			m = -m
		}
		digits := strconv.FormatInt(m, 10)
		if len(digits) <= -e {
			b = append(b, "0."...)
			for range -e - len(digits) {
				b = append(b, '0')
			}
			return append(b, digits...)
		}
		point := len(digits) + e
		b = append(b, digits[:point]...)
		b = append(b, '.')
		return append(b, digits[point:]...)
	}
	b = strconv.AppendInt(b, m, 10)
	b = append(b, 'e')
	return strconv.AppendInt(b, int64(e), 10)
}

// MarshalJSON writes a number as its exact decimal and a special value as a string
// ("NaN", "NRes", "+INFINITY", "-INFINITY", "reserved"), which JSON numbers cannot hold.
func (f Float) MarshalJSON() ([]byte, error) {
	if f.Special != Number {
		return strconv.AppendQuote(nil, f.Special.String()), nil
	}
	return f.appendDecimal(make([]byte, 0, 16)), nil
}
