package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/iomt/iomt"
)

// duplicate turns a unique violation into iomt.ErrDuplicate.
func duplicate(err error, what string) error {
	if sqlState(err) == stateUniqueViolation {
		return fmt.Errorf("%w: %s", iomt.ErrDuplicate, what)
	}
	return err
}

const patientCols = `id, tenant, name, family, given, gender, birth_date, coalesce(mrn, ''), spo2_scale,
	cgm_urgent_low, cgm_low, cgm_high, cgm_urgent_high, location, created_at`

func scanPatient(row pgx.Row, p *iomt.Patient) error {
	if err := row.Scan(&p.ID, &p.Tenant, &p.Name, &p.Family, &p.Given, &p.Gender, &p.BirthDate, &p.MRN, &p.SpO2Scale,
		&p.CGMLimits.UrgentLow, &p.CGMLimits.Low, &p.CGMLimits.High, &p.CGMLimits.UrgentHigh, &p.Location, &p.CreatedAt); err != nil {
		return err
	}
	if len(p.Given) == 0 {
		p.Given = nil // as the embedded store reads a name without given names
	}
	p.CreatedAt = p.CreatedAt.UTC()
	return nil
}

// checkPatient refuses what the patients table would refuse less clearly (or, for NUL bytes,
// with a protocol error): iomt.CheckPatient refuses it all — invalid UTF-8 and control
// characters in every field — with the same reasons on every store.
func checkPatient(p iomt.Patient) error { return iomt.CheckPatient(p) }

// given is the given names as the NOT NULL text[] column takes them: pgx sends a nil slice as
// NULL.
func given(p iomt.Patient) []string {
	if p.Given == nil {
		return []string{}
	}
	return p.Given
}

// CreatePatient implements iomt.Registry.
func (s *Store) CreatePatient(ctx context.Context, p iomt.Patient) error {
	if err := ctxErr(ctx, "create patient"); err != nil {
		return err
	}
	if p.ID == "" {
		return fmt.Errorf("postgres: create patient: %w: id is empty", iomt.ErrInvalid)
	}
	if err := checkPatient(p); err != nil {
		return fmt.Errorf("postgres: create patient: %w", err)
	}
	if p.CreatedAt.IsZero() {
		p.CreatedAt = time.Now()
	}
	if !s.enter() {
		return fmt.Errorf("postgres: create patient: %w", errClosed)
	}
	defer s.leave()
	l := p.CGMLimits
	_, err := s.pool.Exec(ctx, `INSERT INTO patients (id, tenant, name, birth_date, mrn, spo2_scale, created_at, family, given, gender,
		cgm_urgent_low, cgm_low, cgm_high, cgm_urgent_high, location)
		VALUES ($1, $2, $3, $4, NULLIF($5, ''), $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)`,
		p.ID, p.Tenant, p.Name, p.BirthDate, p.MRN, p.SpO2Scale, p.CreatedAt, p.Family, given(p), p.Gender,
		l.UrgentLow, l.Low, l.High, l.UrgentHigh, p.Location)
	if err != nil {
		what := fmt.Sprintf("patient %q exists", p.ID)
		if constraint(err) == "patients_tenant_mrn_key" {
			what = fmt.Sprintf("tenant %q already has a patient with MRN %q", p.Tenant, p.MRN)
		}
		return wrap(ctx, "create patient", duplicate(err, what))
	}
	return nil
}

// Patient implements iomt.Registry.
func (s *Store) Patient(ctx context.Context, id string) (iomt.Patient, error) {
	if err := ctxErr(ctx, "patient"); err != nil {
		return iomt.Patient{}, err
	}
	if err := checkText("id", id); err != nil {
		return iomt.Patient{}, fmt.Errorf("postgres: patient: %w", err)
	}
	if !s.enter() {
		return iomt.Patient{}, fmt.Errorf("postgres: patient: %w", errClosed)
	}
	defer s.leave()
	var p iomt.Patient
	err := scanPatient(s.pool.QueryRow(ctx, `SELECT `+patientCols+` FROM patients WHERE id = $1`, id), &p)
	if errors.Is(err, pgx.ErrNoRows) {
		return iomt.Patient{}, fmt.Errorf("postgres: patient %q: %w", id, iomt.ErrNotFound)
	}
	if err != nil {
		return iomt.Patient{}, wrap(ctx, fmt.Sprintf("patient %q", id), err)
	}
	return p, nil
}

