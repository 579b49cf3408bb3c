package hl7v2

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/iomt/iomt"
)

// ErrorCode is an HL7 error condition code (HL7 table 0357), carried in ERR-3.
type ErrorCode int

// The codes of table 0357 a receiver of device observations needs.
const (
	SegmentSequenceError   ErrorCode = 100
	RequiredFieldMissing   ErrorCode = 101
	DataTypeError          ErrorCode = 102
	TableValueNotFound     ErrorCode = 103
	UnsupportedMessageType ErrorCode = 200
	UnsupportedEventCode   ErrorCode = 201
	UnsupportedProcessing  ErrorCode = 202
	UnsupportedVersion     ErrorCode = 203
	ApplicationError       ErrorCode = 207
)

// Text is the description table 0357 gives the code, used as ERR-3's text component.
func (c ErrorCode) Text() string {
	switch c {
	case SegmentSequenceError:
		return "Segment sequence error"
	case RequiredFieldMissing:
		return "Required field missing"
	case DataTypeError:
		return "Data type error"
	case TableValueNotFound:
		return "Table value not found"
	case UnsupportedMessageType:
		return "Unsupported message type"
	case UnsupportedEventCode:
		return "Unsupported event code"
	case UnsupportedProcessing:
		return "Unsupported processing id"
	case UnsupportedVersion:
		return "Unsupported version id"
	case ApplicationError:
		return "Application internal error"
	}
	return "Error"
}

// Error is a refusal of a message. The location fields follow HL7's ERL data type (ERR-2):
// Segment is the segment id, SegmentSeq its occurrence in the message (1-based, counting only
// segments with that id), Field, Component the 1-based positions; zero means "not specific".
type Error struct {
	Code       ErrorCode
	Segment    string
	SegmentSeq int
	Field      int
	Component  int
	Line       int // 1-based segment number in the message, for people reading a file
	Reason     string
	Err        error // the underlying cause, if any
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("hl7v2: ")
	if e.Segment != "" {
		b.WriteString(e.location())
		if e.Line > 0 {
			fmt.Fprintf(&b, " (segment %d)", e.Line)
		}
		b.WriteString(": ")
	} else if e.Line > 0 {
		fmt.Fprintf(&b, "segment %d: ", e.Line)
	}
	b.WriteString(e.Reason)
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

// location writes the position as HL7 people write it: OBX[8]-2.1.
func (e *Error) location() string {
	s := e.Segment
	if e.SegmentSeq > 0 {
		s += "[" + strconv.Itoa(e.SegmentSeq) + "]"
	}
	if e.Field > 0 {
		s += "-" + strconv.Itoa(e.Field)
		if e.Component > 0 {
			s += "." + strconv.Itoa(e.Component)
		}
	}
	return s
}

// Unwrap gives the cause, so errors.Is reaches a DTM or number parse error.
func (e *Error) Unwrap() error { return e.Err }

// Is reports every refusal as iomt.ErrInvalid, so callers can map it to a protocol reply
// without knowing this package.
func (e *Error) Is(target error) bool { return target == iomt.ErrInvalid }

// AckCode is the MSA-1 the refusal calls for: AR (rejected) when the message header names a
// type, event, processing id or version this receiver does not take, AE (error) otherwise.
func (e *Error) AckCode() string {
	switch e.Code {
	case UnsupportedMessageType, UnsupportedEventCode, UnsupportedProcessing, UnsupportedVersion:
		return "AR"
	}
	return "AE"
}
