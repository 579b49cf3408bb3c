package iomt

import "context"

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

// Registry keeps patients and devices.
type Registry interface {
	CreatePatient(ctx context.Context, p Patient) error // ErrDuplicate if ID or (Tenant, MRN) exists
	Patient(ctx context.Context, id string) (Patient, error)
	Patients(ctx context.Context, f PatientFilter) ([]Patient, error)
	CreateDevice(ctx context.Context, d Device) error
	Device(ctx context.Context, id string) (Device, error)
	Devices(ctx context.Context, f DeviceFilter) ([]Device, error)
	// UpdateDeviceStatus records last-seen times and battery levels; it need not be durable
	// before it returns.
	UpdateDeviceStatus(ctx context.Context, s []DeviceStatus) error
}

// Store is everything a deployment persists.
type Store interface {
	SeriesStore
	Registry
	Close() error
}

// Bus carries validated batches from ingest to their consumers, partitioned by patient so
// that one consumer sees one patient's data in order.
type Bus interface {
	Publish(ctx context.Context, b Batch) error
	// Subscribe delivers every batch published after it returns to h until ctx ends. A group
	// name shares the load between subscribers with the same name; different groups each see
	// every batch.
	Subscribe(ctx context.Context, group string, h func(context.Context, Batch) error) error
	Close() error
}
