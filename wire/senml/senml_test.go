package senml_test

import (
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/fxamacker/cbor/v2"
	"github.com/iomt/iomt"
	"github.com/iomt/iomt/wire/senml"
)

func show(r senml.Resolved) string {
	s := fmt.Sprintf("{#%d %s %q t=%.6f ut=%v", r.Index, r.Name, r.Unit, r.Time, r.UpdateTime)
	if r.Value != nil {
		s += fmt.Sprintf(" v=%v", *r.Value)
	}
	if r.StringValue != nil {
		s += fmt.Sprintf(" vs=%q", *r.StringValue)
	}
	if r.BoolValue != nil {
		s += fmt.Sprintf(" vb=%v", *r.BoolValue)
	}
	if r.DataValue != nil {
		s += fmt.Sprintf(" vd=%x", r.DataValue)
	}
	if r.Sum != nil {
		s += fmt.Sprintf(" s=%v", *r.Sum)
	}
	return s + "}"
}

func showWant(w wantRecord) string {
	r := senml.Resolved{Name: w.N, Unit: w.U, Time: w.T, UpdateTime: w.UT, Value: w.V, StringValue: w.VS, BoolValue: w.VB, Sum: w.S}
	return show(r)
}

func showPack(p senml.Pack) string {
	b, err := senml.EncodeJSON(p)
	if err != nil {
		return fmt.Sprintf("%+v (%v)", p, err)
	}
	return string(b)
}

func ptr[T any](v T) *T { return &v }

func resolveJSON(t *testing.T, data string, now time.Time) []senml.Resolved {
	t.Helper()
	p, err := senml.DecodeJSON([]byte(data))
	if err != nil {
		t.Fatalf("decode %s: %v", data, err)
	}
	rs, err := p.Resolve(now)
	if err != nil {
		t.Fatalf("resolve %s: %v", data, err)
	}
	return rs
}

// withoutIndex clears Resolved.Index, which legitimately differs once a pack is rebuilt.
func withoutIndex(rs []senml.Resolved) []senml.Resolved {
	out := append([]senml.Resolved(nil), rs...)
	for i := range out {
		out[i].Index = 0
	}
	return out
}

// checkRoundTrip asserts that a pack that decodes and resolves survives encoding, in both
// formats, unchanged, and that its resolved form does too.
func checkRoundTrip(t *testing.T, p senml.Pack) {
	t.Helper()
	want, err := p.Resolve(wgNow)
	if err != nil {
		return
	}
	codecs := []struct {
		name   string
		encode func(senml.Pack) ([]byte, error)
		decode func([]byte) (senml.Pack, error)
	}{
		{"JSON", senml.EncodeJSON, senml.DecodeJSON},
		{"CBOR", senml.EncodeCBOR, senml.DecodeCBOR},
	}
	for _, c := range codecs {
		b, err := c.encode(p)
		if err != nil {
			t.Fatalf("%s: encoding a decoded pack: %v", c.name, err)
		}
		p2, err := c.decode(b)
		if err != nil {
			t.Fatalf("%s: decoding our own encoding %q: %v", c.name, b, err)
		}
		if !reflect.DeepEqual(p2, p) {
			t.Fatalf("%s: round trip changed the pack:\n%s\n%s", c.name, showPack(p), showPack(p2))
		}
		got, err := p2.Resolve(wgNow)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("%s: round trip changed the resolved form: %v", c.name, err)
		}

		b, err = c.encode(senml.ResolvedPack(want))
		if err != nil {
			t.Fatalf("%s: encoding the resolved pack: %v", c.name, err)
		}
		p3, err := c.decode(b)
		if err != nil {
			t.Fatalf("%s: decoding the resolved pack %q: %v", c.name, b, err)
		}
		got, err = p3.Resolve(wgNow)
		if err != nil {
			t.Fatalf("%s: resolving the resolved pack: %v", c.name, err)
		}
		if !reflect.DeepEqual(withoutIndex(got), withoutIndex(want)) {
			t.Fatalf("%s: resolved pack resolves differently", c.name)
		}
	}
}

// The example of RFC 8428 §5.1.5 (as printed in §5.1.3 of the draft) and its resolved form
// from §5.1.4, carried here so that the test runs without the shared data.
const rfcMultipleTypes = `[
  {"bn":"urn:dev:ow:10e2073a01080063","bt":1.320067464e+09,"bu":"%RH","v":20},
  {"u":"lon","v":24.30621},
  {"u":"lat","v":60.07965},
  {"t":60,"v":20.3},
  {"u":"lon","t":60,"v":24.30622},
  {"u":"lat","t":60,"v":60.07965},
  {"t":120,"v":20.7},
  {"u":"lon","t":120,"v":24.30623},
  {"u":"lat","t":120,"v":60.07966},
  {"u":"%EL","t":150,"v":98},
  {"t":180,"v":21.2},
  {"u":"lon","t":180,"v":24.30628},
  {"u":"lat","t":180,"v":60.07967}
]`

