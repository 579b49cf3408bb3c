package gatt

import (
	"encoding/binary"
	"fmt"
	"strconv"
	"time"

	"github.com/iomt/iomt"
)

// Error is a refused payload: which characteristic, where in the payload, which field, why.
// It matches iomt.ErrInvalid with errors.Is, so ingest counts it as bad input.
type Error struct {
	UUID   uint16 // characteristic, e.g. 0x2A37
	Offset int    // byte offset in the payload where the field starts
	Field  string // the field, with its wire type, e.g. "heart rate (uint16)"
	Reason string // e.g. "needs 2 bytes, 1 left"
}

func (e *Error) Error() string {
	return fmt.Sprintf("gatt: 0x%04X: offset %d: %s %s", e.UUID, e.Offset, e.Field, e.Reason)
}

// Is makes errors.Is(err, iomt.ErrInvalid) true.
func (e *Error) Is(target error) bool { return target == iomt.ErrInvalid }

// reader walks a payload field by field and names the field when the payload falls short.
type reader struct {
	uuid uint16
	b    []byte
	off  int
	end  int // exclusive bound: a CGM record ends before the payload does
}

func newReader(uuid uint16, b []byte) reader { return reader{uuid: uuid, b: b, end: len(b)} }

func (r *reader) fail(off int, field, format string, args ...any) error {
	return &Error{UUID: r.uuid, Offset: off, Field: field, Reason: fmt.Sprintf(format, args...)}
}

func (r *reader) left() int { return r.end - r.off }

func (r *reader) take(n int, field string) ([]byte, error) {
	if r.left() < n {
		unit := "bytes"
		if n == 1 {
			unit = "byte"
		}
		return nil, r.fail(r.off, field, "needs %d %s, %d left", n, unit, r.left())
	}
	p := r.b[r.off : r.off+n]
	r.off += n
	return p, nil
}

func (r *reader) u8(field string) (uint8, error) {
	p, err := r.take(1, field)
	if err != nil {
		return 0, err
	}
	return p[0], nil
}

func (r *reader) u16(field string) (uint16, error) {
	p, err := r.take(2, field)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint16(p), nil
}

func (r *reader) u24(field string) (uint32, error) {
	p, err := r.take(3, field)
	if err != nil {
		return 0, err
	}
	return uint32(p[0]) | uint32(p[1])<<8 | uint32(p[2])<<16, nil
}

// sfloat reads an SFLOAT and refuses the reserved special value, which no measurement may carry.
func (r *reader) sfloat(field string) (Float, error) {
	at := r.off
	raw, err := r.u16(field + " (SFLOAT)")
	if err != nil {
		return Float{}, err
	}
	f := SFloat(raw)
	if f.Special == Reserved {
		return Float{}, r.fail(at, field+" (SFLOAT)", "is the reserved value 0x%04X", raw)
	}
	return f, nil
}

// float reads a 32-bit FLOAT and refuses the reserved special value.
func (r *reader) float(field string) (Float, error) {
	at := r.off
	p, err := r.take(4, field+" (FLOAT)")
	if err != nil {
		return Float{}, err
	}
	raw := binary.LittleEndian.Uint32(p)
	f := Float32(raw)
	if f.Special == Reserved {
		return Float{}, r.fail(at, field+" (FLOAT)", "is the reserved value 0x%08X", raw)
	}
	return f, nil
}

// done refuses bytes after the last field the flags announce: they mean the payload and its
// flags disagree, and guessing which one is right could misread a value.
func (r *reader) done() error {
	if n := r.left(); n > 0 {
		return r.fail(r.off, "end of payload", "expected, %d trailing bytes after the last announced field", n)
	}
	return nil
}

