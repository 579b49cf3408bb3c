package hl7v2

import (
	"errors"
	"strconv"
	"time"
)

// AckOptions are what the receiver says about itself in an ACK.
type AckOptions struct {
	// ControlID is the ACK's own MSH-10. Empty: the answered message's control id prefixed
	// with "ACK", which is unique as long as the sender's ids are.
	ControlID string
	// Time is MSH-7; zero means now.
	Time time.Time
	// Application and Facility name the receiver (MSH-3, MSH-4) when the message did not
	// address one in MSH-5 and MSH-6.
	Application, Facility string
}

// Ack builds the acknowledgement of msg: AA when err is nil, else AE or AR with an ERR segment.
//
// An *Error supplies the acknowledgement code, the HL7 error code and location and the text;
// any other error (the receiver could not store the message, say) is an AE with code 207,
// application internal error. msg may be nil when the message could not be parsed at all:
// the ACK is then an AR with HL7's default delimiters and an empty MSA-2.
//
// The ACK's MSH swaps sender and receiver, echoes the processing and version ids, uses the
// message's own delimiters, and its MSH-9 is ACK with the message's trigger event (ACK^R01^ACK).
// MSA-3 (text) is left empty as v2.6 asks, the text travels in ERR-8 (user message).
func Ack(msg *Message, err error, opt AckOptions) *Message {
	d := defaultDelimiters
	var msh *Segment
	if msg != nil {
		d = msg.Delimiters
		msh = msg.Header()
	} else {
		msh = &Segment{Name: "MSH"}
	}
	now := opt.Time
	if now.IsZero() {
		now = time.Now()
	}
	control := opt.ControlID
	if control == "" {
		control = "ACK" + msh.Get(10, 1)
	}
	app, fac := msh.Field(5), msh.Field(6)
	if app.Empty() {
		app = text(opt.Application)
	}
	if fac.Empty() {
		fac = text(opt.Facility)
	}
	typ := comps("ACK")
	if trig := msh.Get(9, 2); trig != "" {
		typ = comps("ACK", trig, "ACK")
	}
	processing := msh.Field(11)
	if processing.Empty() {
		processing = text("P")
	}
	version := msh.Field(12)
	if version.Empty() {
		version = text("2.6")
	}
	code := "AA"
	var herr *Error
	if err != nil {
		if !errors.As(err, &herr) {
			herr = &Error{Code: ApplicationError, Reason: err.Error()}
		}
		code = herr.AckCode()
		if msg == nil {
			code = "AR"
		}
	}
	ack := &Message{Delimiters: d}
	ack.Segments = append(ack.Segments,
		Segment{Name: "MSH", Fields: []Field{
			nil, nil, // MSH-1 and MSH-2 are written from the delimiters
			app, fac, msh.Field(3), msh.Field(4),
			text(FormatDTM(now)), nil, typ, text(control), processing, version,
		}},
		Segment{Name: "MSA", Fields: trimFields([]Field{text(code), text(msh.Get(10, 1))})},
	)
	if herr != nil {
		ack.Segments = append(ack.Segments, errSegment(herr))
	}
	return ack
}

// errSegment writes an *Error as HL7 v2.5+ ERR: ERR-2 location (ERL), ERR-3 HL7 error code
// (CWE, table 0357), ERR-4 severity, ERR-8 user message.
func errSegment(e *Error) Segment {
	var loc Field
	if e.Segment != "" {
		itoa := func(n int) string {
			if n <= 0 {
				return ""
			}
			return strconv.Itoa(n)
		}
		loc = comps(e.Segment, itoa(max(e.SegmentSeq, 1)), itoa(e.Field), itoa(min(e.Field, 1)), itoa(e.Component))
		if e.Field == 0 {
			loc = comps(e.Segment, itoa(max(e.SegmentSeq, 1)))
		}
	}
	reason := e.Reason
	if e.Err != nil {
		reason += ": " + e.Err.Error()
	}
	return Segment{Name: "ERR", Fields: trimFields([]Field{
		nil, loc, comps(strconv.Itoa(int(e.Code)), e.Code.Text(), "HL70357"), text("E"),
		nil, nil, nil, text(reason),
	})}
}

// trimFields drops trailing empty fields, which HL7 leaves unwritten.
func trimFields(fs []Field) []Field {
	for len(fs) > 0 && fs[len(fs)-1].Empty() {
		fs = fs[:len(fs)-1]
	}
	return fs
}
