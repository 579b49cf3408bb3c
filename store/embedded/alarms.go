package embedded

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/iomt/iomt"
)

// Alarm keys:
//
//	'a' id                       alarm snapshot (JSON)
//	'u' id                       the alarm is unresolved (restoring scans these only)
//	'g' tenant 0 kind 0 version  alarm configuration version (JSON), version uint32 BE
//	'q' tenant 0 patient 0 rule 0 device 0 until   alarm silence (JSON), until Unix ms (sortable BE)
//
// A ward keeps thousands of alarms, not millions, so lists scan and filter in memory.

const alarmStripes = 64

// SaveAlarms implements iomt.AlarmStore.
func (s *Store) SaveAlarms(ctx context.Context, alarms []iomt.Alarm) error {
	if err := ctxErr(ctx, "save alarms"); err != nil {
		return err
	}
	if !s.enter() {
		return fmt.Errorf("embedded: save alarms: %w", errClosed)
	}
	defer s.leave()
	// The read-compare-write below must not interleave with another save of the same alarm,
	// but saves of different alarms commit concurrently (Pebble shares one fsync among them):
	// one lock per stripe of alarm IDs, taken in stripe order.
	var stripes []int
	for _, a := range alarms {
		stripes = append(stripes, iomt.Partition(a.ID, alarmStripes))
	}
	slices.Sort(stripes)
	stripes = slices.Compact(stripes)
	for _, i := range stripes {
		s.alarmMu[i].Lock()
	}
	defer func() {
		for _, i := range stripes {
			s.alarmMu[i].Unlock()
		}
	}()
	b := s.db.NewBatch()
	defer b.Close()
	sync := false
	for _, a := range alarms {
		if err := checkID("alarm id", a.ID, true); err != nil {
			return fmt.Errorf("embedded: save alarms: %w", err)
		}
		v, err := json.Marshal(a)
		if err != nil {
			return fmt.Errorf("embedded: save alarm %s: %w", a.ID, err)
		}
		var cur iomt.Alarm
		switch err := s.getJSON(strKey('a', a.ID), &cur); {
		case err == nil:
			if len(cur.Transitions) > len(a.Transitions) {
				continue // an older snapshot arriving late
			}
			if !clearsMark(cur, a, v) {
				sync = true
			}
		case errors.Is(err, iomt.ErrNotFound):
			sync = true
		default:
			return fmt.Errorf("embedded: save alarm %s: %w", a.ID, err)
		}
		_ = b.Set(strKey('a', a.ID), v, nil)
		if a.State == iomt.AlarmResolved {
			_ = b.Delete(strKey('u', a.ID), nil)
		} else {
			_ = b.Set(strKey('u', a.ID), nil, nil)
		}
	}
	// Clearing outbox marks need not wait for the disk: a mark a crash brings back only means
	// notifications sent again under the same delivery IDs. Anything else is synced.
	opt := pebble.NoSync
	if sync {
		opt = pebble.Sync
	}
	if err := b.Commit(opt); err != nil {
		return fmt.Errorf("embedded: save alarms: %w", err)
	}
	return nil
}

// clearsMark reports whether next (encoded as nextJSON) differs from cur only by an outbox
// mark cleared.
func clearsMark(cur, next iomt.Alarm, nextJSON []byte) bool {
	if cur.Undelivered == "" || next.Undelivered != "" || len(cur.Transitions) != len(next.Transitions) {
		return false
	}
	cur.Undelivered = ""
	a, err := json.Marshal(cur)
	return err == nil && string(a) == string(nextJSON)
}

// Alarm implements iomt.AlarmStore.
func (s *Store) Alarm(ctx context.Context, id string) (iomt.Alarm, error) {
	if err := ctxErr(ctx, "alarm"); err != nil {
		return iomt.Alarm{}, err
	}
	if !s.enter() {
		return iomt.Alarm{}, fmt.Errorf("embedded: alarm: %w", errClosed)
	}
	defer s.leave()
	var a iomt.Alarm
	if err := s.getJSON(strKey('a', id), &a); err != nil {
		return a, fmt.Errorf("embedded: alarm %q: %w", id, err)
	}
	return a, nil
}

