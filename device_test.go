package iomt_test

import (
	"testing"
	"time"

	"github.com/iomt/iomt"
)

func TestStatusMerge(t *testing.T) {
	t0 := time.Date(2026, 11, 24, 8, 0, 0, 0, time.UTC)
	b80, b70 := 80.0, 70.0
	d := iomt.Device{LastSeen: t0, Battery: &b80}
	d.ApplyStatus(iomt.DeviceStatus{LastSeen: t0.Add(-time.Minute), Battery: &b70}) // older time, new battery
	if !d.LastSeen.Equal(t0) || *d.Battery != 70 {
		t.Fatalf("after an older report: %v %v", d.LastSeen, *d.Battery)
	}
	b70 = 10                                                        // the device's copy is its own
	d.ApplyStatus(iomt.DeviceStatus{LastSeen: t0.Add(time.Minute)}) // later time, no battery
	if !d.LastSeen.Equal(t0.Add(time.Minute)) || *d.Battery != 70 {
		t.Fatalf("after a later report: %v %v", d.LastSeen, *d.Battery)
	}
}