// Patients implements iomt.Registry; patients come ordered by ID.
func (s *Store) Patients(ctx context.Context, f iomt.PatientFilter) ([]iomt.Patient, error) {
	if err := ctxErr(ctx, "patients"); err != nil {
		return nil, err
	}
	if err := checkFields("tenant", f.Tenant, "mrn", f.MRN); err != nil {
		return nil, fmt.Errorf("postgres: patients: %w", err)
	}
	if !s.enter() {
		return nil, fmt.Errorf("postgres: patients: %w", errClosed)
	}
	defer s.leave()
	rows, _ := s.pool.Query(ctx, `SELECT `+patientCols+` FROM patients
		WHERE ($1 = '' OR tenant = $1) AND ($2 = '' OR mrn = $2)
		ORDER BY id LIMIT $3`, f.Tenant, f.MRN, limit(f.Limit))
	out := []iomt.Patient{}
	for rows.Next() {
		var p iomt.Patient
		if err := scanPatient(rows, &p); err != nil {
			rows.Close()
			return nil, wrap(ctx, "patients", err)
		}
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, wrap(ctx, "patients", err)
	}
	return out, nil
}

// UpdatePatient implements iomt.Registry.
func (s *Store) UpdatePatient(ctx context.Context, p iomt.Patient) error {
	if err := ctxErr(ctx, "update patient"); err != nil {
		return err
	}
	if p.ID == "" {
		return fmt.Errorf("postgres: update patient: %w: id is empty", iomt.ErrInvalid)
	}
	if err := checkPatient(p); err != nil {
		return fmt.Errorf("postgres: update patient: %w", err)
	}
	if !s.enter() {
		return fmt.Errorf("postgres: update patient: %w", errClosed)
	}
	defer s.leave()
	l := p.CGMLimits
	tag, err := s.pool.Exec(ctx, `UPDATE patients SET name = $2, birth_date = $3, mrn = NULLIF($4, ''), spo2_scale = $5,
		family = $6, given = $7, gender = $8, cgm_urgent_low = $9, cgm_low = $10, cgm_high = $11, cgm_urgent_high = $12,
		location = $13
		WHERE id = $1`,
		p.ID, p.Name, p.BirthDate, p.MRN, p.SpO2Scale, p.Family, given(p), p.Gender, l.UrgentLow, l.Low, l.High, l.UrgentHigh, p.Location)
	if err != nil {
		return wrap(ctx, "update patient", duplicate(err, fmt.Sprintf("the tenant already has a patient with MRN %q", p.MRN)))
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("postgres: update patient %q: %w", p.ID, iomt.ErrNotFound)
	}
	return nil
}

const deviceCols = `id, tenant, kind, coalesce(patient, ''), identifiers, coalesce(gateway, ''), disabled, mqtt_password_hash, token_hash, created_at, last_seen, battery`

func scanDevice(row pgx.Row, d *iomt.Device) error {
	var seen *time.Time
	var ids []byte
	if err := row.Scan(&d.ID, &d.Tenant, &d.Kind, &d.Patient, &ids, &d.Gateway, &d.Disabled, &d.MQTTPasswordHash, &d.TokenHash, &d.CreatedAt, &seen, &d.Battery); err != nil {
		return err
	}
	d.Identifiers = nil
	if err := json.Unmarshal(ids, &d.Identifiers); err != nil {
		return fmt.Errorf("identifiers of device %q: %w", d.ID, err)
	}
	if len(d.Identifiers) == 0 {
		d.Identifiers = nil // none reads the same as from the embedded store
	}
	d.CreatedAt = d.CreatedAt.UTC()
	if seen != nil {
		d.LastSeen = seen.UTC()
	}
	return nil
}

