package hl7v2_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/iomt/iomt"
	"github.com/iomt/iomt/wire/hl7v2"
)

const oximeter = "MSH|^~\\&|Gw^ACDE48234567ABCD^EUI-64|Ward3|iomt|Hosp|20240102030405.123+0100||ORU^R01^ORU_R01|C42|P|2.6|||NE|AL\r" +
	"PID|||P1^^^Hosp^PI~MR7^^^Hosp^MR||Doe^Jane\r" +
	"OBR|1|A1|B1|182777000^monitoring of patient^SNOMED-CT|||20240102030400+0100\r" +
	"OBX|1||528388^MDC_DEV_SPEC_PROFILE_PULS_OXIM^MDC|1|||||||X|||||||0123456789ABCDEF^EUI-64\r" +
	"OBX|2|NM|150456^MDC_PULS_OXIM_SAT_O2^MDC|1.0.0.1|97|262688^MDC_DIM_PERCENT^MDC|||||R|||20240102030405+0100\r" +
	"OBX|3|NM|149530^MDC_PULS_OXIM_PULS_RATE^MDC|1.0.0.2|72|264864^MDC_DIM_BEAT_PER_MIN^MDC|||||R\r" +
	"NTE|1||probe \\T\\ cable \\F\\ok\\F\\\\.br\\re-seated\r"

func mustParse(t testing.TB, s string) *hl7v2.Message {
	t.Helper()
	m, err := hl7v2.Parse([]byte(s))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return m
}

func TestParseStructure(t *testing.T) {
	m := mustParse(t, oximeter)
	if got := len(m.Segments); got != 7 {
		t.Fatalf("%d segments, want 7", got)
	}
	msh := m.Header()
	if msh.Get(1, 1) != "|" || msh.Get(2, 1) != `^~\&` {
		t.Errorf("MSH-1/2 = %q %q", msh.Get(1, 1), msh.Get(2, 1))
	}
	if got := msh.Field(3); got.Comp(1) != "Gw" || got.Comp(2) != "ACDE48234567ABCD" || got.Comp(3) != "EUI-64" {
		t.Errorf("MSH-3 = %v", got)
	}
	if c, tr := m.Type(); c != "ORU" || tr != "R01" || m.ControlID() != "C42" {
		t.Errorf("type %s^%s control %s", c, tr, m.ControlID())
	}
	pid := m.Segment("PID")
	ids := pid.Field(3)
	if len(ids) != 2 || ids[1].Comp(1) != "MR7" || ids[1].Comp(5) != "MR" {
		t.Errorf("PID-3 repetitions = %v", ids)
	}
	if !pid.Field(1).Empty() || pid.Field(99) != nil {
		t.Error("absent fields are not empty")
	}
	nte := m.Segment("NTE")
	if got, want := nte.Get(3, 1), "probe & cable |ok|\nre-seated"; got != want {
		t.Errorf("NTE-3 = %q, want %q", got, want)
	}
}

// The delimiters are the message's own, not assumed.
func TestParseOtherDelimiters(t *testing.T) {
	s := strings.NewReplacer("|", "#", "^", "!", "~", "*", "\\", "$", "&", "%").Replace(
		"MSH|^~\\&|A|B|||20240102||ORU^R01|1|P|2.6\rOBR|1||||||20240102\rOBX|1|ST|x^y^MDC|1|a^b~c&d\\F\\e\\S\\|||||R\r")
	m := mustParse(t, s)
	if m.Delimiters.Field != '#' || m.Delimiters.Component != '!' || m.Delimiters.Repetition != '*' ||
		m.Delimiters.Escape != '$' || m.Delimiters.Subcomponent != '%' {
		t.Fatalf("delimiters %+v", m.Delimiters)
	}
	obx := m.Segment("OBX")
	v := obx.Field(5)
	if len(v) != 2 || v.Comp(1) != "a" || v.Comp(2) != "b" || v[1].Sub(1, 1) != "c" || v[1].Sub(1, 2) != "d#e!" {
		t.Errorf("OBX-5 = %q", v)
	}
	if got := mustParse(t, string(m.Encode())); !equal(got, m) {
		t.Errorf("re-encoded message differs:\n%q", m.Encode())
	}
}

func equal(a, b *hl7v2.Message) bool {
	return string(a.Encode()) == string(b.Encode()) && a.Delimiters == b.Delimiters
}

func TestParseLineEnds(t *testing.T) {
	want := mustParse(t, oximeter)
	for name, sep := range map[string]string{"LF": "\n", "CRLF": "\r\n", "CR CR": "\r\r"} {
		s := "\r\n" + strings.ReplaceAll(oximeter, "\r", sep)
		got := mustParse(t, s)
		if !equal(got, want) {
			t.Errorf("%s: parsed differently", name)
		}
	}
}

