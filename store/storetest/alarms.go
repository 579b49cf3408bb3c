package storetest

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/iomt/iomt"
)

func alarmAt(id, tenant, patient string, raised time.Time, st iomt.AlarmState) iomt.Alarm {
	return iomt.Alarm{
		ID: id, Tenant: tenant, Patient: patient, Device: "d-" + patient, Rule: "spo2-low", RuleVersion: 1,
		Category: iomt.Physiological, Priority: iomt.PriorityMedium, State: st, Raised: raised,
		ConditionActive: true, Code: "59408-5", Value: 88, Limit: 90, Message: "SpO2 88 % (below 90 %)",
		Transitions: []iomt.AlarmTransition{{To: iomt.AlarmActive, Who: "system", When: raised, Why: "raised"}},
	}
}

func testAlarms(t *testing.T, s iomt.Store) {
	ctx := context.Background()
	t0 := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	a1 := alarmAt("al_1", "w7", "p1", t0, iomt.AlarmActive)
	a2 := alarmAt("al_2", "w7", "p2", t0.Add(time.Minute), iomt.AlarmActive)
	a3 := alarmAt("al_3", "w8", "p3", t0.Add(2*time.Minute), iomt.AlarmActive)
	if err := s.SaveAlarms(ctx, []iomt.Alarm{a1, a2, a3}); err != nil {
		t.Fatal(err)
	}
	// Acknowledging replaces the snapshot, transitions included.
	a1.State = iomt.AlarmAcknowledged
	a1.Acked = t0.Add(30 * time.Second)
	a1.Transitions = append(a1.Transitions, iomt.AlarmTransition{From: iomt.AlarmActive, To: iomt.AlarmAcknowledged, Who: "admin/ann", When: a1.Acked, Why: "at bedside"})
	a2.State = iomt.AlarmResolved
	a2.Transitions = append(a2.Transitions, iomt.AlarmTransition{From: iomt.AlarmActive, To: iomt.AlarmResolved, Who: "system", When: t0.Add(3 * time.Minute), Why: "cleared"})
	if err := s.SaveAlarms(ctx, []iomt.Alarm{a1, a2}); err != nil {
		t.Fatal(err)
	}
	got, err := s.Alarm(ctx, "al_1")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(norm(got), norm(a1)) {
		t.Fatalf("Alarm(al_1) = %+v, want %+v", got, a1)
	}
	if _, err := s.Alarm(ctx, "al_none"); !errors.Is(err, iomt.ErrNotFound) {
		t.Fatalf("missing alarm: %v, want ErrNotFound", err)
	}
	ids := func(f iomt.AlarmFilter) []string {
		t.Helper()
		as, err := s.Alarms(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		out := []string{}
		for _, a := range as {
			out = append(out, a.ID)
		}
		return out
	}
	unresolved := []iomt.AlarmState{iomt.AlarmActive, iomt.AlarmAcknowledged}
	for _, c := range []struct {
		f    iomt.AlarmFilter
		want []string
	}{
		{iomt.AlarmFilter{}, []string{"al_3", "al_2", "al_1"}},
		{iomt.AlarmFilter{Limit: 2}, []string{"al_3", "al_2"}},
		{iomt.AlarmFilter{Tenant: "w7"}, []string{"al_2", "al_1"}},
		{iomt.AlarmFilter{Patient: "p2"}, []string{"al_2"}},
		{iomt.AlarmFilter{Patients: []string{"p1", "p3"}}, []string{"al_3", "al_1"}},
		{iomt.AlarmFilter{Patients: []string{}}, []string{}},
		{iomt.AlarmFilter{States: unresolved}, []string{"al_3", "al_1"}},
		{iomt.AlarmFilter{States: []iomt.AlarmState{iomt.AlarmResolved}}, []string{"al_2"}},
		{iomt.AlarmFilter{Since: t0.Add(time.Minute)}, []string{"al_3", "al_2"}},
		{iomt.AlarmFilter{Until: t0.Add(time.Minute)}, []string{"al_1"}},
		{iomt.AlarmFilter{Tenant: "w7", States: unresolved}, []string{"al_1"}},
	} {
		if got := ids(c.f); !reflect.DeepEqual(got, c.want) {
			t.Errorf("Alarms(%+v) = %v, want %v", c.f, got, c.want)
		}
	}
	// A late write of an older snapshot (fewer transitions) does not replace the newer one;
	// one with as many transitions does (a flag cleared on the same step).
	stale := alarmAt("al_1", "w7", "p1", t0, iomt.AlarmActive)
	if err := s.SaveAlarms(ctx, []iomt.Alarm{stale}); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Alarm(ctx, "al_1"); got.State != iomt.AlarmAcknowledged {
		t.Fatalf("an older snapshot replaced the acknowledged one: %+v", got)
	}
	same := a1
	same.Undelivered = "raised"
	if err := s.SaveAlarms(ctx, []iomt.Alarm{same}); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Alarm(ctx, "al_1"); got.Undelivered != "raised" {
		t.Fatalf("a snapshot with as many transitions was not stored: %+v", got)
	}
	if err := s.SaveAlarms(ctx, []iomt.Alarm{{}}); !errors.Is(err, iomt.ErrInvalid) {
		t.Fatalf("alarm without an id: %v, want ErrInvalid", err)
	}
}

// norm makes times comparable after a round trip (location, monotonic clock).
func norm(a iomt.Alarm) iomt.Alarm {
	a.Raised, a.Acked, a.Resolved = a.Raised.UTC(), a.Acked.UTC(), a.Resolved.UTC()
	a.Cleared, a.SilencedUntil, a.NextEscalation = a.Cleared.UTC(), a.SilencedUntil.UTC(), a.NextEscalation.UTC()
	tr := make([]iomt.AlarmTransition, len(a.Transitions))
	for i, x := range a.Transitions {
		x.When = x.When.UTC()
		tr[i] = x
	}
	a.Transitions = tr
	return a
}

func testAlarmConfigs(t *testing.T, s iomt.Store) {
	ctx := context.Background()
	now := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	cs, err := s.AlarmConfigs(ctx)
	if err != nil || len(cs) != 0 {
		t.Fatalf("empty store: %v %v", cs, err)
	}
	for _, c := range []iomt.AlarmConfig{
		{Tenant: "w7", Kind: "rules", Version: 1, Doc: []byte("version: 1"), Who: "admin", Saved: now},
		{Tenant: "w7", Kind: "rules", Version: 2, Doc: []byte("version: 2"), Who: "admin", Saved: now.Add(time.Hour)},
		{Tenant: "w7", Kind: "routing", Version: 1, Doc: []byte("teams: []"), Who: "admin", Saved: now},
		{Tenant: "", Kind: "rules", Version: 3, Doc: []byte("version: 3"), Who: "admin", Saved: now},
	} {
		if err := s.SaveAlarmConfig(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	err = s.SaveAlarmConfig(ctx, iomt.AlarmConfig{Tenant: "w7", Kind: "rules", Version: 2, Doc: []byte("x"), Who: "admin", Saved: now})
	if !errors.Is(err, iomt.ErrDuplicate) {
		t.Fatalf("same version again: %v, want ErrDuplicate", err)
	}
	for _, bad := range []iomt.AlarmConfig{
		{Tenant: "w7", Kind: "rules", Version: 0, Doc: []byte("x"), Who: "admin", Saved: now},
		{Tenant: "w7", Kind: "colours", Version: 1, Doc: []byte("x"), Who: "admin", Saved: now},
	} {
		if err := s.SaveAlarmConfig(ctx, bad); !errors.Is(err, iomt.ErrInvalid) {
			t.Fatalf("%+v: %v, want ErrInvalid", bad, err)
		}
	}
	cs, err = s.AlarmConfigs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, c := range cs {
		got[c.Tenant+"/"+c.Kind] = string(c.Doc)
	}
	want := map[string]string{"w7/rules": "version: 2", "w7/routing": "teams: []", "/rules": "version: 3"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("AlarmConfigs = %v, want %v", got, want)
	}
}

// testAlarmSilences: silences round-trip to the millisecond, filter by tenant, patient and
// time, are kept once when saved twice, and a save drops those that ended before it.
func testAlarmSilences(t *testing.T, s iomt.Store) {
	ctx := context.Background()
	t0 := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	list := func(f iomt.AlarmSilenceFilter) []iomt.AlarmSilence {
		t.Helper()
		got, err := s.AlarmSilences(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		for i := range got {
			got[i].Until, got[i].Created = got[i].Until.UTC(), got[i].Created.UTC()
		}
		return got
	}
	ended := iomt.AlarmSilence{Tenant: "w7", Patient: "p9", Until: t0.Add(time.Minute), Who: "ann", Created: t0.Add(-5 * time.Minute)}
	if err := s.SaveAlarmSilence(ctx, ended); err != nil {
		t.Fatal(err)
	}
	if got := list(iomt.AlarmSilenceFilter{At: t0.Add(2 * time.Minute)}); len(got) != 0 {
		t.Fatalf("silences in force after their end: %+v", got)
	}
	if got := list(iomt.AlarmSilenceFilter{}); len(got) != 1 {
		t.Fatalf("all silences: %+v, want the one saved", got)
	}
	created := t0.Add(2 * time.Minute)
	patient := iomt.AlarmSilence{Tenant: "w7", Patient: "p1", Who: "admin/ann", Why: "repositioning",
		Until: t0.Add(10*time.Minute + 123456789), Created: created} // sub-millisecond part dropped
	rule := iomt.AlarmSilence{Tenant: "w7", Patient: "p1", Rule: "spo2-low", Until: t0.Add(5 * time.Minute), Who: "admin/ned", Created: created}
	device := iomt.AlarmSilence{Tenant: "w8", Patient: "p2", Device: "d-p2", Until: t0.Add(20 * time.Minute), Who: "admin/cat", Why: "lead change", Created: created}
	for _, x := range []iomt.AlarmSilence{patient, rule, device, patient} { // patient twice: kept once
		if err := s.SaveAlarmSilence(ctx, x); err != nil {
			t.Fatal(err)
		}
	}
	patient.Until = patient.Until.Truncate(time.Millisecond)
	all := list(iomt.AlarmSilenceFilter{})
	if want := []iomt.AlarmSilence{patient, rule, device}; !reflect.DeepEqual(all, want) {
		t.Fatalf("silences after saving three (one twice) = %+v, want %+v (the ended one dropped)", all, want)
	}
	for _, c := range []struct {
		f    iomt.AlarmSilenceFilter
		want []iomt.AlarmSilence
	}{
		{iomt.AlarmSilenceFilter{Tenant: "w8"}, []iomt.AlarmSilence{device}},
		{iomt.AlarmSilenceFilter{Patients: []string{"p2", "p3"}}, []iomt.AlarmSilence{device}},
		{iomt.AlarmSilenceFilter{Patients: []string{}}, []iomt.AlarmSilence{}},
		{iomt.AlarmSilenceFilter{At: t0.Add(5 * time.Minute)}, []iomt.AlarmSilence{patient, device}},
		{iomt.AlarmSilenceFilter{Tenant: "w7", At: t0.Add(15 * time.Minute)}, []iomt.AlarmSilence{}},
	} {
		if got := list(c.f); !reflect.DeepEqual(got, c.want) {
			t.Errorf("AlarmSilences(%+v) = %+v, want %+v", c.f, got, c.want)
		}
	}
	for _, bad := range []iomt.AlarmSilence{
		{Patient: "p1", Who: "ann", Until: t0, Created: t0},
		{Tenant: "w7", Who: "ann", Until: t0, Created: t0},
		{Tenant: "w7", Patient: "p1", Until: t0, Created: t0},
		{Tenant: "w7", Patient: "p1", Who: "ann", Created: t0},
		{Tenant: "w7", Patient: "p1", Who: "ann", Until: t0},
		{Tenant: "w7", Patient: "p\x001", Who: "ann", Until: t0, Created: t0},
	} {
		if err := s.SaveAlarmSilence(ctx, bad); !errors.Is(err, iomt.ErrInvalid) {
			t.Errorf("SaveAlarmSilence(%+v): %v, want ErrInvalid", bad, err)
		}
	}
}
