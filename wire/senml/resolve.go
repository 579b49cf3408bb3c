package senml

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"time"
)

// Resolved is a record with RFC 8428 §4.6 resolution applied: no base fields, an absolute
// time, and a name that is valid on its own.
type Resolved struct {
	Name        string
	Unit        string
	Time        float64 // absolute, seconds since the Unix epoch
	UpdateTime  float64 // seconds; 0 when the record gave none
	Value       *float64
	StringValue *string
	BoolValue   *bool
	DataValue   []byte // shares storage with the pack it was resolved from
	Sum         *float64
	Index       int // index in the pack of the record this was resolved from
}

// At returns Time as a UTC time.Time rounded to the millisecond, iomt's time precision.
func (r Resolved) At() time.Time {
	return time.UnixMilli(int64(math.Round(r.Time * 1e3))).UTC()
}

const (
	// relativeLimit is 2**28: smaller times are relative to "now" (§4.5.3).
	relativeLimit = 1 << 28
	// timeLimit is 10000-01-01T00:00:00Z. Later times are refused: no device measures them,
	// and they would not survive a round trip through time.Time in milliseconds.
	timeLimit = 253402300800
)

// Resolve applies the base fields and makes relative times absolute against now, returning
// the records in chronological order (§4.6; records with equal times keep pack order).
//
// RFC 8428 leaves some room; this is what Resolve does there:
//   - A record that holds only base fields (bn, bt, bu, bv, bs, bver, unknown fields) and no
//     value, sum, n, u, t or ut sets the base fields for the records after it and yields no
//     resolved record, as in the RFC's own §5.1.7 example. Any other record without a value
//     or a sum is refused (§4.2: a value is required unless there is a sum).
//   - bv is added only to a numeric value (v). A record with bv in force but no v gets no
//     numeric value from it: bv is not a Value field, and adding a number to vs, vb or vd has
//     no meaning.
//   - bs follows §4.5.4 literally: "if only one of Base Sum or Sum is present, the missing one
//     is zero", so every record while bs is in force has a sum, bs + s.
//   - "Exactly one Value field": two or more of v, vs, vb, vd are refused even with a sum.
//   - A Unit present with the empty string ("u":"") overrides the base unit with no unit.
//   - Time bt+t below 2**28 is relative to now. A resolved time below 2**28 (before
//     1978-07-04, so not expressible as an absolute SenML time) or from the year 10000 on is
//     refused, as is a negative update time.
//   - Versions 1 to 10 are accepted, and all records must have the same version (§4.4). The
//     version is not carried into Resolved.
func (p Pack) Resolve(now time.Time) ([]Resolved, error) {
	if len(p) == 0 {
		return nil, emptyPack()
	}
	nowSec := float64(now.Unix()) + float64(now.Nanosecond())/1e9
	out := make([]Resolved, 0, len(p))
	// One slab for the value and sum of every record, instead of one allocation each.
	floats := make([]float64, 2*len(p))
	var (
		baseName, baseUnit   string
		baseTime             float64
		baseValue, baseSum   *float64
		version              = Version
		lastBase, lastName   string // name cache: waveform packs repeat bn and n
		lastFull             string
		haveLast             bool
		previousTime, sorted = math.Inf(-1), true
	)
	for i := range p {
		r := &p[i]
		if err := checkVersion(i, r, &version); err != nil {
			return nil, err
		}
		if r.hasBaseName() {
			baseName = r.BaseName
		}
		if r.hasBaseTime() {
			baseTime = r.BaseTime
		}
		if r.hasBaseUnit() {
			baseUnit = r.BaseUnit
		}
		if r.BaseValue != nil {
			baseValue = r.BaseValue
		}
		if r.BaseSum != nil {
			baseSum = r.BaseSum
		}

		values, second := countValues(r)
		if values > 1 {
			return nil, fieldError(i, second, "more than one value field (v, vs, vb, vd)")
		}
		hasSum := r.Sum != nil || baseSum != nil
		if values == 0 && !hasSum {
			if r.Name == "" && !r.hasUnit() && r.Time == 0 && r.UpdateTime == 0 {
				continue // base fields only
			}
			return nil, &Error{Record: i, Reason: "no value (v, vs, vb or vd) and no sum"}
		}

		res := Resolved{Index: i, DataValue: r.DataValue}
		if r.StringValue != nil {
			s := *r.StringValue
			res.StringValue = &s
		}
		if r.BoolValue != nil {
			b := *r.BoolValue
			res.BoolValue = &b
		}

		if haveLast && baseName == lastBase && r.Name == lastName {
			res.Name = lastFull
		} else {
			res.Name = baseName + r.Name
			if reason, at := checkName(res.Name); reason != "" {
				// Blame the part the bad character came from; an empty name lacks an n.
				l := labelName
				if at < len(baseName) {
					l = labelBaseName
				}
				return nil, fieldError(i, l, reason)
			}
			lastBase, lastName, lastFull, haveLast = baseName, r.Name, res.Name, true
		}

		res.Unit = baseUnit
		if r.hasUnit() {
			res.Unit = r.Unit
		}

		t := baseTime + r.Time
		if t < relativeLimit {
			t += nowSec
			if t < relativeLimit {
				return nil, fieldError(i, labelTime, fmt.Sprintf("relative time %v resolves to %v, before 2**28 (1978-07-04)", baseTime+r.Time, t))
			}
		}
		if !(t < timeLimit) { // also refuses NaN
			return nil, fieldError(i, labelTime, fmt.Sprintf("time %v is not before the year 10000", t))
		}
		res.Time = t
		if t < previousTime {
			sorted = false
		}
		previousTime = t

		if !(r.UpdateTime >= 0) || math.IsInf(r.UpdateTime, 0) {
			return nil, fieldError(i, labelUpdateTime, fmt.Sprintf("update time %v is not a non-negative number", r.UpdateTime))
		}
		res.UpdateTime = r.UpdateTime

		if r.Value != nil {
			v := *r.Value
			if baseValue != nil {
				v += *baseValue
			}
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return nil, fieldError(i, labelValue, fmt.Sprintf("value resolves to %v", v))
			}
			floats[2*i] = v
			res.Value = &floats[2*i]
		}
		if hasSum {
			var s float64
			if r.Sum != nil {
				s = *r.Sum
			}
			if baseSum != nil {
				s += *baseSum
			}
			if math.IsNaN(s) || math.IsInf(s, 0) {
				return nil, fieldError(i, labelSum, fmt.Sprintf("sum resolves to %v", s))
			}
			floats[2*i+1] = s
			res.Sum = &floats[2*i+1]
		}
		out = append(out, res)
	}
	if len(out) == 0 {
		return nil, packError("pack has only base fields and no measurement", nil)
	}
	if !sorted {
		slices.SortStableFunc(out, func(a, b Resolved) int { return cmp.Compare(a.Time, b.Time) })
	}
	return out, nil
}