// DateTime is the Bluetooth Date Time characteristic (0x2A08) embedded in measurements: the
// device's local wall-clock time, without zone. Zero in Year, Month or Day means "not known".
type DateTime struct {
	Year    uint16 `json:"year"`
	Month   uint8  `json:"month"`
	Day     uint8  `json:"day"`
	Hours   uint8  `json:"hours"`
	Minutes uint8  `json:"minutes"`
	Seconds uint8  `json:"seconds"`
}

// dateTime reads seven bytes and refuses impossible months, days and times of day. The year is
// kept whatever it is: the specification's range is 1582..9999, but refusing a measurement for
// a badly set clock would lose the value; Time reports such a timestamp as not usable.
func (r *reader) dateTime(field string) (DateTime, error) {
	at := r.off
	p, err := r.take(7, field+" (date time)")
	if err != nil {
		return DateTime{}, err
	}
	d := DateTime{Year: binary.LittleEndian.Uint16(p), Month: p[2], Day: p[3], Hours: p[4], Minutes: p[5], Seconds: p[6]}
	switch {
	case d.Month > 12:
		return DateTime{}, r.fail(at+2, field+" month", "%d is out of range 0..12", d.Month)
	case d.Day > 31:
		return DateTime{}, r.fail(at+3, field+" day", "%d is out of range 0..31", d.Day)
	case d.Hours > 23:
		return DateTime{}, r.fail(at+4, field+" hours", "%d is out of range 0..23", d.Hours)
	case d.Minutes > 59:
		return DateTime{}, r.fail(at+5, field+" minutes", "%d is out of range 0..59", d.Minutes)
	case d.Seconds > 59:
		return DateTime{}, r.fail(at+6, field+" seconds", "%d is out of range 0..59", d.Seconds)
	}
	return d, nil
}

// Time returns the wall-clock time in loc when the date is complete (year 1582..9999, month
// and day known and valid); false otherwise. A nil loc means UTC.
func (d DateTime) Time(loc *time.Location) (time.Time, bool) {
	if loc == nil {
		loc = time.UTC
	}
	if d.Year < 1582 || d.Year > 9999 || d.Month == 0 || d.Day == 0 {
		return time.Time{}, false
	}
	t := time.Date(int(d.Year), time.Month(d.Month), int(d.Day), int(d.Hours), int(d.Minutes), int(d.Seconds), 0, loc)
	if t.Day() != int(d.Day) { // 31 February
		return time.Time{}, false
	}
	return t, true
}

// String is "YYYY-MM-DDThh:mm:ss" with zeros where the device does not know.
func (d DateTime) String() string {
	b := make([]byte, 0, 19)
	b = appendPadded(b, int(d.Year), 4)
	b = append(b, '-')
	b = appendPadded(b, int(d.Month), 2)
	b = append(b, '-')
	b = appendPadded(b, int(d.Day), 2)
	b = append(b, 'T')
	b = appendPadded(b, int(d.Hours), 2)
	b = append(b, ':')
	b = appendPadded(b, int(d.Minutes), 2)
	b = append(b, ':')
	b = appendPadded(b, int(d.Seconds), 2)
	return string(b)
}

func appendPadded(b []byte, v, width int) []byte {
	s := strconv.Itoa(v)
	for i := len(s); i < width; i++ {
		b = append(b, '0')
	}
	return append(b, s...)
}

// CRC16MCRF4XX is the E2E-CRC of the CGM service (CGMS §3.1.3, "CRC-CCITT" with the
// polynomial x^16+x^12+x^5+1 processed LSB first, seed 0xFFFF, no final XOR).
func CRC16MCRF4XX(b []byte) uint16 {
	crc := uint16(0xFFFF)
	for _, c := range b {
		crc ^= uint16(c)
		for range 8 {
			if crc&1 != 0 {
				crc = crc>>1 ^ 0x8408
			} else {
				crc >>= 1
			}
		}
	}
	return crc
}

// bit reports whether bit n of v is set.
func bit[T ~uint8 | ~uint16 | ~uint32](v T, n uint) bool { return v&(1<<n) != 0 }
