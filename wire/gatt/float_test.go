package gatt

import (
	"encoding/json"
	"math"
	"testing"
)

func TestSFloat(t *testing.T) {
	for _, c := range []struct {
		raw     uint16
		special Special
		m       int32
		e       int8
		f       float64
		s       string
	}{
		{0x07FF, NaN, 0x07FF, 0, math.NaN(), "NaN"},
		{0x0800, NRes, -0x0800, 0, math.NaN(), "NRes"},
		{0x07FE, PosInf, 0x07FE, 0, math.Inf(1), "+INFINITY"},
		{0x0802, NegInf, -0x07FE, 0, math.Inf(-1), "-INFINITY"},
		{0x0801, Reserved, -0x07FF, 0, math.NaN(), "reserved"},
		// The same mantissas with another exponent are ordinary numbers.
		{0x17FF, Number, 2047, 1, 20470, "20470"},
		{0xF800, Number, -2048, -1, -204.8, "-204.8"},
		{0xF7FE, Number, 2046, -1, 204.6, "204.6"},
		// Boundaries of mantissa and exponent.
		{0x0000, Number, 0, 0, 0, "0"},
		{0x07FD, Number, 2045, 0, 2045, "2045"},
		{0x0803, Number, -2045, 0, -2045, "-2045"},
		{0x0FFF, Number, -1, 0, -1, "-1"},
		{0x77FD, Number, 2045, 7, 2045e7, "20450000000"},
		{0x8001, Number, 1, -8, 1e-8, "0.00000001"},
		{0x8803, Number, -2045, -8, -2045e-8, "-0.00002045"},
		{0xE4D2, Number, 1234, -2, 12.34, "12.34"},
		{0xF3E5, Number, 997, -1, 99.7, "99.7"},
		{0x100C, Number, 12, 1, 120, "120"},
	} {
		got := SFloat(c.raw)
		if got.Special != c.special || got.Mantissa != c.m || got.Exponent != c.e {
			t.Errorf("SFloat(%#04x) = %+v, want special %v m %d e %d", c.raw, got, c.special, c.m, c.e)
		}
		if f := got.Float64(); !(f == c.f || math.IsNaN(f) && math.IsNaN(c.f)) {
			t.Errorf("SFloat(%#04x).Float64() = %v, want %v", c.raw, f, c.f)
		}
		if s := got.String(); s != c.s {
			t.Errorf("SFloat(%#04x).String() = %q, want %q", c.raw, s, c.s)
		}
		if got.IsNumber() != (c.special == Number) {
			t.Errorf("SFloat(%#04x).IsNumber() = %v", c.raw, got.IsNumber())
		}
	}
}

func TestFloat32(t *testing.T) {
	for _, c := range []struct {
		raw     uint32
		special Special
		m       int32
		e       int8
		f       float64
		s       string
	}{
		{0x007FFFFF, NaN, 0x7FFFFF, 0, math.NaN(), "NaN"},
		{0x00800000, NRes, -0x800000, 0, math.NaN(), "NRes"},
		{0x007FFFFE, PosInf, 0x7FFFFE, 0, math.Inf(1), "+INFINITY"},
		{0x00800002, NegInf, -0x7FFFFE, 0, math.Inf(-1), "-INFINITY"},
		{0x00800001, Reserved, -0x7FFFFF, 0, math.NaN(), "reserved"},
		{0x017FFFFF, Number, 0x7FFFFF, 1, 83886070, "83886070"},
		{0xFF800000, Number, -0x800000, -1, -838860.8, "-838860.8"},
		{0xFE000EB0, Number, 3760, -2, 37.6, "37.60"},
		{0x00000000, Number, 0, 0, 0, "0"},
		{0x00FFFFFF, Number, -1, 0, -1, "-1"},
		{0x7F000001, Number, 1, 127, 1e127, "1e127"},
		{0x80000001, Number, 1, -128, 1e-128, "1e-128"},
		{0x80FFFFFF, Number, -1, -128, -1e-128, "-1e-128"},
		{0xF4000001, Number, 1, -12, 1e-12, "0.000000000001"},
		{0x16000001, Number, 1, 22, 1e22, "1e22"},
		{0x17000003, Number, 3, 23, 3e23, "3e23"},
	} {
		got := Float32(c.raw)
		if got.Special != c.special || got.Mantissa != c.m || got.Exponent != c.e {
			t.Errorf("Float32(%#08x) = %+v, want special %v m %d e %d", c.raw, got, c.special, c.m, c.e)
		}
		if f := got.Float64(); !(f == c.f || math.IsNaN(f) && math.IsNaN(c.f)) {
			t.Errorf("Float32(%#08x).Float64() = %v, want %v", c.raw, f, c.f)
		}
		if s := got.String(); s != c.s {
			t.Errorf("Float32(%#08x).String() = %q, want %q", c.raw, s, c.s)
		}
	}
}

// TestFloatJSON: numbers are valid JSON numbers equal to Float64; specials are strings.
func TestFloatJSON(t *testing.T) {
	for raw := 0; raw <= 0xFFFF; raw++ {
		f := SFloat(uint16(raw))
		b, err := json.Marshal(f)
		if err != nil {
			t.Fatalf("%#04x: %v", raw, err)
		}
		if !f.IsNumber() {
			var s string
			if err := json.Unmarshal(b, &s); err != nil || s != f.Special.String() {
				t.Fatalf("%#04x: JSON %s, want string %q", raw, b, f.Special)
			}
			continue
		}
		var v float64
		if err := json.Unmarshal(b, &v); err != nil {
			t.Fatalf("%#04x: JSON %s does not parse: %v", raw, b, err)
		}
		if v != f.Float64() {
			t.Fatalf("%#04x: JSON %s = %v, Float64 %v", raw, b, v, f.Float64())
		}
	}
	for _, raw := range []uint32{0x80800000, 0x7F7FFFFD, 0xF5123456, 0xEBFEDCBA, 0x0A000007} {
		f := Float32(raw)
		b, _ := json.Marshal(f)
		var v float64
		if err := json.Unmarshal(b, &v); err != nil || v != f.Float64() {
			t.Errorf("%#08x: JSON %s = %v (%v), Float64 %v", raw, b, v, err, f.Float64())
		}
	}
}

func TestCRC16MCRF4XX(t *testing.T) {
	// The catalogue check value of CRC-16/MCRF4XX over "123456789".
	if got := CRC16MCRF4XX([]byte("123456789")); got != 0x6F91 {
		t.Fatalf("check value %#04x, want 0x6F91", got)
	}
	if got := CRC16MCRF4XX(hexb(t, "08 00 0C 10 06 00")); got != 0x6F59 {
		t.Fatalf("CGM vector CRC %#04x, want 0x6F59", got)
	}
}