// Alarms implements iomt.AlarmStore.
func (s *Store) Alarms(ctx context.Context, f iomt.AlarmFilter) ([]iomt.Alarm, error) {
	if err := ctxErr(ctx, "alarms"); err != nil {
		return nil, err
	}
	if !s.enter() {
		return nil, fmt.Errorf("embedded: alarms: %w", errClosed)
	}
	defer s.leave()
	unresolvedOnly := len(f.States) > 0 && !slices.Contains(f.States, iomt.AlarmResolved)
	prefix := []byte{'a'}
	if unresolvedOnly {
		prefix = []byte{'u'}
	}
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return nil, fmt.Errorf("embedded: alarms: %w", err)
	}
	defer it.Close()
	out := []iomt.Alarm{}
	for it.First(); it.Valid(); it.Next() {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("embedded: alarms: %w", err)
		}
		var a iomt.Alarm
		if unresolvedOnly {
			if err := s.getJSON(strKey('a', string(it.Key()[1:])), &a); err != nil {
				if errors.Is(err, iomt.ErrNotFound) {
					continue
				}
				return nil, fmt.Errorf("embedded: alarms: %w", err)
			}
		} else {
			v, err := it.ValueAndErr()
			if err != nil {
				return nil, fmt.Errorf("embedded: alarms: %w", err)
			}
			if err := json.Unmarshal(v, &a); err != nil {
				return nil, fmt.Errorf("embedded: alarms: decode %q: %w", it.Key()[1:], err)
			}
		}
		if matchAlarm(f, &a) {
			out = append(out, a)
		}
	}
	slices.SortFunc(out, func(x, y iomt.Alarm) int {
		if c := y.Raised.Compare(x.Raised); c != 0 {
			return c
		}
		return strings.Compare(x.ID, y.ID)
	})
	if f.Limit > 0 && len(out) > f.Limit {
		out = out[:f.Limit]
	}
	return out, nil
}

func matchAlarm(f iomt.AlarmFilter, a *iomt.Alarm) bool {
	return (f.Tenant == "" || a.Tenant == f.Tenant) &&
		(f.Patient == "" || a.Patient == f.Patient) &&
		(f.Patients == nil || slices.Contains(f.Patients, a.Patient)) &&
		(len(f.States) == 0 || slices.Contains(f.States, a.State)) &&
		(f.Since.IsZero() || !a.Raised.Before(f.Since)) &&
		(f.Until.IsZero() || a.Raised.Before(f.Until))
}

func configKey(tenant, kind string, version int) []byte {
	k := append(strKey('g', tenant, kind), 0)
	return binary.BigEndian.AppendUint32(k, uint32(version))
}

// SaveAlarmConfig implements iomt.AlarmStore.
func (s *Store) SaveAlarmConfig(ctx context.Context, c iomt.AlarmConfig) error {
	if err := ctxErr(ctx, "save alarm config"); err != nil {
		return err
	}
	for _, p := range []struct{ what, v string }{{"tenant", c.Tenant}, {"kind", c.Kind}} {
		if err := checkID(p.what, p.v, p.what == "kind"); err != nil {
			return fmt.Errorf("embedded: save alarm config: %w", err)
		}
	}
	if c.Kind != "rules" && c.Kind != "routing" {
		return fmt.Errorf("embedded: save alarm config: %w: kind %q (want rules or routing)", iomt.ErrInvalid, c.Kind)
	}
	if c.Version < 1 {
		return fmt.Errorf("embedded: save alarm config: %w: version %d (must be ≥ 1)", iomt.ErrInvalid, c.Version)
	}
	s.regMu.Lock()
	defer s.regMu.Unlock()
	if !s.enter() {
		return fmt.Errorf("embedded: save alarm config: %w", errClosed)
	}
	defer s.leave()
	key := configKey(c.Tenant, c.Kind, c.Version)
	if ok, err := s.exists(key); err != nil || ok {
		if err == nil {
			err = fmt.Errorf("%w: %s version %d of tenant %q exists", iomt.ErrDuplicate, c.Kind, c.Version, c.Tenant)
		}
		return fmt.Errorf("embedded: save alarm config: %w", err)
	}
	v, err := json.Marshal(c)
	if err != nil {
		return fmt.Errorf("embedded: save alarm config: %w", err)
	}
	if err := s.db.Set(key, v, pebble.Sync); err != nil {
		return fmt.Errorf("embedded: save alarm config: %w", err)
	}
	return nil
}

