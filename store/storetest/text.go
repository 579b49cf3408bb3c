package storetest

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/iomt/iomt"
)

// testHostileText: a control character (NUL above all: PostgreSQL cannot store it) or text
// longer than iomt.MaxNameLen in a patient's name, name parts, MRN or location, in a device's
// identifiers or in an alarm silence's texts is refused with ErrInvalid naming the field, by
// create and by update alike, and nothing changes.
func testHostileText(t *testing.T, s iomt.Store) {
	ctx := context.Background()
	ok := iomt.Patient{ID: "p1", Tenant: "t1", Name: "Ada Lovelace", Family: "Lovelace", Given: []string{"Ada"}, MRN: "m1", CreatedAt: T0}
	if err := s.CreatePatient(ctx, ok); err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("a", iomt.MaxNameLen+1)
	for _, c := range []struct {
		edit func(*iomt.Patient)
		want string
	}{
		{func(p *iomt.Patient) { p.Name = "Ada\x00Lovelace" }, "name has a control character (U+0000)"},
		{func(p *iomt.Patient) { p.Name = "Ada\x1b[2JLovelace" }, "name has a control character (U+001B)"},
		{func(p *iomt.Patient) { p.Name = "Ada\u0085" }, "name has a control character (U+0085)"},
		{func(p *iomt.Patient) { p.Family = "Love\nlace" }, "family has a control character (U+000A)"},
		{func(p *iomt.Patient) { p.Given = []string{"Ada", "Au\x00gusta"} }, "given[1] has a control character (U+0000)"},
		{func(p *iomt.Patient) { p.MRN = "m\x001" }, "mrn has a control character"},
		{func(p *iomt.Patient) { p.Location = "north/ward-3\r" }, "location has a control character"},
		{func(p *iomt.Patient) { p.Name = long }, "name is 201 bytes long, at most 200"},
		{func(p *iomt.Patient) { p.Name = "Ada \xff" }, "name is not valid UTF-8"},
	} {
		bad := ok
		bad.Given = []string{"Ada"}
		c.edit(&bad)
		bad.ID = "p2"
		if err := s.CreatePatient(ctx, bad); !errors.Is(err, iomt.ErrInvalid) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("CreatePatient(%.80q): %v, want ErrInvalid saying %q", bad.Name+"|"+bad.Family+"|"+strings.Join(bad.Given, ","), err, c.want)
		}
		bad.ID = "p1"
		if err := s.UpdatePatient(ctx, bad); !errors.Is(err, iomt.ErrInvalid) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("UpdatePatient: %v, want ErrInvalid saying %q", err, c.want)
		}
	}
	if _, err := s.Patient(ctx, "p2"); !errors.Is(err, iomt.ErrNotFound) {
		t.Errorf("a refused patient was stored: %v", err)
	}
	if p, err := s.Patient(ctx, "p1"); err != nil || !reflect.DeepEqual(p, ok) {
		t.Errorf("after refused updates: %+v, %v; want %+v", p, err, ok)
	}

	d := iomt.Device{ID: "d1", Tenant: "t1", Kind: iomt.DeviceKindOther, Identifiers: []iomt.Identifier{{System: "urn:sn", Value: "sn\x001"}}, CreatedAt: T0}
	if err := s.CreateDevice(ctx, d); !errors.Is(err, iomt.ErrInvalid) || !strings.Contains(err.Error(), "identifier 0: value has a control character (U+0000)") {
		t.Errorf("CreateDevice with a NUL in an identifier: %v, want ErrInvalid naming it", err)
	}

	t0 := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	sil := iomt.AlarmSilence{Tenant: "t1", Patient: "p1", Who: "admin/ann", Until: t0.Add(time.Hour), Created: t0}
	for _, c := range []struct {
		edit func(*iomt.AlarmSilence)
		want string
	}{
		{func(x *iomt.AlarmSilence) { x.Why = "turning\x00" }, "why has a control character (U+0000)"},
		{func(x *iomt.AlarmSilence) { x.Why = strings.Repeat("w", iomt.MaxTextLen+1) }, "why is 4001 bytes long"},
		{func(x *iomt.AlarmSilence) { x.Who = "admin/\x00" }, "who has a control character"},
		{func(x *iomt.AlarmSilence) { x.Rule = long }, "rule is 201 bytes long"},
	} {
		bad := sil
		c.edit(&bad)
		if err := s.SaveAlarmSilence(ctx, bad); !errors.Is(err, iomt.ErrInvalid) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("SaveAlarmSilence: %v, want ErrInvalid saying %q", err, c.want)
		}
	}
	if got, err := s.AlarmSilences(ctx, iomt.AlarmSilenceFilter{}); err != nil || len(got) != 0 {
		t.Errorf("refused silences were stored: %+v, %v", got, err)
	}
}