// countValues counts the Value fields of r and returns the label of the second one found.
func countValues(r *Record) (n int, second label) {
	for _, v := range [...]struct {
		present bool
		l       label
	}{
		{r.Value != nil, labelValue}, {r.StringValue != nil, labelStringValue},
		{r.BoolValue != nil, labelBoolValue}, {r.DataValue != nil, labelDataValue},
	} {
		if v.present {
			n++
			if n == 2 {
				second = v.l
			}
		}
	}
	return n, second
}

// checkName applies §4.5.1 to a concatenated name. It returns why the name is refused and the
// byte at fault, or "" when the name is valid.
func checkName(name string) (reason string, at int) {
	if name == "" {
		return "name is empty: the record has neither bn nor n", 0
	}
	if !alphanumeric(name[0]) {
		return fmt.Sprintf("name %q must start with a letter or digit", name), 0
	}
	for i := 1; i < len(name); i++ {
		switch c := name[i]; {
		case alphanumeric(c), c == '-', c == ':', c == '.', c == '/', c == '_':
		default:
			return fmt.Sprintf("name %q has a character not allowed in SenML names at byte %d", name, i), i
		}
	}
	return "", 0
}

func alphanumeric(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// ResolvedPack turns resolved records back into a pack of self-contained records, with
// absolute times and no base fields, for forwarding. The pack shares value storage with rs.
func ResolvedPack(rs []Resolved) Pack {
	p := make(Pack, len(rs))
	for i, r := range rs {
		p[i] = Record{
			Name: r.Name, Unit: r.Unit, Time: r.Time, UpdateTime: r.UpdateTime,
			Value: r.Value, StringValue: r.StringValue, BoolValue: r.BoolValue,
			DataValue: r.DataValue, Sum: r.Sum,
		}
	}
	return p
}