func TestEscapes(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{`a\F\b`, "a|b"},
		{`\S\\T\\R\\E\`, `^&~\`},
		{`\X0D0A\`, "\r\n"},
		{`\X41\\X4243\`, "ABC"},
		{`line\.br\next`, "line\nnext"},
		{`a\.sp2\b`, "a\n\nb"},
		{`a\.sp 3\b`, "a\n\n\nb"},
		{`\H\bold\N\`, "bold"},
		{`\.fi\\.nf\\.in+4\\.ti-2\\.sk3\x`, "x"},
		{`\C2842\x\M2442\`, "x"},
		{`\P\`, "#"},
		{`unknown \Q\ kept`, `unknown \Q\ kept`},
		{`bad hex \X4\`, `bad hex \X4\`},
		{`\Zlocal\`, `\Zlocal\`},
		{`unterminated \F`, `unterminated \F`},
		{`\\`, `\\`},
	} {
		m := mustParse(t, "MSH|^~\\&|\rNTE|1||"+c.in+"\r")
		if got := m.Segment("NTE").Get(3, 1); got != c.want {
			t.Errorf("%q decodes to %q, want %q", c.in, got, c.want)
		}
	}
}

func TestParseRefusals(t *testing.T) {
	for _, c := range []struct{ in, reason string }{
		{"", "does not start with an MSH"},
		{"PID|1\r", "does not start with an MSH"},
		{"MSH", "MSH-1"},
		{"MSH|^~\\|x", "4 characters"},
		{"MSH|^~\\&&|x", "declared twice"},
		{"MSH|^~A&|x", "cannot be a delimiter"},
		{"MSH|^~\\&|\rP!D|1\r", "is not a segment"},
		{"MSH|^~\\&|\rPID1\r", `segment 2: "PID1" is not a segment`},
		{"MSH|^~\\&|\rMSH|^~\\&|\r", "second MSH"},
	} {
		_, err := hl7v2.Parse([]byte(c.in))
		if err == nil || !strings.Contains(err.Error(), c.reason) {
			t.Errorf("%q: error %v, want one saying %q", c.in, err, c.reason)
			continue
		}
		var he *hl7v2.Error
		if !errors.As(err, &he) || !errors.Is(err, iomt.ErrInvalid) {
			t.Errorf("%q: %T is not an *hl7v2.Error matching iomt.ErrInvalid", c.in, err)
		}
	}
}

func TestParseDTM(t *testing.T) {
	for _, c := range []struct {
		in   string
		want string
		prec hl7v2.Precision
		off  bool
	}{
		{"2009", "2009-01-01T00:00:00Z", hl7v2.Year, false},
		{"200907", "2009-07-01T00:00:00Z", hl7v2.Month, false},
		{"20090715", "2009-07-15T00:00:00Z", hl7v2.Day, false},
		{"2009071507", "2009-07-15T07:00:00Z", hl7v2.Hour, false},
		{"200907150707", "2009-07-15T07:07:00Z", hl7v2.Minute, false},
		{"20090715070707", "2009-07-15T07:07:07Z", hl7v2.Second, false},
		{"20090715070707.1", "2009-07-15T07:07:07.1Z", hl7v2.Decisecond, false},
		{"20090715070707.12", "2009-07-15T07:07:07.12Z", hl7v2.Centisecond, false},
		{"20090715070707.123+0000", "2009-07-15T07:07:07.123Z", hl7v2.Millisecond, true},
		{"20090715070707.1234-0330", "2009-07-15T10:37:07.1234Z", hl7v2.TenthMillisecond, true},
		{"20090813095725+0500", "2009-08-13T04:57:25Z", hl7v2.Second, true},
		{"200908130957-0800", "2009-08-13T17:57:00Z", hl7v2.Minute, true},
		{"20240229", "2024-02-29T00:00:00Z", hl7v2.Day, false},
	} {
		got, err := hl7v2.ParseDTM(c.in, nil)
		if err != nil {
			t.Errorf("%s: %v", c.in, err)
			continue
		}
		if got.Time.Format(time.RFC3339Nano) != c.want || got.Precision != c.prec || got.HasOffset != c.off || got.Time.Location() != time.UTC {
			t.Errorf("%s = %s %v %v, want %s %v %v", c.in, got.Time.Format(time.RFC3339Nano), got.Precision, got.HasOffset, c.want, c.prec, c.off)
		}
	}
	// A value without an offset is in the zone given.
	got, _ := hl7v2.ParseDTM("202401020304", time.FixedZone("", 3600))
	if got.Time.Format(time.RFC3339) != "2024-01-02T02:04:00Z" {
		t.Errorf("in +01:00: %v", got.Time)
	}
	for _, bad := range []string{"", "200", "20090", "2009071", "20090715070707.", "20090715070707.12345",
		"200907150707.5", "20230229", "20091315", "20090715250000", "20090715070707+05", "20090715070707+2500",
		"20090715070707+05x0", "2009-07-15", "20090715070707Z", "+0100"} {
		if _, err := hl7v2.ParseDTM(bad, nil); err == nil {
			t.Errorf("%q was accepted", bad)
		}
	}
	if s := hl7v2.FormatDTM(time.Date(2024, 1, 2, 3, 4, 5, 6e6, time.FixedZone("", 7200))); s != "20240102010405.006+0000" {
		t.Errorf("FormatDTM = %s", s)
	}
}