const rfcResolved = `[
  {"n":"urn:dev:ow:10e2073a01080063","u":"%RH","t":1.320067464e+09,"v":20},
  {"n":"urn:dev:ow:10e2073a01080063","u":"lon","t":1.320067464e+09,"v":24.30621},
  {"n":"urn:dev:ow:10e2073a01080063","u":"lat","t":1.320067464e+09,"v":60.07965},
  {"n":"urn:dev:ow:10e2073a01080063","u":"%RH","t":1.320067524e+09,"v":20.3},
  {"n":"urn:dev:ow:10e2073a01080063","u":"lon","t":1.320067524e+09,"v":24.30622},
  {"n":"urn:dev:ow:10e2073a01080063","u":"lat","t":1.320067524e+09,"v":60.07965},
  {"n":"urn:dev:ow:10e2073a01080063","u":"%RH","t":1.320067584e+09,"v":20.7},
  {"n":"urn:dev:ow:10e2073a01080063","u":"lon","t":1.320067584e+09,"v":24.30623},
  {"n":"urn:dev:ow:10e2073a01080063","u":"lat","t":1.320067584e+09,"v":60.07966},
  {"n":"urn:dev:ow:10e2073a01080063","u":"%EL","t":1.320067614e+09,"v":98},
  {"n":"urn:dev:ow:10e2073a01080063","u":"%RH","t":1.320067644e+09,"v":21.2},
  {"n":"urn:dev:ow:10e2073a01080063","u":"lon","t":1.320067644e+09,"v":24.30628},
  {"n":"urn:dev:ow:10e2073a01080063","u":"lat","t":1.320067644e+09,"v":60.07967}
]`

func TestRFCResolvedData(t *testing.T) {
	got := resolveJSON(t, rfcMultipleTypes, time.Now())
	// The resolved form is itself a valid pack, and resolving it changes nothing.
	want := resolveJSON(t, rfcResolved, time.Now())
	if !reflect.DeepEqual(got, want) {
		for i := range got {
			t.Logf("%s", show(got[i]))
		}
		t.Fatal("resolution differs from RFC 8428 §5.1.4")
	}
	if got[9].Unit != "%EL" || got[10].Unit != "%RH" {
		t.Fatalf("a record's unit must apply to it alone: %s, %s", show(got[9]), show(got[10]))
	}
	checkRoundTrip(t, mustDecodeJSON(t, rfcMultipleTypes))
}

func mustDecodeJSON(t *testing.T, s string) senml.Pack {
	t.Helper()
	p, err := senml.DecodeJSON([]byte(s))
	if err != nil {
		t.Fatalf("decode %s: %v", s, err)
	}
	return p
}

func TestRelativeTime(t *testing.T) {
	now := time.Date(2026, 11, 3, 10, 0, 0, 250_400_000, time.UTC)
	nowSec := float64(now.Unix()) + 0.2504
	rs := resolveJSON(t, `[
		{"n":"a","v":1},
		{"n":"b","v":2,"t":-5},
		{"bt":-60,"n":"c","v":3,"t":10},
		{"bt":1.7e9,"n":"d","v":4,"t":-1},
		{"bt":0,"n":"e","v":5,"t":2}
	]`, now)
	wantTimes := map[string]float64{
		"a": nowSec, "b": nowSec - 5, "c": nowSec - 50, "d": 1.7e9 - 1, "e": nowSec + 2,
	}
	for _, r := range rs {
		if math.Abs(r.Time-wantTimes[r.Name]) > 1e-6 {
			t.Errorf("%s: time %.6f, want %.6f", r.Name, r.Time, wantTimes[r.Name])
		}
	}
	// Chronological order: d (absolute, 2023) first, then c, b, a, e; Index points back.
	var order []string
	for _, r := range rs {
		order = append(order, fmt.Sprintf("%s%d", r.Name, r.Index))
	}
	if got := strings.Join(order, " "); got != "d3 c2 b1 a0 e4" {
		t.Errorf("order %s, want d3 c2 b1 a0 e4", got)
	}
	if at := rs[3].At(); !at.Equal(time.Date(2026, 11, 3, 10, 0, 0, 250_000_000, time.UTC)) || at.Location() != time.UTC {
		t.Errorf("At() = %v, want the time rounded to the millisecond in UTC", at)
	}
}

