// Package iomt holds the domain model of the iomt Internet of Medical Things platform and the
// ports (interfaces) that the rest of the project implements: a reading travels from a Device
// as Observations and Waveforms, over a Bus, into a Store, and out through the API.
//
// This package imports no other package of the project.
package iomt

import (
	"errors"
	"time"
)

// DefaultTenant is the tenant used when a deployment serves a single organisation.
const DefaultTenant = "default"

// Sentinel errors that ports return (wrapped) so callers can map them to protocol replies.
var (
	ErrNotFound  = errors.New("not found")
	ErrDuplicate = errors.New("duplicate")
	ErrInvalid   = errors.New("invalid")
)

// TimePrecision is the resolution of every timestamp in iomt: UTC milliseconds end to end.
const TimePrecision = time.Millisecond

// Millis converts t to iomt's canonical form: Unix milliseconds.
func Millis(t time.Time) int64 { return t.UnixMilli() }

// FromMillis is the inverse of Millis, in UTC.
func FromMillis(ms int64) time.Time { return time.UnixMilli(ms).UTC() }