// CreateDevice implements iomt.Registry.
func (s *Store) CreateDevice(ctx context.Context, d iomt.Device) error {
	if err := ctxErr(ctx, "create device"); err != nil {
		return err
	}
	if d.ID == "" {
		return fmt.Errorf("postgres: create device: %w: id is empty", iomt.ErrInvalid)
	}
	if err := checkFields("id", d.ID, "tenant", d.Tenant, "kind", d.Kind, "patient", d.Patient, "gateway", d.Gateway); err != nil {
		return fmt.Errorf("postgres: create device: %w", err)
	}
	ids, err := identifiersJSON(d.Identifiers)
	if err != nil {
		return fmt.Errorf("postgres: create device %q: %w", d.ID, err)
	}
	if d.CreatedAt.IsZero() {
		d.CreatedAt = time.Now()
	}
	var seen *time.Time
	if !d.LastSeen.IsZero() {
		seen = &d.LastSeen
	}
	if !s.enter() {
		return fmt.Errorf("postgres: create device: %w", errClosed)
	}
	defer s.leave()
	_, err = s.pool.Exec(ctx, `INSERT INTO devices (id, tenant, kind, patient, identifiers, mqtt_password_hash, token_hash, created_at, last_seen, battery, gateway, disabled)
		VALUES ($1, $2, $3, NULLIF($4, ''), $5::jsonb, $6, $7, $8, $9, $10, NULLIF($11, ''), $12)`,
		d.ID, d.Tenant, d.Kind, d.Patient, ids, d.MQTTPasswordHash, d.TokenHash, d.CreatedAt, seen, d.Battery, d.Gateway, d.Disabled)
	if err != nil {
		return wrap(ctx, "create device", duplicate(err, fmt.Sprintf("device %q exists", d.ID)))
	}
	s.statMu.Lock()
	s.known[d.ID] = true
	s.statMu.Unlock()
	return nil
}

// withStatus overlays status not yet written. s.statMu is held.
func (s *Store) withStatus(d *iomt.Device) {
	if st, ok := s.status[d.ID]; ok {
		d.ApplyStatus(st)
	}
}

// Device implements iomt.Registry.
func (s *Store) Device(ctx context.Context, id string) (iomt.Device, error) {
	if err := ctxErr(ctx, "device"); err != nil {
		return iomt.Device{}, err
	}
	if err := checkText("id", id); err != nil {
		return iomt.Device{}, fmt.Errorf("postgres: device: %w", err)
	}
	if !s.enter() {
		return iomt.Device{}, fmt.Errorf("postgres: device: %w", errClosed)
	}
	defer s.leave()
	var d iomt.Device
	err := scanDevice(s.pool.QueryRow(ctx, `SELECT `+deviceCols+` FROM devices WHERE id = $1`, id), &d)
	if errors.Is(err, pgx.ErrNoRows) {
		return iomt.Device{}, fmt.Errorf("postgres: device %q: %w", id, iomt.ErrNotFound)
	}
	if err != nil {
		return iomt.Device{}, wrap(ctx, fmt.Sprintf("device %q", id), err)
	}
	s.statMu.Lock()
	s.withStatus(&d)
	s.statMu.Unlock()
	return d, nil
}

// Devices implements iomt.Registry; devices come ordered by ID.
func (s *Store) Devices(ctx context.Context, f iomt.DeviceFilter) ([]iomt.Device, error) {
	if err := ctxErr(ctx, "devices"); err != nil {
		return nil, err
	}
	if err := checkFields("tenant", f.Tenant, "patient", f.Patient); err != nil {
		return nil, fmt.Errorf("postgres: devices: %w", err)
	}
	if !s.enter() {
		return nil, fmt.Errorf("postgres: devices: %w", errClosed)
	}
	defer s.leave()
	rows, _ := s.pool.Query(ctx, `SELECT `+deviceCols+` FROM devices
		WHERE ($1 = '' OR tenant = $1) AND ($2 = '' OR patient = $2)
		ORDER BY id LIMIT $3`, f.Tenant, f.Patient, limit(f.Limit))
	out := []iomt.Device{}
	for rows.Next() {
		var d iomt.Device
		if err := scanDevice(rows, &d); err != nil {
			rows.Close()
			return nil, wrap(ctx, "devices", err)
		}
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, wrap(ctx, "devices", err)
	}
	s.statMu.Lock()
	for i := range out {
		s.withStatus(&out[i])
	}
	s.statMu.Unlock()
	return out, nil
}