// "bt":0 and "bn":"" end the base fields before them; a zero that was present is not absent.
func TestExplicitZeroBaseFields(t *testing.T) {
	p := mustDecodeJSON(t, `[{"bn":"x:","bt":1.5e9,"bu":"V","n":"a","v":1},{"bn":"","bt":0,"bu":"","n":"b","v":2}]`)
	rs, err := p.Resolve(wgNow)
	if err != nil {
		t.Fatal(err)
	}
	// Chronological order puts record 1, now relative to "now" (2017), before record 0 (2017 too,
	// but later).
	if rs[1].Index != 0 || rs[1].Name != "x:a" || rs[1].Unit != "V" || rs[1].Time != 1.5e9 {
		t.Fatalf("got %s", show(rs[1]))
	}
	if rs[0].Index != 1 || rs[0].Name != "b" || rs[0].Time != float64(wgNow.Unix()) || rs[0].Unit != "" {
		t.Fatalf("bn, bt and bu present with zero values were ignored: %s", show(rs[0]))
	}
	checkRoundTrip(t, p)
}

func TestSumAndBaseValue(t *testing.T) {
	rs := resolveJSON(t, `[
		{"bn":"meter:","bs":100,"bv":10,"n":"energy","u":"Wh","s":5},
		{"n":"energy","s":7,"t":1},
		{"n":"power","u":"W","v":3,"t":2},
		{"n":"label","vs":"kitchen","t":3}
	]`, wgNow)
	type want struct {
		value, sum *float64
	}
	wants := []want{{nil, ptr(105.0)}, {nil, ptr(107.0)}, {ptr(13.0), ptr(100.0)}, {nil, ptr(100.0)}}
	for i, w := range wants {
		if !reflect.DeepEqual(rs[i].Value, w.value) || !reflect.DeepEqual(rs[i].Sum, w.sum) {
			t.Errorf("record %d: %s", i, show(rs[i]))
		}
	}
	if rs[3].StringValue == nil || *rs[3].StringValue != "kitchen" {
		t.Errorf("base value must leave a string value alone: %s", show(rs[3]))
	}

	// A sum alone is a measurement; bv without v is not a value.
	rs = resolveJSON(t, `[{"n":"e","s":1.5}]`, wgNow)
	if rs[0].Value != nil || *rs[0].Sum != 1.5 {
		t.Errorf("sum-only record: %s", show(rs[0]))
	}
	expectRefusal(t, `[{"bv":10,"n":"a"}]`, 0, "", "no value (v, vs, vb or vd) and no sum")
}

func TestBaseOnlyRecord(t *testing.T) {
	// RFC 8428 §5.1.7: a record with only bn configures the records after it.
	rs := resolveJSON(t, `[{"bn":"urn:dev:ow:10e2073a01080063:"},{"n":"temp","u":"Cel","v":23.1}]`, wgNow)
	if len(rs) != 1 || rs[0].Name != "urn:dev:ow:10e2073a01080063:temp" || rs[0].Index != 1 {
		t.Fatalf("got %v", rs)
	}
}

func TestDataAndBoolValues(t *testing.T) {
	p := mustDecodeJSON(t, `[{"bn":"d:","n":"blob","vd":"aGkgCg"},{"n":"empty","vd":""},{"n":"open","vb":false},{"n":"esc","vs":"a\"b\\c\u0001\n\u00e9"}]`)
	if string(p[0].DataValue) != "hi \n" || p[1].DataValue == nil || len(p[1].DataValue) != 0 {
		t.Fatalf("vd: %q, %#v", p[0].DataValue, p[1].DataValue)
	}
	if *p[2].BoolValue != false || *p[3].StringValue != "a\"b\\c\x01\né" {
		t.Fatalf("vb, vs: %v %q", *p[2].BoolValue, *p[3].StringValue)
	}
	checkRoundTrip(t, p)
}

func TestUnknownFieldsIgnored(t *testing.T) {
	p := mustDecodeJSON(t, `[{"n":"a","v":1,"l":"[{\"href\":\"x\"}]","x":{"y":[1,"]}",{"z":null}]},"w":true,"q":-1.5e3,"z":null}]`)
	if len(p) != 1 || *p[0].Value != 1 {
		t.Fatalf("got %+v", p)
	}
}

