package storetest

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/iomt/iomt"
)

// testDeviceAccess: the disabled flag, the gateway and the credentials a device is created
// with are kept; each setter changes its field alone (status, binding and the others kept), an
// update through UpdateDevice keeps them, and unknown devices are ErrNotFound.
func testDeviceAccess(t *testing.T, s iomt.Store) {
	ctx := context.Background()
	for _, d := range []iomt.Device{
		{ID: "gw1", Tenant: "t1", Kind: "gateway", MQTTPasswordHash: []byte{9}, CreatedAt: T0},
		{ID: "d1", Tenant: "t1", Kind: "pulse-oximeter", Patient: "p1", Gateway: "gw1", Disabled: true, MQTTPasswordHash: []byte{1}, TokenHash: []byte{2}, CreatedAt: T0},
	} {
		if err := s.CreateDevice(ctx, d); err != nil {
			t.Fatalf("CreateDevice(%s): %v", d.ID, err)
		}
	}
	get := func() iomt.Device {
		t.Helper()
		d, err := s.Device(ctx, "d1")
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	if d := get(); d.Gateway != "gw1" || !d.Disabled {
		t.Fatalf("created with gateway gw1, disabled: read gateway %q, disabled %v", d.Gateway, d.Disabled)
	}
	if gw, _ := s.Device(ctx, "gw1"); gw.Gateway != "" || gw.Disabled {
		t.Fatalf("gateway device reads gateway %q, disabled %v; want none, enabled", gw.Gateway, gw.Disabled)
	}
	batt := 50.0
	if err := s.UpdateDeviceStatus(ctx, []iomt.DeviceStatus{{Device: "d1", LastSeen: T0.Add(time.Minute), Battery: &batt}}); err != nil {
		t.Fatal(err)
	}
	if err := s.SetDeviceDisabled(ctx, "d1", false); err != nil {
		t.Fatalf("SetDeviceDisabled: %v", err)
	}
	if d := get(); d.Disabled || d.Gateway != "gw1" || !slices.Equal(d.MQTTPasswordHash, []byte{1}) || d.Patient != "p1" || !d.LastSeen.Equal(T0.Add(time.Minute)) {
		t.Fatalf("after enabling: %+v", d)
	}
	if err := s.SetDeviceGateway(ctx, "d1", ""); err != nil {
		t.Fatalf("SetDeviceGateway: %v", err)
	}
	if d := get(); d.Gateway != "" || d.Disabled {
		t.Fatalf("after clearing the gateway: gateway %q, disabled %v", d.Gateway, d.Disabled)
	}
	if err := s.SetDeviceGateway(ctx, "d1", "gw1"); err != nil {
		t.Fatal(err)
	}
	// Rotation replaces both digests; revocation clears them.
	if err := s.SetDeviceCredentials(ctx, "d1", []byte{7, 7}, []byte{8, 8}); err != nil {
		t.Fatalf("SetDeviceCredentials: %v", err)
	}
	if d := get(); !slices.Equal(d.MQTTPasswordHash, []byte{7, 7}) || !slices.Equal(d.TokenHash, []byte{8, 8}) || d.Gateway != "gw1" || d.Kind != "pulse-oximeter" {
		t.Fatalf("after rotation: %+v", d)
	}
	if err := s.SetDeviceCredentials(ctx, "d1", nil, nil); err != nil {
		t.Fatal(err)
	}
	if d := get(); len(d.MQTTPasswordHash) != 0 || len(d.TokenHash) != 0 {
		t.Fatalf("after revocation: password digest %x, token digest %x; want none", d.MQTTPasswordHash, d.TokenHash)
	}
	// UpdateDevice (kind, binding, identifiers) keeps access.
	if err := s.SetDeviceDisabled(ctx, "d1", true); err != nil {
		t.Fatal(err)
	}
	if err := s.UpdateDevice(ctx, iomt.Device{ID: "d1", Kind: "ecg-patch", Patient: "p1"}); err != nil {
		t.Fatal(err)
	}
	if d := get(); !d.Disabled || d.Gateway != "gw1" || d.Kind != "ecg-patch" {
		t.Fatalf("UpdateDevice changed access: %+v", d)
	}
	ds, err := s.Devices(ctx, iomt.DeviceFilter{Tenant: "t1"})
	if err != nil || len(ds) != 2 || ds[0].ID != "d1" || !ds[0].Disabled || ds[0].Gateway != "gw1" {
		t.Fatalf("Devices: %+v, %v", ds, err)
	}
	for name, err := range map[string]error{
		"SetDeviceCredentials": s.SetDeviceCredentials(ctx, "nope", []byte{1}, nil),
		"SetDeviceDisabled":    s.SetDeviceDisabled(ctx, "nope", true),
		"SetDeviceGateway":     s.SetDeviceGateway(ctx, "nope", "gw1"),
		"DeleteDevice":         s.DeleteDevice(ctx, "nope"),
	} {
		if !errors.Is(err, iomt.ErrNotFound) {
			t.Errorf("%s of an unknown device: %v, want ErrNotFound", name, err)
		}
	}
	if err := s.SetDeviceGateway(ctx, "d1", "g\x00w"); !errors.Is(err, iomt.ErrInvalid) {
		t.Errorf("gateway with a NUL byte: %v, want ErrInvalid", err)
	}
}

// testDeleteDevice: a deleted device is gone from reads, lists and its patient's devices, its
// id can be registered again, and the readings it sent stay readable by patient.
func testDeleteDevice(t *testing.T, s iomt.Store) {
	ctx := context.Background()
	for _, d := range []iomt.Device{
		{ID: "d1", Tenant: "t1", Kind: "pulse-oximeter", Patient: "p1", MQTTPasswordHash: []byte{1}, TokenHash: []byte{2}, CreatedAt: T0},
		{ID: "d2", Tenant: "t1", Kind: "ecg-patch", Patient: "p1", CreatedAt: T0},
	} {
		if err := s.CreateDevice(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	mustAppend(t, s, Vitals("p1", "d1", T0, 3, HR))
	batt := 30.0
	if err := s.UpdateDeviceStatus(ctx, []iomt.DeviceStatus{{Device: "d1", LastSeen: T0.Add(time.Minute), Battery: &batt}}); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteDevice(ctx, "d1"); err != nil {
		t.Fatalf("DeleteDevice: %v", err)
	}
	if _, err := s.Device(ctx, "d1"); !errors.Is(err, iomt.ErrNotFound) {
		t.Fatalf("Device after delete: %v, want ErrNotFound", err)
	}
	for _, f := range []iomt.DeviceFilter{{}, {Tenant: "t1"}, {Patient: "p1"}} {
		ds, err := s.Devices(ctx, f)
		if err != nil || len(ds) != 1 || ds[0].ID != "d2" {
			t.Errorf("Devices(%+v) after delete: %+v, %v; want d2 alone", f, ds, err)
		}
	}
	if err := s.DeleteDevice(ctx, "d1"); !errors.Is(err, iomt.ErrNotFound) {
		t.Errorf("second DeleteDevice: %v, want ErrNotFound", err)
	}
	obs := query(t, s, iomt.ObservationQuery{Patient: "p1", Code: HR})
	if len(obs) != 3 || obs[0].Device != "d1" {
		t.Fatalf("readings of the deleted device: %+v, want its 3", obs)
	}
	// The id is free again, and the new device starts without the old one's status.
	if err := s.CreateDevice(ctx, iomt.Device{ID: "d1", Tenant: "t1", Kind: "scale", CreatedAt: T0}); err != nil {
		t.Fatalf("re-create after delete: %v", err)
	}
	d, err := s.Device(ctx, "d1")
	if err != nil || d.Kind != "scale" || d.Patient != "" || len(d.MQTTPasswordHash) != 0 || d.Battery != nil {
		t.Fatalf("re-created device: %+v, %v", d, err)
	}
}