// UpdateDevice implements iomt.Registry.
func (s *Store) UpdateDevice(ctx context.Context, d iomt.Device) error {
	if err := ctxErr(ctx, "update device"); err != nil {
		return err
	}
	if d.ID == "" {
		return fmt.Errorf("postgres: update device: %w: id is empty", iomt.ErrInvalid)
	}
	if err := checkFields("id", d.ID, "kind", d.Kind, "patient", d.Patient); err != nil {
		return fmt.Errorf("postgres: update device: %w", err)
	}
	ids, err := identifiersJSON(d.Identifiers)
	if err != nil {
		return fmt.Errorf("postgres: update device %q: %w", d.ID, err)
	}
	if !s.enter() {
		return fmt.Errorf("postgres: update device: %w", errClosed)
	}
	defer s.leave()
	tag, err := s.pool.Exec(ctx, `UPDATE devices SET kind = $2, patient = NULLIF($3, ''), identifiers = $4::jsonb WHERE id = $1`, d.ID, d.Kind, d.Patient, ids)
	if err != nil {
		return wrap(ctx, "update device", err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("postgres: update device %q: %w", d.ID, iomt.ErrNotFound)
	}
	return nil
}

// identifiersJSON checks identifiers and encodes them for the identifiers column: always an
// array, "[]" for none. CheckIdentifiers also refuses the NUL character jsonb cannot hold.
func identifiersJSON(ids []iomt.Identifier) (string, error) {
	if err := iomt.CheckIdentifiers(ids); err != nil {
		return "", err
	}
	if len(ids) == 0 {
		return "[]", nil
	}
	b, err := json.Marshal(ids)
	if err != nil {
		return "", fmt.Errorf("encode identifiers: %w", err)
	}
	return string(b), nil
}

// UpdateDeviceStatus implements iomt.Registry. Status is merged in memory (a LastSeen older
// than the one known is ignored) and written every StatusInterval and at Close; reads on
// this Store see it at once, other nodes after the write. Unknown devices are reported with
// iomt.ErrNotFound after the known ones are updated.
func (s *Store) UpdateDeviceStatus(ctx context.Context, sts []iomt.DeviceStatus) error {
	if err := ctxErr(ctx, "update device status"); err != nil {
		return err
	}
	for _, st := range sts {
		if err := checkText("device", st.Device); err != nil {
			return fmt.Errorf("postgres: update device status: %w", err)
		}
	}
	if !s.enter() {
		return fmt.Errorf("postgres: update device status: %w", errClosed)
	}
	defer s.leave()
	s.statMu.Lock()
	var ask []string
	for _, st := range sts {
		if !s.known[st.Device] && !slices.Contains(ask, st.Device) {
			ask = append(ask, st.Device)
		}
	}
	s.statMu.Unlock()
	if len(ask) > 0 {
		// A device created by another node: ask the database once, then remember it.
		rows, _ := s.pool.Query(ctx, `SELECT id FROM devices WHERE id = ANY($1)`, ask)
		found, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return wrap(ctx, "update device status", err)
		}
		s.statMu.Lock()
		for _, id := range found {
			s.known[id] = true
		}
		s.statMu.Unlock()
	}
	s.statMu.Lock()
	defer s.statMu.Unlock()
	var unknown []string
	for _, st := range sts {
		if !s.known[st.Device] {
			if !slices.Contains(unknown, st.Device) {
				unknown = append(unknown, st.Device)
			}
			continue
		}
		cur := s.status[st.Device]
		cur.Device = st.Device
		cur.Merge(st)
		s.status[st.Device] = cur
	}
	if len(unknown) > 0 {
		return fmt.Errorf("postgres: update device status: %w: devices %q", iomt.ErrNotFound, unknown)
	}
	return nil
}