// expectRefusal decodes data (JSON, or CBOR when it does not start with '[') and resolves it,
// and asserts the refusal's record, field and reason.
func expectRefusal(t *testing.T, data string, record int, field, reason string) {
	t.Helper()
	err := refusal([]byte(data))
	if err == nil {
		t.Fatalf("%q: accepted, want refusal %q", data, reason)
	}
	var e *senml.Error
	if !errors.As(err, &e) {
		t.Fatalf("%q: error %T %v is not a *senml.Error", data, err, err)
	}
	if e.Record != record || e.Field != field || !strings.Contains(e.Reason, reason) {
		t.Fatalf("%q: got record %d field %q reason %q; want record %d field %q reason %q",
			data, e.Record, e.Field, e.Reason, record, field, reason)
	}
	if !errors.Is(err, iomt.ErrInvalid) {
		t.Fatalf("%q: refusal is not iomt.ErrInvalid", data)
	}
}

func refusal(data []byte) error {
	p, err := senml.Decode(data)
	if err != nil {
		return err
	}
	_, err = p.Resolve(wgNow)
	return err
}

func TestErrorText(t *testing.T) {
	err := refusal([]byte(`[{"n":"a","v":1},{"n":"b","v":2},{"n":"c","v":3},{"n":"d","v":"4"}]`))
	if err == nil || err.Error() != `senml: record 3: field "v": want number, got string` {
		t.Fatalf("got %v", err)
	}
	err = refusal([]byte(`[]`))
	if err == nil || err.Error() != `senml: pack has no records` {
		t.Fatalf("got %v", err)
	}
}

func TestJSONRefusals(t *testing.T) {
	cases := []struct {
		name, data    string
		record        int
		field, reason string
	}{
		{"version too high", `[{"bver":11,"n":"a","v":1}]`, 0, "bver", "version 11 is newer than the supported version 10"},
		{"version far too high", `[{"bver":1e300,"n":"a","v":1}]`, 0, "bver", "is newer than the supported version 10"},
		{"version zero", `[{"bver":0,"n":"a","v":1}]`, 0, "bver", "version 0 is not a positive integer"},
		{"version fraction", `[{"bver":5.5,"n":"a","v":1}]`, 0, "bver", "version 5.5 is not a positive integer"},
		{"version changes", `[{"bver":5,"n":"a","v":1},{"bver":10,"n":"b","v":1}]`, 1, "bver", "version 10 differs from version 5"},
		{"version after default", `[{"n":"a","v":1},{"bver":9,"n":"b","v":1}]`, 1, "bver", "version 9 differs from version 10"},
		{"must understand", `[{"n":"a","v":1},{"n":"b","v":1,"foo_":1}]`, 1, "foo_", "must-understand field is not supported"},
		{"must understand base", `[{"bfoo_":"x","n":"a","v":1}]`, 0, "bfoo_", "must-understand field is not supported"},
		{"name space", `[{"n":"a b","v":1}]`, 0, "n", `name "a b" has a character not allowed in SenML names at byte 1`},
		{"name in base", `[{"bn":"dev 1:","n":"a","v":1}]`, 0, "bn", `name "dev 1:a" has a character not allowed`},
		{"name start", `[{"n":"-a","v":1}]`, 0, "n", `name "-a" must start with a letter or digit`},
		{"name non-ASCII", `[{"n":"temp\u00e9","v":1}]`, 0, "n", "has a character not allowed in SenML names at byte 4"},
		{"name empty", `[{"u":"Cel","v":1}]`, 0, "n", "name is empty: the record has neither bn nor n"},
		{"empty pack", `[]`, -1, "", "pack has no records"},
		{"empty pack spaces", " [ \n ] ", -1, "", "pack has no records"},
		{"no value", `[{"n":"a","u":"Cel"}]`, 0, "", "no value (v, vs, vb or vd) and no sum"},
		{"time but no value", `[{"n":"a","v":1},{"n":"a","t":5}]`, 1, "", "no value (v, vs, vb or vd) and no sum"},
		{"only base fields", `[{"bn":"a"},{"bt":1}]`, -1, "", "pack has only base fields and no measurement"},
		{"two values", `[{"n":"a","v":1,"vb":true}]`, 0, "vb", "more than one value field"},
		{"two values with sum", `[{"n":"a","s":1,"vs":"x","vd":"AA"}]`, 0, "vd", "more than one value field"},
		{"string for number", `[{"n":"a","v":"1"}]`, 0, "v", "want number, got string"},
		{"number for string", `[{"n":1,"v":1}]`, 0, "n", "want string, got number"},
		{"string for bool", `[{"n":"a","vb":"true"}]`, 0, "vb", "want boolean, got string"},
		{"null", `[{"n":"a","v":null}]`, 0, "v", "want number, got null"},
		{"object for time", `[{"n":"a","v":1,"t":{}}]`, 0, "t", "want number, got object"},
		{"array for unit", `[{"n":"a","v":1,"u":["V"]}]`, 0, "u", "want string, got array"},
		{"number for data", `[{"n":"a","vd":12}]`, 0, "vd", "want string, got number"},
		{"padded base64", `[{"n":"a","vd":"aGk="}]`, 0, "vd", "want base64url without padding"},
		{"standard base64", `[{"n":"a","vd":"a+b/"}]`, 0, "vd", "want base64url without padding"},
		{"duplicate", `[{"n":"a","v":1,"v":2}]`, 0, "v", "duplicate field"},
		{"duplicate escaped", `[{"n":"a","v":1,"\u0076":2}]`, 0, "v", "duplicate field"},
		{"escaped must understand", `[{"n":"a","v":1,"x\u005f":2}]`, 0, "x_", "must-understand"},
		{"overflow", `[{"n":"a","v":1e400}]`, 0, "v", "number 1e400 is out of range"},
		{"value overflows with base", `[{"bv":1.7e308,"n":"a","v":1.7e308}]`, 0, "v", "value resolves to +Inf"},
		{"relative time before 1978", `[{"n":"a","v":1,"t":-2e9}]`, 0, "t", "relative time -2e+09 resolves to"},
		{"year 10000", `[{"n":"a","v":1,"t":3e11}]`, 0, "t", "is not before the year 10000"},
		{"negative update time", `[{"n":"a","v":1,"ut":-1}]`, 0, "ut", "update time -1 is not a non-negative number"},
		{"top-level number", `  42`, -1, "", "top level must be an array, got number"},
		{"record not object", `[{"n":"a","v":1},"x"]`, 1, "", "want object, got string"},
		{"syntax", `[{"n":"a","v":1,}]`, -1, "", "invalid JSON"},
		{"truncated", `[{"n":"a","v":1}`, -1, "", "invalid JSON"},
		{"trailing data", `[{"n":"a","v":1}] x`, -1, "", "invalid JSON"},
		{"invalid UTF-8", "[{\"n\":\"a\",\"vs\":\"\xff\"}]", -1, "", "JSON is not valid UTF-8"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { expectRefusal(t, c.data, c.record, c.field, c.reason) })
	}
}

