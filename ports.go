package iomt

import (
	"context"
	"hash/fnv"
)

// SeriesStore keeps observations and waveforms.
type SeriesStore interface {
	// Append stores the batches durably: when it returns nil, the data survives a crash of the
	// process. Readings already stored (same Device, Code, Time) are skipped, not duplicated,
	// and reported in the returned count of duplicates per batch (same order as batches).
	Append(ctx context.Context, batches []Batch) (duplicates []int, err error)
	// Observations returns readings in time order (Step == 0).
	Observations(ctx context.Context, q ObservationQuery) ([]Observation, error)
	// Aggregates returns per-step summaries (q.Step > 0), empty buckets omitted.
	Aggregates(ctx context.Context, q ObservationQuery) ([]Aggregate, error)
	// Latest returns the most recent reading of every code the patient has.
	Latest(ctx context.Context, patient string) ([]Observation, error)
	// Waveforms returns segments overlapping the query window in time order.
	Waveforms(ctx context.Context, q WaveformQuery) ([]Waveform, error)
}

// StagedAppender is a SeriesStore that knows which readings are new before they are durable.
// AppendStaged works as Append and also calls staged, once and before waiting for the disk,
// with the duplicates Append will return (not called if the batches are refused). Ingest
// hands readings to live consumers (alarms, streams) from there while the fsync runs; the
// device's acknowledgement still waits for Append to return.
type StagedAppender interface {
	AppendStaged(ctx context.Context, batches []Batch, staged func(duplicates []int)) (duplicates []int, err error)
}

// Registry keeps patients and devices.
type Registry interface {
	CreatePatient(ctx context.Context, p Patient) error // ErrDuplicate if ID or (Tenant, MRN) exists; ErrInvalid for a bad SpO2Scale or Gender
	Patient(ctx context.Context, id string) (Patient, error)
	Patients(ctx context.Context, f PatientFilter) ([]Patient, error)
	// UpdatePatient replaces the name (text, family, given), gender, birth date, MRN, SpO2
	// scale, CGM limits and location of an existing patient (ErrNotFound if there is none;
	// ErrDuplicate if the MRN belongs to another patient of the tenant; ErrInvalid for a
	// patient CheckPatient refuses). ID, Tenant and CreatedAt are kept.
	UpdatePatient(ctx context.Context, p Patient) error
	CreateDevice(ctx context.Context, d Device) error
	Device(ctx context.Context, id string) (Device, error)
	Devices(ctx context.Context, f DeviceFilter) ([]Device, error)
	// UpdateDevice replaces the kind, patient binding and identifiers of an existing device
	// (ErrNotFound if there is none). Credentials, Tenant, CreatedAt and status are kept.
	UpdateDevice(ctx context.Context, d Device) error
	// SetDeviceCredentials replaces the digests of a device's MQTT password and HTTP token
	// (nil for none: the device cannot authenticate with a secret). ErrNotFound if there is no
	// such device.
	SetDeviceCredentials(ctx context.Context, id string, mqttPasswordHash, tokenHash []byte) error
	// SetDeviceDisabled disables or enables a device (ErrNotFound if there is none).
	SetDeviceDisabled(ctx context.Context, id string, disabled bool) error
	// SetDeviceGateway records the gateway a device sits behind ("" for none; ErrNotFound if
	// there is no such device). The store does not check that the gateway exists.
	SetDeviceGateway(ctx context.Context, id, gateway string) error
	// DeleteDevice forgets a device and its credentials (ErrNotFound if there is none); the
	// readings it sent stay, attributed to its id.
	DeleteDevice(ctx context.Context, id string) error
	// UpdateDeviceStatus records last-seen times and battery levels; it need not be durable
	// before it returns.
	UpdateDeviceStatus(ctx context.Context, s []DeviceStatus) error
}

// Store is everything a deployment persists.
type Store interface {
	SeriesStore
	Registry
	AlarmStore
	IdentityStore
	AuditStore
	Close() error
}

// Bus carries validated batches from ingest to their consumers, partitioned by patient so
// that one consumer sees one patient's data in order.
type Bus interface {
	Publish(ctx context.Context, b Batch) error
	// Subscribe delivers every batch published after it returns to h until ctx ends. A group
	// name shares the load between subscribers with the same name (by partition, so one
	// patient's batches reach one member in order, at least once: handlers are idempotent);
	// different groups each see every batch. The empty group is a broadcast: this subscriber
	// alone sees every batch, with no durability (live dashboards on every node).
	Subscribe(ctx context.Context, group string, h func(context.Context, Batch) error) error
	Close() error
}

// Partition is the bus partition of a patient: fnv32a(patient) % partitions. Every bus uses
// it, so a patient lands on the same partition whichever bus carries it.
func Partition(patient string, partitions int) int {
	h := fnv.New32a()
	_, _ = h.Write([]byte(patient))
	return int(h.Sum32() % uint32(partitions))
}
