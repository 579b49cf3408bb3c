package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var hl7Data = filepath.Join("..", "..", "..", "shared", "data", "hl7v2")

func hl7Run(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := hl7Command(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

const hl7Msg = "MSH|^~\\&|Gw|W|||20240102030405+0000||ORU^R01|C1|P|2.6\r" +
	"PID|||P1^^^H^PI\r" +
	"OBR|1|||||||\r" +
	"OBX|1|NM|150456^MDC_PULS_OXIM_SAT_O2^MDC|1.0.0.1|97|262688^MDC_DIM_PERCENT^MDC|||||R|||20240102030400+0000||||0123456789ABCDEF^EUI-64\r"

func writeTemp(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "msg.hl7")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestHL7ParseForms(t *testing.T) {
	for name, content := range map[string]string{
		"bare CR":    hl7Msg,
		"bare LF":    strings.ReplaceAll(hl7Msg, "\r", "\n"),
		"bare CRLF":  strings.ReplaceAll(hl7Msg, "\r", "\r\n"),
		"MLLP":       "\x0b" + hl7Msg + "\x1c\r",
		"MLLP, CRLF": "\r\n\x0b" + hl7Msg + "\x1c\r\n",
	} {
		code, out, errs := hl7Run(t, "parse", writeTemp(t, content))
		if code != 0 {
			t.Errorf("%s: exit %d: %s", name, code, errs)
			continue
		}
		var rep struct {
			Patient struct{ ID string }
			Orders  []struct {
				Observations []struct {
					Device string
					Mapped struct {
						Code  string
						Value float64
						Unit  string
					}
				}
			}
		}
		if err := json.Unmarshal([]byte(out), &rep); err != nil {
			t.Fatalf("%s: %v\n%s", name, err, out)
		}
		o := rep.Orders[0].Observations[0]
		if rep.Patient.ID != "P1" || o.Mapped.Code != "59408-5" || o.Mapped.Value != 97 || o.Mapped.Unit != "%" || o.Device != "0123456789ABCDEF" {
			t.Errorf("%s: %s", name, out)
		}
		if !strings.Contains(out, "\n  \"control_id\": \"C1\"") {
			t.Errorf("%s: not indented JSON:\n%s", name, out)
		}
	}
	// Standard input.
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	go func() { w.WriteString(hl7Msg); w.Close() }()
	stdin := os.Stdin
	os.Stdin = r
	code, out, errs := hl7Run(t, "parse", "-")
	os.Stdin = stdin
	if code != 0 || !strings.Contains(out, `"code": "59408-5"`) {
		t.Errorf("stdin: exit %d %s %s", code, out, errs)
	}
	// Two frames: an array of two reports.
	code, out, _ = hl7Run(t, "parse", writeTemp(t, "\x0b"+hl7Msg+"\x1c\r\x0b"+hl7Msg+"\x1c\r"))
	var reps []json.RawMessage
	if code != 0 || json.Unmarshal([]byte(out), &reps) != nil || len(reps) != 2 {
		t.Errorf("two frames: exit %d\n%s", code, out)
	}
}

func TestHL7ParseRefusals(t *testing.T) {
	for _, c := range []struct{ name, content, reason string }{
		{"empty", "\r\n", "the file is empty"},
		{"not HL7", "hello\r", "does not start with an MSH segment"},
		{"garbage between frames", "\x0b" + hl7Msg + "\x1c\rjunk", "MLLP frame 2: mllp: byte"},
		{"truncated frame", "\x0b" + hl7Msg, "stream ended inside the frame"},
		{"not ORU", strings.Replace(hl7Msg, "ORU^R01", "ADT^A01", 1), `message type "ADT"`},
		{"bad value", strings.Replace(hl7Msg, "|97|", "|9x|", 1), "OBX[1]-5.1"},
	} {
		code, out, errs := hl7Run(t, "parse", writeTemp(t, c.content))
		if code != 1 || out != "" || !strings.Contains(errs, c.reason) {
			t.Errorf("%s: exit %d, stdout %q, stderr %q; want 1 and %q", c.name, code, out, errs, c.reason)
		}
	}
	code, _, errs := hl7Run(t, "parse", filepath.Join(t.TempDir(), "missing.hl7"))
	if code != 1 || !strings.Contains(errs, "no such file") {
		t.Errorf("missing file: %d %q", code, errs)
	}
}

func TestHL7Usage(t *testing.T) {
	for _, args := range [][]string{nil, {"parse"}, {"parse", "a", "b"}, {"frobnicate"}} {
		if code, _, errs := hl7Run(t, args...); code != 2 || !strings.Contains(errs, "iomt hl7 parse FILE") {
			t.Errorf("%q: exit %d %q", args, code, errs)
		}
	}
	if code, out, _ := hl7Run(t, "help"); code != 0 || !strings.Contains(out, "Usage") {
		t.Errorf("help: %d", code)
	}
}

// The reference messages: every valid one parses, the invalid one is refused with its reason
// and the AE that would answer it.
func TestHL7ParseReferenceData(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join(hl7Data, "ipf_*"))
	if len(files) == 0 {
		t.Skipf("reference data in %s is absent; skipping", hl7Data)
	}
	for _, f := range files {
		code, out, errs := hl7Run(t, "parse", f)
		invalid := strings.Contains(filepath.Base(f), "invalid")
		switch {
		case invalid && (code != 1 || !strings.Contains(errs, "OBX-2 (value type) is empty while OBX-5 holds a value") ||
			!strings.Contains(errs, "MSA|AE|MSGID1234") || !strings.Contains(errs, "ERR||OBX^8^2^1|101^Required field missing^HL70357")):
			t.Errorf("%s: exit %d, stderr %s", f, code, errs)
		case !invalid && (code != 0 || !json.Valid([]byte(out))):
			t.Errorf("%s: exit %d, stderr %s", f, code, errs)
		}
	}
}