func TestJSONTopLevelMustBeArray(t *testing.T) {
	_, err := senml.DecodeJSON([]byte(`{"n":"a","v":1}`))
	var e *senml.Error
	if !errors.As(err, &e) || e.Record != -1 || e.Reason != "top level must be an array, got object" {
		t.Fatalf("got %v", err)
	}
}

func TestMaxRecords(t *testing.T) {
	pack := func(n int) []byte {
		var b strings.Builder
		b.WriteString("[")
		for i := range n {
			if i > 0 {
				b.WriteString(",")
			}
			fmt.Fprintf(&b, `{"n":"a","v":%d}`, i)
		}
		b.WriteString("]")
		return []byte(b.String())
	}
	if p, err := senml.DecodeJSON(pack(senml.DefaultMaxRecords)); err != nil || len(p) != senml.DefaultMaxRecords {
		t.Fatalf("the default limit itself must be accepted: %v", err)
	}
	for _, tc := range []struct {
		opts senml.DecodeOptions
		n    int
		want string
	}{
		{senml.DecodeOptions{}, senml.DefaultMaxRecords + 1, "pack has more than 10000 records"},
		{senml.DecodeOptions{MaxRecords: 2}, 3, "pack has more than 2 records"},
	} {
		data := pack(tc.n)
		_, err := tc.opts.DecodeJSON(data)
		if err == nil || err.Error() != "senml: "+tc.want {
			t.Fatalf("JSON, %d records: %v", tc.n, err)
		}
		// The same pack in CBOR, definite and indefinite length.
		p, err := senml.DecodeOptions{MaxRecords: tc.n}.DecodeJSON(data)
		if err != nil {
			t.Fatal(err)
		}
		c, err := senml.EncodeCBOR(p)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tc.opts.DecodeCBOR(c); err == nil || err.Error() != "senml: "+tc.want {
			t.Fatalf("CBOR, %d records: %v", tc.n, err)
		}
	}
	if _, err := (senml.DecodeOptions{MaxRecords: 2}).DecodeCBOR(mustHex(t, "9f a2 00 61 61 02 01 a2 00 61 61 02 01 a2 00 61 61 02 01 ff")); err == nil ||
		!strings.Contains(err.Error(), "exceeded max number of elements") && !strings.Contains(err.Error(), "pack has more than 2 records") {
		t.Fatalf("indefinite-length CBOR array over the limit: %v", err)
	}
	if p, err := (senml.DecodeOptions{MaxRecords: 3}).DecodeCBOR(mustHex(t, "9f a2 00 61 61 02 01 a2 00 61 61 02 01 a2 00 61 61 02 01 ff")); err != nil || len(p) != 3 {
		t.Fatalf("indefinite-length CBOR array at the limit: %v", err)
	}
}

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestCBORRefusals(t *testing.T) {
	cases := []struct {
		name, hex     string
		record        int
		field, reason string
	}{
		// [{0: "a", 2: NaN}] and friends.
		{"NaN", "81 a2 00 61 61 02 f9 7e 00", 0, "v", "NaN is not a number SenML allows"},
		{"infinity", "81 a2 00 61 61 06 fa 7f 80 00 00", 0, "t", "infinity is not a number SenML allows"},
		{"negative infinity", "81 a2 00 61 61 02 fb ff f0 00 00 00 00 00 00", 0, "v", "infinity is not a number SenML allows"},
		{"text for number", "81 a2 00 61 61 02 61 78", 0, "v", "want number, got text string"},
		{"bytes for name", "81 a2 00 41 61 02 01", 0, "n", "want text string, got byte string"},
		{"text for data", "81 a2 00 61 61 08 61 78", 0, "vd", "want byte string, got text string"},
		{"int for bool", "81 a2 00 61 61 04 01", 0, "vb", "want boolean, got unsigned integer"},
		{"null value", "81 a2 00 61 61 02 f6", 0, "v", "want number, got null"},
		{"other tag", "81 a2 00 61 61 02 c1 01", 0, "v", "want number, got tag 1"},
		{"float version", "81 a3 20 f9 45 00 00 61 61 02 01", 0, "bver", "want unsigned integer, got float"},
		{"version too high", "81 a3 20 0b 00 61 61 02 01", 0, "bver", "version 11 is newer than the supported version 10"},
		{"indefinite name", "81 a2 00 7f 61 61 ff 02 01", 0, "n", "want definite-length text string"},
		{"invalid UTF-8", "81 a2 00 61 ff 02 01", 0, "n", "text string is not valid UTF-8"},
		{"duplicate int and text", "81 a3 00 61 61 02 01 61 76 02", 0, "v", "duplicate field"},
		{"must understand", "81 a3 00 61 61 02 01 62 78 5f 01", 0, "x_", "must-understand field is not supported"},
		{"key bytes", "81 a3 00 61 61 02 01 41 01 01", 0, "", "map key must be an integer or a definite-length text string, got byte string"},
		{"record not map", "82 a2 00 61 61 02 01 01", 1, "", "want map, got unsigned integer"},
		{"top level map", "a2 00 61 61 02 01", -1, "", "top level must be an array, got map"},
		{"empty pack", "80", -1, "", "pack has no records"},
		{"empty indefinite pack", "9f ff", -1, "", "pack has no records"},
		{"truncated", "81 a2 00 61 61 02 fb 40 5e 06 66 66 66", -1, "", "malformed CBOR"},
		{"trailing data", "81 a2 00 61 61 02 01 00", -1, "", "malformed CBOR"},
		{"huge array head", "9b 00 00 00 01 00 00 00 00 a0", -1, "", "pack has more than 10000 records"},
		{"too deep", "81 a3 00 61 61 02 01 61 78 " + strings.Repeat("81 ", 20) + "00", -1, "", "malformed CBOR"},
		{"decimal fraction overflow", "81 a2 00 61 61 02 c4 82 19 ff ff 01", 0, "v", "decimal fraction is out of range"},
		{"decimal fraction shape", "81 a2 00 61 61 02 c4 81 01", 0, "v", "decimal fraction must be an array of two integers"},
		{"no value", "81 a1 00 61 61", 0, "", "no value"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { expectRefusal(t, string(mustHex(t, c.hex)), c.record, c.field, c.reason) })
	}
}

