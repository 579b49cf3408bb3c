package embedded

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/iomt/iomt"
)

// deviceRecord is how a device is kept: iomt.Device hides its hashes from JSON.
type deviceRecord struct {
	ID      string `json:"id"`
	Tenant  string `json:"tenant"`
	Kind    string `json:"kind"`
	Patient string `json:"patient,omitempty"`
	// Identifiers: absent in records written before devices had them, which read as none.
	Identifiers []iomt.Identifier `json:"identifiers,omitempty"`
	// Gateway and Disabled: absent in older records, which read as no gateway, enabled.
	Gateway          string    `json:"gateway,omitempty"`
	Disabled         bool      `json:"disabled,omitempty"`
	MQTTPasswordHash []byte    `json:"mqttPasswordHash,omitempty"`
	TokenHash        []byte    `json:"tokenHash,omitempty"`
	CreatedAt        time.Time `json:"createdAt"`
	LastSeen         time.Time `json:"lastSeen,omitzero"`
	Battery          *float64  `json:"battery,omitempty"`
}

func (r deviceRecord) device() iomt.Device { return iomt.Device(r) }

// patientRecord is how a patient is kept, with its own JSON names so that a change to the API's
// field names cannot make stored records unreadable. Family, Given and Gender are absent from
// records written before patients had them, which read as not given.
type patientRecord struct {
	ID        string             `json:"id"`
	Tenant    string             `json:"tenant"`
	Name      string             `json:"name"`
	Family    string             `json:"family,omitempty"`
	Given     []string           `json:"given,omitempty"`
	Gender    string             `json:"gender,omitempty"`
	BirthDate string             `json:"birthDate,omitempty"`
	MRN       string             `json:"mrn,omitempty"`
	SpO2Scale int                `json:"spo2Scale,omitempty"`
	CGMLimits iomt.GlucoseLimits `json:"cgmLimits,omitzero"`
	Location  string             `json:"location,omitempty"`
	CreatedAt time.Time          `json:"createdAt"`
}

func (r patientRecord) patient() iomt.Patient { return iomt.Patient(r) }

func checkID(what, v string, required bool) error {
	if required && v == "" {
		return fmt.Errorf("%w: %s is empty", iomt.ErrInvalid, what)
	}
	if strings.IndexByte(v, 0) >= 0 {
		return fmt.Errorf("%w: %s contains a NUL byte", iomt.ErrInvalid, what)
	}
	return nil
}

func (s *Store) exists(key []byte) (bool, error) {
	_, closer, err := s.db.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	closer.Close()
	return true, nil
}

func (s *Store) getJSON(key []byte, v any) error {
	b, closer, err := s.db.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return iomt.ErrNotFound
	}
	if err != nil {
		return err
	}
	defer closer.Close()
	return json.Unmarshal(b, v)
}

// CreatePatient implements iomt.Registry; it returns when the patient is on stable storage.
func (s *Store) CreatePatient(ctx context.Context, p iomt.Patient) error {
	if err := ctxErr(ctx, "create patient"); err != nil {
		return err
	}
	// CheckPatient first: its reasons are the same on every store.
	if err := iomt.CheckPatient(p); err != nil {
		return fmt.Errorf("embedded: create patient: %w", err)
	}
	for _, c := range []struct{ what, v string }{{"id", p.ID}, {"tenant", p.Tenant}, {"mrn", p.MRN}} {
		if err := checkID(c.what, c.v, c.what == "id"); err != nil {
			return fmt.Errorf("embedded: create patient: %w", err)
		}
	}
	if p.CreatedAt.IsZero() {
		p.CreatedAt = time.Now()
	}
	p.CreatedAt = p.CreatedAt.UTC()
	s.regMu.Lock()
	defer s.regMu.Unlock()
	if !s.enter() {
		return fmt.Errorf("embedded: create patient: %w", errClosed)
	}
	defer s.leave()
	if ok, err := s.exists(strKey('p', p.ID)); err != nil || ok {
		if err == nil {
			err = fmt.Errorf("%w: patient %q exists", iomt.ErrDuplicate, p.ID)
		}
		return fmt.Errorf("embedded: create patient: %w", err)
	}
	if p.MRN != "" {
		if ok, err := s.exists(strKey('M', p.Tenant, p.MRN)); err != nil || ok {
			if err == nil {
				err = fmt.Errorf("%w: tenant %q already has a patient with MRN %q", iomt.ErrDuplicate, p.Tenant, p.MRN)
			}
			return fmt.Errorf("embedded: create patient: %w", err)
		}
	}
	v, err := json.Marshal(patientRecord(p))
	if err != nil {
		return fmt.Errorf("embedded: create patient: %w", err)
	}
	b := s.db.NewBatch()
	defer b.Close()
	_ = b.Set(strKey('p', p.ID), v, nil)
	_ = b.Set(strKey('P', p.Tenant, p.ID), nil, nil)
	if p.MRN != "" {
		_ = b.Set(strKey('M', p.Tenant, p.MRN), []byte(p.ID), nil)
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return fmt.Errorf("embedded: create patient: %w", err)
	}
	return nil
}

