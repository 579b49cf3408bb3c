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