func TestCBORTruncatedEverywhere(t *testing.T) {
	p := mustDecodeJSON(t, rfcMultipleTypes)
	b, err := senml.EncodeCBOR(p)
	if err != nil {
		t.Fatal(err)
	}
	for n := range len(b) {
		_, err := senml.DecodeCBOR(b[:n])
		var e *senml.Error
		if !errors.As(err, &e) {
			t.Fatalf("truncated to %d bytes: got %v", n, err)
		}
		if n > 0 && e.Reason != "malformed CBOR" {
			t.Fatalf("truncated to %d bytes: reason %q", n, e.Reason)
		}
	}
}

func TestCBORAccepts(t *testing.T) {
	cases := []struct {
		name, hex string
		want      senml.Record
	}{
		{"text labels", "81 a3 61 6e 61 61 61 76 f9 3e 00 62 62 74 1a 65 53 f1 00",
			senml.Record{Name: "a", Value: ptr(1.5), BaseTime: 1700000000, Present: senml.HasBaseTime}},
		{"integers", "81 a3 00 61 61 02 38 63 06 20", senml.Record{Name: "a", Value: ptr(-100.0), Time: -1}},
		{"float32", "81 a2 00 61 61 02 fa 3f c0 00 00", senml.Record{Name: "a", Value: ptr(1.5)}},
		{"float16 subnormal", "81 a2 00 61 61 02 f9 00 01", senml.Record{Name: "a", Value: ptr(math.Ldexp(1, -24))}},
		{"decimal fraction", "81 a2 00 61 61 02 c4 82 21 19 30 39", senml.Record{Name: "a", Value: ptr(123.45)}},
		{"negative decimal fraction", "81 a2 00 61 61 02 c4 82 21 39 30 38", senml.Record{Name: "a", Value: ptr(-123.45)}},
		{"indefinite map and array", "9f bf 00 61 61 02 01 ff ff", senml.Record{Name: "a", Value: ptr(1.0)}},
		{"unknown int and text labels", "81 a5 00 61 61 02 01 18 63 82 01 bf 61 78 80 ff 63 66 6f 6f c1 01 26 7f 61 61 ff",
			senml.Record{Name: "a", Value: ptr(1.0)}},
		{"bytes and bool", "82 a2 00 61 61 08 42 01 02 a2 00 61 62 04 f5", senml.Record{Name: "a", DataValue: []byte{1, 2}}},
		{"empty unit present", "81 a3 00 61 61 01 60 02 01", senml.Record{Name: "a", Unit: "", Present: senml.HasUnit, Value: ptr(1.0)}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, err := senml.DecodeCBOR(mustHex(t, c.hex))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(p[0], c.want) {
				t.Fatalf("got %+v, want %+v", p[0], c.want)
			}
			checkRoundTrip(t, p)
		})
	}
}

