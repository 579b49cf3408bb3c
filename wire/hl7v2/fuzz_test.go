package hl7v2_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/iomt/iomt/codes"
	"github.com/iomt/iomt/wire/hl7v2"
)

// FuzzParse checks that no input crashes the parser or the ORU decoder, that every refusal is
// an *Error, that an ACK can always be built and read back, and that a parsed message
// survives Encode and Parse unchanged.
func FuzzParse(f *testing.F) {
	f.Add([]byte(oximeter))
	f.Add([]byte(header + "OBR|1\rOBX|1|SN|150456^^MDC|1|<^90~^97|262688^MDC_DIM_PERCENT^MDC|||||R|||20240102030405.1234-0130\r"))
	f.Add([]byte(header + "OBR|1\rOBX|1|CWE|150604^MDC_PULS_OXIM_DEV_STATUS^MDC|1|1^sensor-off(4)~0^signal-searching(6)||||||R|||20240102030405\r"))
	f.Add([]byte("MSH#!*$%#\rNTE#1##a$F$b$X0D$c$.sp 2$d$\r"))
	f.Add([]byte("MSH|^~\\&#|x\rNTE|1||\\P\\\r"))
	files, _ := filepath.Glob(filepath.Join(dataDir, "*.hl7*"))
	for _, name := range files {
		if b, err := os.ReadFile(name); err == nil {
			f.Add(b)
		}
	}
	cat := codes.New()
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := hl7v2.Parse(data)
		if err != nil {
			var he *hl7v2.Error
			if !errors.As(err, &he) {
				t.Fatalf("refusal %T %v is not an *hl7v2.Error", err, err)
			}
			if _, err := hl7v2.Parse(hl7v2.Ack(nil, err, hl7v2.AckOptions{}).Encode()); err != nil {
				t.Fatalf("ACK of an unreadable message does not parse: %v", err)
			}
			return
		}
		enc := m.Encode()
		m2, err := hl7v2.Parse(enc)
		if err != nil {
			t.Fatalf("re-encoded message %q does not parse: %v", enc, err)
		}
		if !reflect.DeepEqual(normalise(m), normalise(m2)) {
			t.Fatalf("round trip changed the message:\n%q\n%q", data, enc)
		}
		if enc2 := m2.Encode(); !bytes.Equal(enc, enc2) {
			t.Fatalf("encoding is not stable:\n%q\n%q", enc, enc2)
		}
		_, err = hl7v2.DecodeORU(m, cat)
		if err != nil {
			var he *hl7v2.Error
			if !errors.As(err, &he) {
				t.Fatalf("ORU refusal %T %v is not an *hl7v2.Error", err, err)
			}
		}
		ack, perr := hl7v2.Parse(hl7v2.Ack(m, err, hl7v2.AckOptions{}).Encode())
		if perr != nil {
			t.Fatalf("ACK does not parse: %v", perr)
		}
		if got, want := ack.Segment("MSA").Get(2, 1), m.ControlID(); got != want {
			t.Fatalf("MSA-2 %q, want %q", got, want)
		}
	})
}

// normalise maps nil and empty slices alike: a field written "" and one absent read the same,
// as does one whose escapes stand for nothing (\.sp0\: skip no lines).
func normalise(m *hl7v2.Message) [][][][]string {
	var out [][][][]string
	for _, s := range m.Segments {
		seg := [][][]string{{{s.Name}}}
		for _, f := range s.Fields {
			var fl [][]string
			if f.Empty() {
				seg = append(seg, fl)
				continue
			}
			for _, r := range f {
				var rep []string
				for _, c := range r {
					rep = append(rep, c...)
					rep = append(rep, "\x00")
				}
				fl = append(fl, rep)
			}
			seg = append(seg, fl)
		}
		out = append(out, seg)
	}
	return out
}

func FuzzParseDTM(f *testing.F) {
	for _, s := range []string{"20090715070707.1234-0330", "2009", "20240229", "20090715070707+0000"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := hl7v2.ParseDTM(s, nil)
		if err != nil {
			return
		}
		if d.Time.Location().String() != "UTC" || d.Precision < hl7v2.Year || d.Precision > hl7v2.TenthMillisecond {
			t.Fatalf("%q: %+v", s, d)
		}
	})
}
