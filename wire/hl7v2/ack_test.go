package hl7v2_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/iomt/iomt/codes"
	"github.com/iomt/iomt/wire/hl7v2"
)

var ackTime = time.Date(2024, 1, 2, 3, 4, 5, 6e6, time.UTC)

func TestAckAccept(t *testing.T) {
	m := mustParse(t, oximeter)
	if _, err := hl7v2.DecodeORU(m, codes.New()); err != nil {
		t.Fatal(err)
	}
	got := string(hl7v2.Ack(m, nil, hl7v2.AckOptions{ControlID: "A9", Time: ackTime}).Encode())
	want := "MSH|^~\\&|iomt|Hosp|Gw^ACDE48234567ABCD^EUI-64|Ward3|20240102030405.006+0000||ACK^R01^ACK|A9|P|2.6\r" +
		"MSA|AA|C42\r"
	if got != want {
		t.Errorf("ACK\n got %q\nwant %q", got, want)
	}
}

func TestAckRefusals(t *testing.T) {
	opt := hl7v2.AckOptions{Time: ackTime, Application: "iomt", Facility: "Ward"}
	// AR: a version this receiver does not take; the ACK still answers in the sender's terms.
	m := mustParse(t, strings.Replace(header, "|2.6", "|3.0", 1))
	_, err := hl7v2.DecodeORU(m, nil)
	ack := mustParse(t, string(hl7v2.Ack(m, err, opt).Encode()))
	if got := ack.Segment("MSA"); got.Get(1, 1) != "AR" || got.Get(2, 1) != "C1" {
		t.Errorf("MSA = %v", got.Fields)
	}
	e := ack.Segment("ERR")
	if e.Get(2, 1) != "MSH" || e.Field(2).Comp(3) != "12" || e.Get(3, 1) != "203" || e.Field(3).Comp(3) != "HL70357" ||
		e.Get(4, 1) != "E" || !strings.Contains(e.Get(8, 1), `version "3.0"`) {
		t.Errorf("ERR = %q", ack.Encode())
	}
	if h := ack.Header(); h.Get(10, 1) != "ACKC1" || h.Get(12, 1) != "3.0" || h.Get(3, 1) != "iomt" {
		t.Errorf("MSH = %q", ack.Encode())
	}

	// A reason with delimiters in it is escaped, and reads back.
	m = mustParse(t, header+"OBR|1\rOBX|1|NM|150456^^MDC|1|9\\F\\7|%^^UCUM|||||R\r")
	_, err = hl7v2.DecodeORU(m, nil)
	ack = mustParse(t, string(hl7v2.Ack(m, err, opt).Encode()))
	if got := ack.Segment("ERR").Get(8, 1); !strings.Contains(got, "not a valid NM") {
		t.Errorf("ERR-8 = %q", got)
	}

	// Not an *Error: the receiver failed, AE with 207.
	m = mustParse(t, oximeter)
	ack = mustParse(t, string(hl7v2.Ack(m, errors.New("store: disk full"), opt).Encode()))
	if ack.Segment("MSA").Get(1, 1) != "AE" || ack.Segment("ERR").Get(3, 1) != "207" || ack.Segment("ERR").Get(8, 1) != "store: disk full" {
		t.Errorf("ACK = %q", ack.Encode())
	}

	// Nothing readable: AR with the default delimiters and an empty MSA-2.
	_, err = hl7v2.Parse([]byte("garbage"))
	got := string(hl7v2.Ack(nil, err, opt).Encode())
	if !strings.HasPrefix(got, "MSH|^~\\&|iomt|Ward|||20240102030405.006+0000||ACK|ACK|P|2.6\rMSA|AR\rERR||MSH^1|100^Segment sequence error^HL70357|E") {
		t.Errorf("ACK = %q", got)
	}
}

// The ACK uses the delimiters of the message it answers.
func TestAckDelimiters(t *testing.T) {
	s := strings.NewReplacer("|", "#", "^", "!").Replace(header + "OBR|1\r")
	m := mustParse(t, s)
	got := string(hl7v2.Ack(m, nil, hl7v2.AckOptions{ControlID: "X", Time: ackTime}).Encode())
	if !strings.HasPrefix(got, "MSH#!~\\&#iomt#Hosp#Dev#Fac#") || !strings.Contains(got, "#ACK!R01!ACK#") {
		t.Errorf("ACK = %q", got)
	}
}