func TestCBOREncodingUsesIntegerLabels(t *testing.T) {
	p := mustDecodeJSON(t, `[{"bn":"urn:dev:ow:10e2073a0108006:","bt":1.276020076001e+09,"bu":"A","bver":5,"n":"voltage","u":"V","v":120.1},{"n":"current","t":-5,"v":1.5}]`)
	b, err := senml.EncodeCBOR(p)
	if err != nil {
		t.Fatal(err)
	}
	var generic []map[int]any
	if err := cbor.Unmarshal(b, &generic); err != nil {
		t.Fatalf("not a CBOR array of integer-keyed maps: %v", err)
	}
	if generic[0][-2] != "urn:dev:ow:10e2073a0108006:" || generic[0][-1] != uint64(5) || generic[1][6] != -5.0 {
		t.Fatalf("labels: %v", generic)
	}
	// 1.5 fits a half-precision float exactly, as in the RFC's dump; 120.1 needs 64 bits.
	if !strings.Contains(hex.EncodeToString(b), "02f93e00") || !strings.Contains(hex.EncodeToString(b), "02fb405e066666666666") {
		t.Fatalf("floats not in shortest exact form: %x", b)
	}
}

func TestEncodeRefusals(t *testing.T) {
	cases := []struct {
		name          string
		p             senml.Pack
		record        int
		field, reason string
	}{
		{"NaN", senml.Pack{{Name: "a", Value: ptr(math.NaN())}}, 0, "v", "NaN cannot be encoded"},
		{"infinite time", senml.Pack{{Name: "a", Value: ptr(1.0)}, {Name: "a", Value: ptr(1.0), Time: math.Inf(1)}}, 1, "t", "+Inf cannot be encoded"},
		{"bad UTF-8", senml.Pack{{Name: "a\xff", Value: ptr(1.0)}}, 0, "n", "string is not valid UTF-8"},
		{"version", senml.Pack{{Name: "a", Value: ptr(1.0), BaseVersion: ptr(11)}}, 0, "bver", "newer than the supported version"},
	}
	for _, c := range cases {
		for name, encode := range map[string]func(senml.Pack) ([]byte, error){"JSON": senml.EncodeJSON, "CBOR": senml.EncodeCBOR} {
			_, err := encode(c.p)
			var e *senml.Error
			if !errors.As(err, &e) || e.Record != c.record || e.Field != c.field || !strings.Contains(e.Reason, c.reason) {
				t.Errorf("%s %s: got %v", c.name, name, err)
			}
		}
	}
}