// Patient implements iomt.Registry.
func (s *Store) Patient(ctx context.Context, id string) (iomt.Patient, error) {
	if err := ctxErr(ctx, "patient"); err != nil {
		return iomt.Patient{}, err
	}
	if !s.enter() {
		return iomt.Patient{}, fmt.Errorf("embedded: patient: %w", errClosed)
	}
	defer s.leave()
	var p patientRecord
	if err := s.getJSON(strKey('p', id), &p); err != nil {
		return iomt.Patient{}, fmt.Errorf("embedded: patient %q: %w", id, err)
	}
	return p.patient(), nil
}

// Patients implements iomt.Registry; patients come ordered by ID.
func (s *Store) Patients(ctx context.Context, f iomt.PatientFilter) ([]iomt.Patient, error) {
	if err := ctxErr(ctx, "patients"); err != nil {
		return nil, err
	}
	if !s.enter() {
		return nil, fmt.Errorf("embedded: patients: %w", errClosed)
	}
	defer s.leave()
	out := []iomt.Patient{}
	if f.Tenant != "" && f.MRN != "" {
		id, closer, err := s.db.Get(strKey('M', f.Tenant, f.MRN))
		if errors.Is(err, pebble.ErrNotFound) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("embedded: patients: %w", err)
		}
		key := strKey('p', string(id))
		closer.Close()
		var p patientRecord
		if err := s.getJSON(key, &p); err != nil {
			return nil, fmt.Errorf("embedded: patients: %w", err)
		}
		return append(out, p.patient()), nil
	}
	err := s.scanRecords(ctx, 'P', 'p', f.Tenant, func(v []byte) (bool, error) {
		var p patientRecord
		if err := json.Unmarshal(v, &p); err != nil {
			return false, err
		}
		if (f.Tenant == "" || p.Tenant == f.Tenant) && (f.MRN == "" || p.MRN == f.MRN) {
			out = append(out, p.patient())
		}
		return f.Limit > 0 && len(out) >= f.Limit, nil
	})
	if err != nil {
		return nil, fmt.Errorf("embedded: patients: %w", err)
	}
	return out, nil
}

// scanRecords calls fn with each record (prefix rec) in ID order; with scope set it walks the
// index with prefix idx (idx scope 0 id) instead of every record.
func (s *Store) scanRecords(ctx context.Context, idx, rec byte, scope string, fn func(v []byte) (stop bool, err error)) error {
	var lo []byte
	if scope != "" {
		lo = append(strKey(idx, scope), 0)
	} else {
		lo = []byte{rec}
	}
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: prefixEnd(lo)})
	if err != nil {
		return err
	}
	defer it.Close()
	for it.First(); it.Valid(); it.Next() {
		if err := ctx.Err(); err != nil {
			return err
		}
		var v []byte
		if scope != "" {
			id := string(it.Key()[len(lo):])
			b, closer, err := s.db.Get(strKey(rec, id))
			if errors.Is(err, pebble.ErrNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			v = append([]byte(nil), b...)
			closer.Close()
		} else {
			if v, err = it.ValueAndErr(); err != nil {
				return err
			}
		}
		stop, err := fn(v)
		if err != nil || stop {
			return err
		}
	}
	return it.Error()
}

