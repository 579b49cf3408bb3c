package iomt

import (
	"fmt"
	"strings"
	"time"
	"unicode"
)

// Device is a sensor or monitor that sends readings, bound to at most one patient.
//
// Secrets are never stored: MQTTPasswordHash and TokenHash hold SHA-256 digests of high-entropy
// random secrets that are shown to the caller once, when the device is created or its
// credentials are rotated. A device whose credentials were revoked has neither digest.
type Device struct {
	ID      string `json:"id"`
	Tenant  string `json:"tenant"`
	Kind    string `json:"kind"` // one of DeviceKinds: pulse-oximeter, ecg-patch, ..., other
	Patient string `json:"patient,omitempty"`
	// Identifiers are the device's business identifiers (serial number, UDI, asset tag), as
	// the maker or the hospital assigned them; see CheckIdentifiers.
	Identifiers []Identifier `json:"identifiers,omitempty"`
	// Gateway is the id of the edge gateway (a device of kind "gateway") the device sits
	// behind: that gateway, and no other, may publish on the device's behalf.
	Gateway string `json:"gateway,omitempty"`
	// Disabled devices cannot authenticate (MQTT, HTTP ingest) until enabled again; their
	// credentials and data are kept.
	Disabled         bool      `json:"disabled"`
	MQTTPasswordHash []byte    `json:"-"`
	TokenHash        []byte    `json:"-"`
	CreatedAt        time.Time `json:"createdAt"`
	LastSeen         time.Time `json:"lastSeen,omitzero"`
	Battery          *float64  `json:"battery,omitempty"` // percent, when the device reports it
}

// DeviceKindOther is the kind of a device registered without a more specific one (FHIR's
// Device example names none): iomt assumes nothing about what it measures.
const DeviceKindOther = "other"

// DeviceKinds returns the kinds of device the registry knows, sorted. The REST and FHIR APIs
// accept exactly these.
func DeviceKinds() []string {
	return []string{"activity-tracker", "bedside-monitor", "bp-monitor", "cgm", "ecg-patch", "fall-sensor",
		"gateway", "glucometer", "multi-parameter", DeviceKindOther, "pulse-oximeter", "scale", "thermometer"}
}

// Identifier is a business identifier of a device: Value unique within the namespace System
// (a URI, such as a maker's serial-number namespace or a UDI issuer; may be empty).
type Identifier struct {
	System string `json:"system,omitempty"`
	Value  string `json:"value"`
}

// Bounds of CheckIdentifiers: generous for serial numbers and UDIs (a GS1 UDI is under 100
// characters), small enough that a device record stays small.
const (
	MaxIdentifiers      = 16
	MaxIdentifierLength = 256
)

// CheckIdentifiers refuses identifiers a registry should not keep, with ErrInvalid naming the
// first problem: more than MaxIdentifiers, an empty value, a system or value longer than
// MaxIdentifierLength bytes, invalid UTF-8 or control characters, whitespace in a system (a
// URI), or the same system and value twice.
func CheckIdentifiers(ids []Identifier) error {
	if len(ids) > MaxIdentifiers {
		return fmt.Errorf("%w: %d identifiers, at most %d", ErrInvalid, len(ids), MaxIdentifiers)
	}
	for i, id := range ids {
		if strings.TrimSpace(id.Value) == "" {
			return fmt.Errorf("%w: identifier %d has no value", ErrInvalid, i)
		}
		for _, f := range []struct{ name, v string }{{"system", id.System}, {"value", id.Value}} {
			if err := CheckText(fmt.Sprintf("identifier %d: %s", i, f.name), f.v, MaxIdentifierLength); err != nil {
				return err
			}
		}
		if strings.IndexFunc(id.System, unicode.IsSpace) >= 0 {
			return fmt.Errorf("%w: identifier %d: system %q is not a URI (it contains whitespace)", ErrInvalid, i, id.System)
		}
		for j := range i {
			if ids[j] == id {
				return fmt.Errorf("%w: identifier %d repeats identifier %d (system %q, value %q)", ErrInvalid, i, j, id.System, id.Value)
			}
		}
	}
	return nil
}

// DeviceFilter selects devices; zero fields match everything.
type DeviceFilter struct {
	Tenant  string
	Patient string
	Limit   int
}

// DeviceStatus is what a device reveals about itself as it sends data.
type DeviceStatus struct {
	Device   string
	LastSeen time.Time
	Battery  *float64
}

// Merge folds a later report into s: the later last-seen time wins, and a reported battery
// level replaces the one known (copied, not shared with o). Stores keep status this way
// until they persist it.
func (s *DeviceStatus) Merge(o DeviceStatus) {
	if o.LastSeen.After(s.LastSeen) {
		s.LastSeen = o.LastSeen.UTC()
	}
	if o.Battery != nil {
		b := *o.Battery
		s.Battery = &b
	}
}

// ApplyStatus folds a status report into the device, as DeviceStatus.Merge does.
func (d *Device) ApplyStatus(st DeviceStatus) {
	cur := DeviceStatus{LastSeen: d.LastSeen, Battery: d.Battery}
	cur.Merge(st)
	d.LastSeen, d.Battery = cur.LastSeen, cur.Battery
}