func TestJSONEncoding(t *testing.T) {
	p := senml.Pack{
		{BaseName: "dev:", BaseTime: 1.7e9, BaseVersion: ptr(10), Name: "a", Value: ptr(1e21), Time: 1e-7},
		{Name: "b", Value: ptr(-0.5), StringValue: nil, UpdateTime: 60, Unit: "", Present: senml.HasUnit},
		{Name: "c", BoolValue: ptr(true), DataValue: []byte{0xfb, 0xff}},
	}
	b, err := senml.EncodeJSON(p)
	if err != nil {
		t.Fatal(err)
	}
	const want = `[{"bn":"dev:","bt":1700000000,"bver":10,"n":"a","v":1e+21,"t":1e-07},` +
		`{"n":"b","u":"","v":-0.5,"ut":60},{"n":"c","vb":true,"vd":"-_8"}]`
	if string(b) != want {
		t.Fatalf("got  %s\nwant %s", b, want)
	}
	p2 := mustDecodeJSON(t, string(b))
	if !reflect.DeepEqual(p2[1:], p[1:]) || p2[0].Present != senml.HasBaseName|senml.HasBaseTime {
		t.Fatalf("round trip: %+v", p2)
	}
}

func TestDecodeSniffs(t *testing.T) {
	for _, data := range []string{" \n\t[{\"n\":\"a\",\"v\":1}]", string(mustHex(t, "81 a2 00 61 61 02 01"))} {
		p, err := senml.Decode([]byte(data))
		if err != nil || len(p) != 1 || p[0].Name != "a" || *p[0].Value != 1 {
			t.Fatalf("Decode(%q) = %+v, %v", data, p, err)
		}
	}
	for _, data := range []string{"", "  \n"} {
		if _, err := senml.Decode([]byte(data)); err == nil || err.Error() != "senml: empty input" {
			t.Fatalf("Decode(%q): %v", data, err)
		}
	}
}

// Resolve must not share value storage with the pack beyond DataValue.
func TestResolveCopies(t *testing.T) {
	p := mustDecodeJSON(t, `[{"n":"a","v":1},{"n":"b","vs":"x"},{"n":"c","vb":true}]`)
	rs, err := p.Resolve(wgNow)
	if err != nil {
		t.Fatal(err)
	}
	*rs[0].Value, *rs[1].StringValue, *rs[2].BoolValue = 2, "y", false
	if *p[0].Value != 1 || *p[1].StringValue != "x" || !*p[2].BoolValue {
		t.Fatal("changing a resolved record changed the pack")
	}
}

// A caller may reuse its input buffer once Decode returns.
func TestDecodeDoesNotAliasInput(t *testing.T) {
	for _, data := range [][]byte{
		[]byte(`[{"bn":"x:","bu":"V","n":"a","u":"W","vs":"s","vd":"AQI"}]`),
		mustHex(t, "81 a4 00 61 61 01 61 57 03 61 73 08 42 01 02"),
	} {
		p, err := senml.Decode(data)
		if err != nil {
			t.Fatal(err)
		}
		before := fmt.Sprintf("%+v %q %q", p, *p[0].StringValue, p[0].DataValue)
		for i := range data {
			data[i] = 'z'
		}
		if after := fmt.Sprintf("%+v %q %q", p, *p[0].StringValue, p[0].DataValue); after != before {
			t.Fatalf("pack changed with its input:\n%s\n%s", before, after)
		}
	}
}

// RFC 8428 §5.1.7, second light example (the data set's ex13, which has no resolved form).
func TestRFCActuatorTimes(t *testing.T) {
	rs := resolveJSON(t, `[
		{"bt":1.320078429e+09,"bu":"/","n":"2001:db8::3","v":0.5},
		{"n":"2001:db8::4","v":0.5},
		{"n":"2001:db8::3","t":0.1,"v":0},
		{"n":"2001:db8::4","t":0.1,"v":0}
	]`, wgNow)
	want := []struct {
		name string
		t, v float64
	}{{"2001:db8::3", 1320078429, 0.5}, {"2001:db8::4", 1320078429, 0.5}, {"2001:db8::3", 1320078429.1, 0}, {"2001:db8::4", 1320078429.1, 0}}
	for i, w := range want {
		r := rs[i]
		if r.Name != w.name || r.Unit != "/" || math.Abs(r.Time-w.t) > 1e-6 || *r.Value != w.v || r.Index != i {
			t.Errorf("record %d: %s", i, show(r))
		}
	}
}