// CreateDevice implements iomt.Registry; it returns when the device is on stable storage.
func (s *Store) CreateDevice(ctx context.Context, d iomt.Device) error {
	if err := ctxErr(ctx, "create device"); err != nil {
		return err
	}
	for _, c := range []struct{ what, v string }{{"id", d.ID}, {"tenant", d.Tenant}, {"patient", d.Patient}, {"gateway", d.Gateway}} {
		if err := checkID(c.what, c.v, c.what == "id"); err != nil {
			return fmt.Errorf("embedded: create device: %w", err)
		}
	}
	if err := iomt.CheckIdentifiers(d.Identifiers); err != nil {
		return fmt.Errorf("embedded: create device %q: %w", d.ID, err)
	}
	if d.CreatedAt.IsZero() {
		d.CreatedAt = time.Now()
	}
	d.CreatedAt = d.CreatedAt.UTC()
	s.regMu.Lock()
	defer s.regMu.Unlock()
	if !s.enter() {
		return fmt.Errorf("embedded: create device: %w", errClosed)
	}
	defer s.leave()
	if ok, err := s.exists(strKey('d', d.ID)); err != nil || ok {
		if err == nil {
			err = fmt.Errorf("%w: device %q exists", iomt.ErrDuplicate, d.ID)
		}
		return fmt.Errorf("embedded: create device: %w", err)
	}
	v, err := json.Marshal(deviceRecord(d))
	if err != nil {
		return fmt.Errorf("embedded: create device: %w", err)
	}
	b := s.db.NewBatch()
	defer b.Close()
	_ = b.Set(strKey('d', d.ID), v, nil)
	_ = b.Set(strKey('D', d.Tenant, d.ID), nil, nil)
	if d.Patient != "" {
		_ = b.Set(strKey('B', d.Patient, d.ID), nil, nil)
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return fmt.Errorf("embedded: create device: %w", err)
	}
	return nil
}

// withStatus overlays status not yet persisted. s.statMu is held.
func (s *Store) withStatus(d iomt.Device) iomt.Device {
	if st, ok := s.status[d.ID]; ok {
		d.ApplyStatus(st)
	}
	return d
}

// Device implements iomt.Registry.
func (s *Store) Device(ctx context.Context, id string) (iomt.Device, error) {
	if err := ctxErr(ctx, "device"); err != nil {
		return iomt.Device{}, err
	}
	if !s.enter() {
		return iomt.Device{}, fmt.Errorf("embedded: device: %w", errClosed)
	}
	defer s.leave()
	var r deviceRecord
	s.statMu.Lock()
	defer s.statMu.Unlock()
	if err := s.getJSON(strKey('d', id), &r); err != nil {
		return iomt.Device{}, fmt.Errorf("embedded: device %q: %w", id, err)
	}
	return s.withStatus(r.device()), nil
}

// Devices implements iomt.Registry; devices come ordered by ID.
func (s *Store) Devices(ctx context.Context, f iomt.DeviceFilter) ([]iomt.Device, error) {
	if err := ctxErr(ctx, "devices"); err != nil {
		return nil, err
	}
	if !s.enter() {
		return nil, fmt.Errorf("embedded: devices: %w", errClosed)
	}
	defer s.leave()
	s.statMu.Lock()
	defer s.statMu.Unlock()
	out := []iomt.Device{}
	idx, scope := byte('D'), f.Tenant
	if f.Patient != "" {
		idx, scope = 'B', f.Patient
	}
	err := s.scanRecords(ctx, idx, 'd', scope, func(v []byte) (bool, error) {
		var r deviceRecord
		if err := json.Unmarshal(v, &r); err != nil {
			return false, err
		}
		if (f.Tenant == "" || r.Tenant == f.Tenant) && (f.Patient == "" || r.Patient == f.Patient) {
			out = append(out, s.withStatus(r.device()))
		}
		return f.Limit > 0 && len(out) >= f.Limit, nil
	})
	if err != nil {
		return nil, fmt.Errorf("embedded: devices: %w", err)
	}
	return out, nil
}

// UpdateDeviceStatus implements iomt.Registry. Status is kept in memory and written to Pebble
// at the next checkpoint; a LastSeen older than the one known is ignored. Unknown devices are
// reported with iomt.ErrNotFound after the known ones are updated.
func (s *Store) UpdateDeviceStatus(ctx context.Context, sts []iomt.DeviceStatus) error {
	if err := ctxErr(ctx, "update device status"); err != nil {
		return err
	}
	if !s.enter() {
		return fmt.Errorf("embedded: update device status: %w", errClosed)
	}
	defer s.leave()
	s.statMu.Lock()
	defer s.statMu.Unlock()
	var unknown []string
	for _, st := range sts {
		cur, ok := s.status[st.Device]
		if !ok {
			found, err := s.exists(strKey('d', st.Device))
			if err != nil {
				return fmt.Errorf("embedded: update device status: %w", err)
			}
			if !found {
				unknown = append(unknown, st.Device)
				continue
			}
		}
		cur.Merge(st)
		cur.Device = st.Device
		s.status[st.Device] = cur
	}
	if len(unknown) > 0 {
		return fmt.Errorf("embedded: update device status: %w: devices %q", iomt.ErrNotFound, unknown)
	}
	return nil
}