// AlarmConfigs implements iomt.AlarmStore.
func (s *Store) AlarmConfigs(ctx context.Context) ([]iomt.AlarmConfig, error) {
	if err := ctxErr(ctx, "alarm configs"); err != nil {
		return nil, err
	}
	if !s.enter() {
		return nil, fmt.Errorf("embedded: alarm configs: %w", errClosed)
	}
	defer s.leave()
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{'g'}, UpperBound: []byte{'g' + 1}})
	if err != nil {
		return nil, fmt.Errorf("embedded: alarm configs: %w", err)
	}
	defer it.Close()
	out := []iomt.AlarmConfig{}
	for it.First(); it.Valid(); it.Next() {
		v, err := it.ValueAndErr()
		if err != nil {
			return nil, fmt.Errorf("embedded: alarm configs: %w", err)
		}
		var c iomt.AlarmConfig
		if err := json.Unmarshal(v, &c); err != nil {
			return nil, fmt.Errorf("embedded: alarm configs: %w", err)
		}
		// Keys sort by tenant, kind, then version: a later key of the same pair replaces.
		if n := len(out); n > 0 && out[n-1].Tenant == c.Tenant && out[n-1].Kind == c.Kind {
			out[n-1] = c
			continue
		}
		out = append(out, c)
	}
	return out, nil
}

func silenceKey(x iomt.AlarmSilence) []byte {
	k := append(strKey('q', x.Tenant, x.Patient, x.Rule, x.Device), 0)
	return binary.BigEndian.AppendUint64(k, sortable(x.Until.UnixMilli()))
}

// SaveAlarmSilence implements iomt.AlarmStore.
func (s *Store) SaveAlarmSilence(ctx context.Context, x iomt.AlarmSilence) error {
	if err := ctxErr(ctx, "save alarm silence"); err != nil {
		return err
	}
	if err := iomt.CheckAlarmSilence(x); err != nil {
		return fmt.Errorf("embedded: save alarm silence: %w", err)
	}
	for _, p := range []struct{ what, v string }{{"tenant", x.Tenant}, {"patient", x.Patient}, {"rule", x.Rule}, {"device", x.Device}} {
		if err := checkID(p.what, p.v, false); err != nil {
			return fmt.Errorf("embedded: save alarm silence: %w", err)
		}
	}
	x.Until, x.Created = x.Until.UTC().Truncate(time.Millisecond), x.Created.UTC().Truncate(time.Millisecond)
	v, err := json.Marshal(x)
	if err != nil {
		return fmt.Errorf("embedded: save alarm silence: %w", err)
	}
	if !s.enter() {
		return fmt.Errorf("embedded: save alarm silence: %w", errClosed)
	}
	defer s.leave()
	b := s.db.NewBatch()
	defer b.Close()
	// A ward holds a handful of silences: finding the expired ones is a short scan.
	old, err := s.silences(ctx, iomt.AlarmSilenceFilter{})
	if err != nil {
		return fmt.Errorf("embedded: save alarm silence: %w", err)
	}
	for _, o := range old {
		if o.Until.Before(x.Created) {
			_ = b.Delete(silenceKey(o), nil)
		}
	}
	_ = b.Set(silenceKey(x), v, nil)
	if err := b.Commit(pebble.Sync); err != nil {
		return fmt.Errorf("embedded: save alarm silence: %w", err)
	}
	return nil
}

// AlarmSilences implements iomt.AlarmStore.
func (s *Store) AlarmSilences(ctx context.Context, f iomt.AlarmSilenceFilter) ([]iomt.AlarmSilence, error) {
	if err := ctxErr(ctx, "alarm silences"); err != nil {
		return nil, err
	}
	if !s.enter() {
		return nil, fmt.Errorf("embedded: alarm silences: %w", errClosed)
	}
	defer s.leave()
	out, err := s.silences(ctx, f)
	if err != nil {
		return nil, fmt.Errorf("embedded: alarm silences: %w", err)
	}
	return out, nil
}

// silences lists the stored silences f selects, in key order (tenant, patient, rule, device,
// until).
func (s *Store) silences(ctx context.Context, f iomt.AlarmSilenceFilter) ([]iomt.AlarmSilence, error) {
	prefix := []byte{'q'}
	if f.Tenant != "" {
		prefix = append(strKey('q', f.Tenant), 0)
	}
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	out := []iomt.AlarmSilence{}
	for it.First(); it.Valid(); it.Next() {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		v, err := it.ValueAndErr()
		if err != nil {
			return nil, err
		}
		var x iomt.AlarmSilence
		if err := json.Unmarshal(v, &x); err != nil {
			return nil, fmt.Errorf("decode silence %q: %w", it.Key()[1:], err)
		}
		if (f.Patients == nil || slices.Contains(f.Patients, x.Patient)) && (f.At.IsZero() || x.Until.After(f.At)) {
			out = append(out, x)
		}
	}
	return out, nil
}
