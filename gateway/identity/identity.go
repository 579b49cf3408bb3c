// Package identity maps the identities devices present to the gateway (a BLE address, the HL7
// equipment and sending-application identifiers of a bedside monitor, the patient identifiers
// in its messages) to platform device ids.
//
// The mapping is a Resolver so that adapters do not care where it comes from: today a YAML file
// (File, reloadable), later the server's device registry.
package identity

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// Binding is what a local identity resolves to.
type Binding struct {
	Device string // platform device id
	Kind   string // the device kind the mapping declares (e.g. bedside-monitor); may be empty
	Via    string // the identity that matched, for logs: `equipment "0123456789ABCDEF"`
}

// HD is an HL7 hierarchic designator (MSH-3, MSH-4): namespace id and universal id.
type HD struct {
	Namespace   string
	UniversalID string
}

// PatientID is one PID-3 identifier and the authority that assigned it (CX-4).
type PatientID struct {
	ID        string
	Authority string
}

// HL7Sender is everything an HL7 v2 message says about who sent it, most specific first.
type HL7Sender struct {
	// Equipment holds equipment identifiers (OBX-18 of the MDS, EUI-64 preferred).
	Equipment   []string
	Application HD // MSH-3
	Facility    HD // MSH-4
	Patients    []PatientID
}

// String describes the sender for refusals and logs.
func (s HL7Sender) String() string {
	var parts []string
	for _, e := range s.Equipment {
		parts = append(parts, fmt.Sprintf("equipment %q", e))
	}
	for _, p := range s.Patients {
		parts = append(parts, fmt.Sprintf("patient %q (authority %q)", p.ID, p.Authority))
	}
	parts = append(parts, fmt.Sprintf("sender %q facility %q", hdString(s.Application), hdString(s.Facility)))
	return strings.Join(parts, ", ")
}

func hdString(h HD) string {
	if h.UniversalID == "" {
		return h.Namespace
	}
	return h.Namespace + "^" + h.UniversalID
}

// Resolver maps local identities to platform devices. Implementations are safe for concurrent
// use. An identity that maps to nothing is an error matching ErrUnknown.
type Resolver interface {
	ResolveBLE(ctx context.Context, addr string) (Binding, error)
	// ResolveHL7 tries the equipment identifiers, then the patient identifiers, then the
	// sending application and facility: a central station sends for many beds under one
	// MSH-3, so the sender is the least specific.
	ResolveHL7(ctx context.Context, s HL7Sender) (Binding, error)
}

// LocalResolver maps the name a local SenML device gives itself (its base name without the
// trailing separator, or the name in the URL it posts to) to a platform device. It is separate
// from Resolver so that resolvers written before local SenML adapters existed still compile.
// An unmapped name is an error matching ErrUnknown; a malformed one matches ErrBadValue.
type LocalResolver interface {
	ResolveLocal(ctx context.Context, name string) (Binding, error)
}

// ErrUnknown is matched by the error of a lookup that found no device.
var ErrUnknown = errors.New("identity: unknown")

// UnknownError names the identity that was not found.
type UnknownError struct {
	Identity string // what was looked up, as people read it
}

func (e *UnknownError) Error() string {
	return "identity: no platform device is mapped to " + e.Identity
}

// Is makes an UnknownError match ErrUnknown.
func (e *UnknownError) Is(target error) bool { return target == ErrUnknown }
