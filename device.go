package iomt

import "time"

// Device is a sensor or monitor that sends readings, bound to at most one patient.
//
// Secrets are never stored: MQTTPasswordHash and TokenHash hold SHA-256 digests of high-entropy
// random secrets that are shown to the caller once, when the device is created.
type Device struct {
	ID               string    `json:"id"`
	Tenant           string    `json:"tenant"`
	Kind             string    `json:"kind"` // e.g. pulse-oximeter, ecg-patch, bp-monitor, cgm
	Patient          string    `json:"patient,omitempty"`
	MQTTPasswordHash []byte    `json:"-"`
	TokenHash        []byte    `json:"-"`
	CreatedAt        time.Time `json:"createdAt"`
	LastSeen         time.Time `json:"lastSeen,omitzero"`
	Battery          *float64  `json:"battery,omitempty"` // percent, when the device reports it
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