// persistStatus writes the in-memory device status into the device records.
func (s *Store) persistStatus() error {
	s.statMu.Lock()
	defer s.statMu.Unlock()
	if len(s.status) == 0 {
		return nil
	}
	b := s.db.NewBatch()
	defer b.Close()
	for id, st := range s.status {
		var r deviceRecord
		if err := s.getJSON(strKey('d', id), &r); err != nil {
			if errors.Is(err, iomt.ErrNotFound) {
				continue
			}
			return err
		}
		d := r.device()
		d.ApplyStatus(st)
		v, err := json.Marshal(deviceRecord(d))
		if err != nil {
			return err
		}
		_ = b.Set(strKey('d', id), v, nil)
	}
	if err := b.Commit(pebble.NoSync); err != nil {
		return err
	}
	clear(s.status)
	return nil
}

// UpdatePatient implements iomt.Registry.
func (s *Store) UpdatePatient(ctx context.Context, p iomt.Patient) error {
	if err := ctxErr(ctx, "update patient"); err != nil {
		return err
	}
	// CheckPatient first: its reasons are the same on every store.
	if err := iomt.CheckPatient(p); err != nil {
		return fmt.Errorf("embedded: update patient: %w", err)
	}
	for _, c := range []struct{ what, v string }{{"id", p.ID}, {"mrn", p.MRN}} {
		if err := checkID(c.what, c.v, c.what == "id"); err != nil {
			return fmt.Errorf("embedded: update patient: %w", err)
		}
	}
	s.regMu.Lock()
	defer s.regMu.Unlock()
	if !s.enter() {
		return fmt.Errorf("embedded: update patient: %w", errClosed)
	}
	defer s.leave()
	var old patientRecord
	if err := s.getJSON(strKey('p', p.ID), &old); err != nil {
		return fmt.Errorf("embedded: update patient %q: %w", p.ID, err)
	}
	if p.MRN != "" && p.MRN != old.MRN {
		if ok, err := s.exists(strKey('M', old.Tenant, p.MRN)); err != nil || ok {
			if err == nil {
				err = fmt.Errorf("%w: tenant %q already has a patient with MRN %q", iomt.ErrDuplicate, old.Tenant, p.MRN)
			}
			return fmt.Errorf("embedded: update patient: %w", err)
		}
	}
	nw := old
	nw.Name, nw.BirthDate, nw.MRN, nw.SpO2Scale, nw.CGMLimits = p.Name, p.BirthDate, p.MRN, p.SpO2Scale, p.CGMLimits
	nw.Family, nw.Given, nw.Gender, nw.Location = p.Family, p.Given, p.Gender, p.Location
	v, err := json.Marshal(nw)
	if err != nil {
		return fmt.Errorf("embedded: update patient: %w", err)
	}
	b := s.db.NewBatch()
	defer b.Close()
	_ = b.Set(strKey('p', p.ID), v, nil)
	if old.MRN != nw.MRN {
		if old.MRN != "" {
			_ = b.Delete(strKey('M', old.Tenant, old.MRN), nil)
		}
		if nw.MRN != "" {
			_ = b.Set(strKey('M', old.Tenant, nw.MRN), []byte(p.ID), nil)
		}
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return fmt.Errorf("embedded: update patient: %w", err)
	}
	return nil
}

