package hl7v2

import (
	"errors"
	"fmt"
	"time"
)

// Precision is how much of a DTM value the sender gave.
type Precision int

// Precisions of the DTM data type, coarsest first. Fractions of a second have up to four
// digits in HL7.
const (
	Year Precision = iota + 1
	Month
	Day
	Hour
	Minute
	Second
	Decisecond
	Centisecond
	Millisecond
	TenthMillisecond
)

var precisionNames = [...]string{"", "year", "month", "day", "hour", "minute", "second", "0.1s", "0.01s", "ms", "0.1ms"}

func (p Precision) String() string {
	if p < 0 || int(p) >= len(precisionNames) {
		return fmt.Sprintf("Precision(%d)", int(p))
	}
	return precisionNames[p]
}

// MarshalText shows the precision by name in JSON.
func (p Precision) MarshalText() ([]byte, error) { return []byte(p.String()), nil }

// DTM is an HL7 date/time: the instant in UTC, how precisely the sender gave it, and whether
// the sender gave its UTC offset. Without an offset HL7 means the sender's local time, which
// only the sender knows; ParseDTM then uses the zone it is given.
type DTM struct {
	Time      time.Time `json:"time"`
	Precision Precision `json:"precision"`
	HasOffset bool      `json:"has_offset"`
}

// IsZero reports whether no time was given.
func (t DTM) IsZero() bool { return t.Time.IsZero() }

var errDTM = errors.New("not an HL7 DTM (YYYY[MM[DD[HH[MM[SS[.S[S[S[S]]]]]]]]][+/-ZZZZ])")

// ParseDTM reads an HL7 DTM (also TS's first component). loc is the zone of a value without
// an offset; nil means UTC. The result is in UTC.
func ParseDTM(s string, loc *time.Location) (DTM, error) {
	var t DTM
	body, off := s, ""
	for i := 0; i < len(s); i++ {
		if s[i] == '+' || s[i] == '-' {
			body, off = s[:i], s[i:]
			break
		}
	}
	// The digits before any fraction: 4, 6, 8, 10, 12 or 14 of them.
	digits := body
	frac := ""
	for i := 0; i < len(body); i++ {
		if body[i] == '.' {
			digits, frac = body[:i], body[i+1:]
			if frac == "" {
				return t, fmt.Errorf("%q: %w", s, errDTM)
			}
			break
		}
	}
	if !allDigits(digits) || !allDigits(frac) || len(frac) > 4 {
		return t, fmt.Errorf("%q: %w", s, errDTM)
	}
	switch len(digits) {
	case 4:
		t.Precision = Year
	case 6:
		t.Precision = Month
	case 8:
		t.Precision = Day
	case 10:
		t.Precision = Hour
	case 12:
		t.Precision = Minute
	case 14:
		t.Precision = Second
	default:
		return t, fmt.Errorf("%q: %w", s, errDTM)
	}
	if frac != "" {
		if t.Precision != Second {
			return t, fmt.Errorf("%q: a fraction of a second needs the seconds: %w", s, errDTM)
		}
		t.Precision = Second + Precision(len(frac))
	}
	num := func(i, n, def int) int {
		if i+n > len(digits) {
			return def
		}
		v := 0
		for _, c := range digits[i : i+n] {
			v = v*10 + int(c-'0')
		}
		return v
	}
	year, month, day := num(0, 4, 0), num(4, 2, 1), num(6, 2, 1)
	hour, minute, sec := num(8, 2, 0), num(10, 2, 0), num(12, 2, 0)
	nsec := 0
	if frac != "" {
		nsec = num2(frac)
	}
	if loc == nil {
		loc = time.UTC
	}
	if off != "" {
		if len(off) != 5 || !allDigits(off[1:]) {
			return t, fmt.Errorf("%q: UTC offset %q is not +/-HHMM", s, off)
		}
		oh, om := int(off[1]-'0')*10+int(off[2]-'0'), int(off[3]-'0')*10+int(off[4]-'0')
		if oh > 14 || om > 59 {
			return t, fmt.Errorf("%q: UTC offset %q is out of range", s, off)
		}
		secs := (oh*60 + om) * 60
		if off[0] == '-' {
			secs = -secs
		}
		loc = time.FixedZone(off, secs)
		t.HasOffset = true
	}
	tm := time.Date(year, time.Month(month), day, hour, minute, sec, nsec, loc)
	// time.Date normalises 31 February into March; HL7 does not.
	if tm.Year() != year || int(tm.Month()) != month || tm.Day() != day || tm.Hour() != hour ||
		tm.Minute() != minute || tm.Second() != sec {
		return t, fmt.Errorf("%q: no such date or time", s)
	}
	t.Time = tm.UTC()
	return t, nil
}

// num2 reads up to four fractional digits as nanoseconds.
func num2(frac string) int {
	v := 0
	for i := 0; i < 9; i++ {
		v *= 10
		if i < len(frac) {
			v += int(frac[i] - '0')
		}
	}
	return v
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// FormatDTM writes t in UTC as an HL7 DTM to the millisecond with a +0000 offset, the form
// this package uses in the messages it writes.
func FormatDTM(t time.Time) string {
	return t.UTC().Format("20060102150405.000-0700")
}
