package mllp_test

import (
	"math"
	"testing"
	"time"

	"github.com/iomt/iomt/codes"
	"github.com/iomt/iomt/gateway/mllp"
	"github.com/iomt/iomt/wire/hl7v2"
)

// A monitor whose clock runs 90 s ahead of the gateway's has its readings stored 90 s earlier
// than it dated them; with correction off they keep the monitor's times.
func TestSkewCorrectedThroughServer(t *testing.T) {
	msg := readData(t, "ipf_valid-pcd01-request.hl7v2")
	m, err := hl7v2.Parse(msg)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := hl7v2.DecodeORU(m, codes.New())
	if err != nil || rep.Sent == nil {
		t.Fatalf("reference message: %v", err)
	}
	gatewayNow := func() time.Time { return rep.Sent.Time.Add(-90 * time.Second) }
	times := func(tolerance time.Duration) []time.Time {
		sink := &recordingSink{}
		h := start(t, sink, func(c *mllp.Config) { c.Now, c.SkewTolerance = gatewayNow, tolerance })
		c := dial(t, h.addr)
		if code, errText, _ := c.roundTrip(msg); code != "AA" {
			t.Fatalf("%s %q", code, errText)
		}
		var out []time.Time
		for _, a := range sink.all() {
			rs, err := a.pack.Resolve(time.Now())
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range rs {
				out = append(out, time.UnixMilli(int64(math.Round(r.Time*1000))))
			}
		}
		return out
	}
	kept, moved := times(-1), times(0)
	if len(kept) == 0 || len(kept) != len(moved) {
		t.Fatalf("%d readings kept, %d moved", len(kept), len(moved))
	}
	for i := range kept {
		if d := kept[i].Sub(moved[i]); d != 90*time.Second {
			t.Fatalf("reading %d moved by %v, want 90s earlier", i, d)
		}
	}
}