// UpdateDevice implements iomt.Registry.
func (s *Store) UpdateDevice(ctx context.Context, d iomt.Device) error {
	if err := ctxErr(ctx, "update device"); err != nil {
		return err
	}
	for _, c := range []struct{ what, v string }{{"id", d.ID}, {"patient", d.Patient}} {
		if err := checkID(c.what, c.v, c.what == "id"); err != nil {
			return fmt.Errorf("embedded: update device: %w", err)
		}
	}
	if err := iomt.CheckIdentifiers(d.Identifiers); err != nil {
		return fmt.Errorf("embedded: update device %q: %w", d.ID, err)
	}
	s.regMu.Lock()
	defer s.regMu.Unlock()
	if !s.enter() {
		return fmt.Errorf("embedded: update device: %w", errClosed)
	}
	defer s.leave()
	// persistStatus rewrites device records under statMu; hold it so neither loses the other.
	s.statMu.Lock()
	defer s.statMu.Unlock()
	var old deviceRecord
	if err := s.getJSON(strKey('d', d.ID), &old); err != nil {
		return fmt.Errorf("embedded: update device %q: %w", d.ID, err)
	}
	nw := old
	nw.Kind, nw.Patient, nw.Identifiers = d.Kind, d.Patient, d.Identifiers
	v, err := json.Marshal(nw)
	if err != nil {
		return fmt.Errorf("embedded: update device: %w", err)
	}
	b := s.db.NewBatch()
	defer b.Close()
	_ = b.Set(strKey('d', d.ID), v, nil)
	if old.Patient != nw.Patient {
		if old.Patient != "" {
			_ = b.Delete(strKey('B', old.Patient, d.ID), nil)
		}
		if nw.Patient != "" {
			_ = b.Set(strKey('B', nw.Patient, d.ID), nil, nil)
		}
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return fmt.Errorf("embedded: update device: %w", err)
	}
	return nil
}

// changeDevice applies change to the stored record of device id, under the registry lock and
// statMu (persistStatus rewrites device records under it), and commits it durably.
func (s *Store) changeDevice(ctx context.Context, what, id string, change func(r *deviceRecord)) error {
	if err := ctxErr(ctx, what); err != nil {
		return err
	}
	if err := checkID("id", id, true); err != nil {
		return fmt.Errorf("embedded: %s: %w", what, err)
	}
	s.regMu.Lock()
	defer s.regMu.Unlock()
	if !s.enter() {
		return fmt.Errorf("embedded: %s: %w", what, errClosed)
	}
	defer s.leave()
	s.statMu.Lock()
	defer s.statMu.Unlock()
	var r deviceRecord
	if err := s.getJSON(strKey('d', id), &r); err != nil {
		return fmt.Errorf("embedded: %s %q: %w", what, id, err)
	}
	change(&r)
	v, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("embedded: %s: %w", what, err)
	}
	if err := s.db.Set(strKey('d', id), v, pebble.Sync); err != nil {
		return fmt.Errorf("embedded: %s: %w", what, err)
	}
	return nil
}

// SetDeviceCredentials implements iomt.Registry; it returns when the change is on stable
// storage.
func (s *Store) SetDeviceCredentials(ctx context.Context, id string, mqttPasswordHash, tokenHash []byte) error {
	return s.changeDevice(ctx, "set device credentials", id, func(r *deviceRecord) {
		r.MQTTPasswordHash, r.TokenHash = mqttPasswordHash, tokenHash
	})
}

// SetDeviceDisabled implements iomt.Registry.
func (s *Store) SetDeviceDisabled(ctx context.Context, id string, disabled bool) error {
	return s.changeDevice(ctx, "set device disabled", id, func(r *deviceRecord) { r.Disabled = disabled })
}

// SetDeviceGateway implements iomt.Registry.
func (s *Store) SetDeviceGateway(ctx context.Context, id, gateway string) error {
	if err := checkID("gateway", gateway, false); err != nil {
		return fmt.Errorf("embedded: set device gateway: %w", err)
	}
	return s.changeDevice(ctx, "set device gateway", id, func(r *deviceRecord) { r.Gateway = gateway })
}

// DeleteDevice implements iomt.Registry: the record and its index entries go, with any status
// not yet persisted; readings stay.
func (s *Store) DeleteDevice(ctx context.Context, id string) error {
	if err := ctxErr(ctx, "delete device"); err != nil {
		return err
	}
	if err := checkID("id", id, true); err != nil {
		return fmt.Errorf("embedded: delete device: %w", err)
	}
	s.regMu.Lock()
	defer s.regMu.Unlock()
	if !s.enter() {
		return fmt.Errorf("embedded: delete device: %w", errClosed)
	}
	defer s.leave()
	s.statMu.Lock()
	defer s.statMu.Unlock()
	var r deviceRecord
	if err := s.getJSON(strKey('d', id), &r); err != nil {
		return fmt.Errorf("embedded: delete device %q: %w", id, err)
	}
	b := s.db.NewBatch()
	defer b.Close()
	_ = b.Delete(strKey('d', id), nil)
	_ = b.Delete(strKey('D', r.Tenant, id), nil)
	if r.Patient != "" {
		_ = b.Delete(strKey('B', r.Patient, id), nil)
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return fmt.Errorf("embedded: delete device: %w", err)
	}
	delete(s.status, id)
	return nil
}
