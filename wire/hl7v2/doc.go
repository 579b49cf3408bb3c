// Package hl7v2 reads HL7 version 2 messages and writes the acknowledgements they ask for.
//
// It covers what bedside monitors and personal health gateways send: ORU^R01 device
// observations as IHE PCD-01 and the Continua WAN interface profile describe them, with
// IEEE 11073-10101 (MDC) codes in OBX-3, the MDS/VMD/CHAN/METRIC containment in OBX-4 and MDC
// or UCUM units in OBX-6. MLLP framing lives in the mllp subpackage.
//
// Three layers, each usable alone:
//
//   - Parse splits a message into segments, fields, repetitions, components and subcomponents,
//     with the delimiters each message declares in MSH-1 and MSH-2 and its escape sequences
//     decoded. Segments may end in CR (the wire form), LF or CRLF (files).
//   - DecodeORU reads an ORU^R01 into a Report: patient, order groups, observations with their
//     times in UTC (precision kept), equipment, notes, and each numeric observation mapped to
//     the codes catalog or marked unmapped with the reason.
//   - Ack builds the ACK for a message: AA, or AE/AR with an ERR segment carrying the HL7 error
//     code (table 0357), the error location and a text, as HL7 v2.6 asks.
//
// Every refusal is an *Error that names the HL7 error code and the segment, field and
// component at fault, so the ACK can say exactly what was wrong; it matches iomt.ErrInvalid.
package hl7v2