// flushStatus writes the pending device status in one statement, sorted by id (the ORDER BY
// of the unnest), which makes a deadlock between nodes writing at once unlikely. On failure
// the status is kept for the next attempt.
func (s *Store) flushStatus(ctx context.Context) error {
	s.statMu.Lock()
	if len(s.status) == 0 {
		s.statMu.Unlock()
		return nil
	}
	pending := make([]iomt.DeviceStatus, 0, len(s.status))
	for _, st := range s.status {
		pending = append(pending, st)
	}
	s.statMu.Unlock()
	ids := make([]string, len(pending))
	seen := make([]*time.Time, len(pending))
	batt := make([]*float64, len(pending))
	for i, st := range pending {
		ids[i], batt[i] = st.Device, st.Battery
		if !st.LastSeen.IsZero() {
			t := st.LastSeen
			seen[i] = &t
		}
	}
	_, err := s.pool.Exec(ctx, `
		UPDATE devices d SET
			last_seen = CASE WHEN d.last_seen IS NULL OR u.last_seen > d.last_seen THEN coalesce(u.last_seen, d.last_seen) ELSE d.last_seen END,
			battery = coalesce(u.battery, d.battery)
		FROM (SELECT * FROM unnest($1::text[], $2::timestamptz[], $3::float8[]) ORDER BY 1) AS u(id, last_seen, battery)
		WHERE d.id = u.id`, ids, seen, batt)
	if err != nil {
		return err
	}
	// Forget what was written, unless it changed meanwhile.
	s.statMu.Lock()
	for _, st := range pending {
		cur, ok := s.status[st.Device]
		if ok && cur.LastSeen.Equal(st.LastSeen) && cur.Battery == st.Battery {
			delete(s.status, st.Device)
		}
	}
	s.statMu.Unlock()
	return nil
}

// changeDevice runs an UPDATE of device id's row (args follow the id as $2...), reporting
// ErrNotFound when there is no such device.
func (s *Store) changeDevice(ctx context.Context, what, id, set string, args ...any) error {
	if err := ctxErr(ctx, what); err != nil {
		return err
	}
	if id == "" {
		return fmt.Errorf("postgres: %s: %w: id is empty", what, iomt.ErrInvalid)
	}
	if err := checkText("id", id); err != nil {
		return fmt.Errorf("postgres: %s: %w", what, err)
	}
	if !s.enter() {
		return fmt.Errorf("postgres: %s: %w", what, errClosed)
	}
	defer s.leave()
	tag, err := s.pool.Exec(ctx, `UPDATE devices SET `+set+` WHERE id = $1`, append([]any{id}, args...)...)
	if err != nil {
		return wrap(ctx, what, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("postgres: %s %q: %w", what, id, iomt.ErrNotFound)
	}
	return nil
}

// SetDeviceCredentials implements iomt.Registry. Every node's next authentication reads the
// new digests: nothing caches them.
func (s *Store) SetDeviceCredentials(ctx context.Context, id string, mqttPasswordHash, tokenHash []byte) error {
	return s.changeDevice(ctx, "set device credentials", id, `mqtt_password_hash = $2, token_hash = $3`, mqttPasswordHash, tokenHash)
}

// SetDeviceDisabled implements iomt.Registry.
func (s *Store) SetDeviceDisabled(ctx context.Context, id string, disabled bool) error {
	return s.changeDevice(ctx, "set device disabled", id, `disabled = $2`, disabled)
}

// SetDeviceGateway implements iomt.Registry.
func (s *Store) SetDeviceGateway(ctx context.Context, id, gateway string) error {
	if err := checkText("gateway", gateway); err != nil {
		return fmt.Errorf("postgres: set device gateway: %w", err)
	}
	return s.changeDevice(ctx, "set device gateway", id, `gateway = NULLIF($2, '')`, gateway)
}

// DeleteDevice implements iomt.Registry: the row goes, with any status not yet written;
// readings stay (they name the device, with no reference to its row).
func (s *Store) DeleteDevice(ctx context.Context, id string) error {
	if err := ctxErr(ctx, "delete device"); err != nil {
		return err
	}
	if err := checkText("id", id); err != nil {
		return fmt.Errorf("postgres: delete device: %w", err)
	}
	if !s.enter() {
		return fmt.Errorf("postgres: delete device: %w", errClosed)
	}
	defer s.leave()
	tag, err := s.pool.Exec(ctx, `DELETE FROM devices WHERE id = $1`, id)
	if err != nil {
		return wrap(ctx, "delete device", err)
	}
	s.statMu.Lock()
	delete(s.status, id)
	delete(s.known, id)
	s.statMu.Unlock()
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("postgres: delete device %q: %w", id, iomt.ErrNotFound)
	}
	return nil
}
