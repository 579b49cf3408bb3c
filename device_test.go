package iomt_test

import (
	"errors"
	"slices"
	"strings"
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

func TestDeviceKinds(t *testing.T) {
	ks := iomt.DeviceKinds()
	if !slices.IsSorted(ks) || !slices.Contains(ks, iomt.DeviceKindOther) || len(slices.Compact(slices.Clone(ks))) != len(ks) {
		t.Errorf("kinds %v: want sorted, unique, with %q", ks, iomt.DeviceKindOther)
	}
	ks[0] = "changed"
	if iomt.DeviceKinds()[0] == "changed" {
		t.Error("DeviceKinds shares its slice")
	}
}

func TestCheckIdentifiers(t *testing.T) {
	ok := [][]iomt.Identifier{
		nil,
		{{System: "http://goodcare.org/devices/id", Value: "345675"}},
		{{Value: "asset 17 — ward 3"}, {System: "urn:x", Value: "asset 17 — ward 3"}}, // same value, other system
	}
	for _, ids := range ok {
		if err := iomt.CheckIdentifiers(ids); err != nil {
			t.Errorf("%q: %v", ids, err)
		}
	}
	many := make([]iomt.Identifier, iomt.MaxIdentifiers+1)
	for i := range many {
		many[i] = iomt.Identifier{Value: strings.Repeat("v", i+1)}
	}
	for _, c := range []struct {
		ids  []iomt.Identifier
		want string
	}{
		{many, "17 identifiers, at most 16"},
		{[]iomt.Identifier{{System: "urn:x"}}, "identifier 0 has no value"},
		{[]iomt.Identifier{{Value: "1"}, {Value: "  "}}, "identifier 1 has no value"},
		{[]iomt.Identifier{{Value: strings.Repeat("9", iomt.MaxIdentifierLength+1)}}, "value is 257 bytes long, at most 256"},
		{[]iomt.Identifier{{System: "urn:" + strings.Repeat("x", iomt.MaxIdentifierLength), Value: "1"}}, "system is 260 bytes long"},
		{[]iomt.Identifier{{Value: "a\x00b"}}, "value has a control character"},
		{[]iomt.Identifier{{Value: "a\nb"}}, "value has a control character"},
		{[]iomt.Identifier{{Value: "\xff"}}, "value is not valid UTF-8"},
		{[]iomt.Identifier{{System: "urn:a b", Value: "1"}}, `system "urn:a b" is not a URI`},
		{[]iomt.Identifier{{System: "urn:x", Value: "1"}, {System: "urn:y", Value: "1"}, {System: "urn:x", Value: "1"}}, "identifier 2 repeats identifier 0"},
	} {
		err := iomt.CheckIdentifiers(c.ids)
		if !errors.Is(err, iomt.ErrInvalid) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%.60q: %v, want ErrInvalid with %q", c.ids, err, c.want)
		}
	}
}
