package uplink

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/iomt/iomt/wire/senml"
)

func fptr(v float64) *float64 { return &v }

func resolved(t *testing.T, data []byte) []senml.Resolved {
	t.Helper()
	p, err := senml.Decode(data)
	if err != nil {
		t.Fatal(err)
	}
	rs, err := p.Resolve(time.Unix(0, 0)) // any relative time left would land in 1970
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

func TestCorrectTimes(t *testing.T) {
	rx := time.Date(2026, 11, 24, 6, 0, 0, 0, time.UTC)
	abs := func(t time.Time) float64 { return float64(t.UnixMilli()) / 1000 }
	ontime, _ := senml.EncodeJSON(senml.Pack{
		{BaseName: "mon-1:", BaseTime: abs(rx.Add(-10 * time.Second)), Name: "8867-4", Unit: "/min", Value: fptr(72)},
		{Name: "59408-5", Unit: "%", Value: fptr(97), Time: 1},
	})
	relative, _ := senml.EncodeJSON(senml.Pack{{BaseName: "mon-1:", Name: "8867-4", Unit: "/min", Value: fptr(72), Time: -5}})
	ahead, _ := senml.EncodeJSON(senml.Pack{
		{BaseName: "mon-1:", BaseTime: abs(rx.Add(time.Hour)), Name: "8867-4", Unit: "/min", Value: fptr(72)},
		{Name: "8867-4", Unit: "/min", Value: fptr(73), Time: -60},
	})
	aheadCBOR, _ := senml.EncodeCBOR(senml.Pack{{BaseName: "mon-1:", Name: "8867-4", Unit: "/min", Value: fptr(72), Time: abs(rx.Add(10 * time.Minute))}})

	t.Run("untouched", func(t *testing.T) {
		out, shift, err := correctTimes(ontime, rx, 0, time.Minute)
		if err != nil || shift != 0 || !bytes.Equal(out, ontime) {
			t.Fatalf("got %s, %v, %v; want the pack unchanged", out, shift, err)
		}
	})
	t.Run("relative times are made absolute at receipt", func(t *testing.T) {
		out, _, err := correctTimes(relative, rx, 0, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		rs := resolved(t, out)
		if len(rs) != 1 || !rs[0].At().Equal(rx.Add(-5*time.Second)) || rs[0].Name != "mon-1:8867-4" || rs[0].Unit != "/min" || *rs[0].Value != 72 {
			t.Fatalf("got %+v from %s", rs, out)
		}
	})
	t.Run("device clock ahead", func(t *testing.T) {
		out, shift, err := correctTimes(ahead, rx, 0, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if shift != -time.Hour {
			t.Fatalf("shift %v, want -1h", shift)
		}
		rs := resolved(t, out)
		if len(rs) != 2 || !rs[0].At().Equal(rx.Add(-time.Minute)) || !rs[1].At().Equal(rx) {
			t.Fatalf("times %v, %v; want the newest at receipt and the spacing kept", rs[0].At(), rs[1].At())
		}
	})
	t.Run("device ahead within tolerance", func(t *testing.T) {
		out, shift, err := correctTimes(aheadCBOR, rx, 0, time.Hour)
		if err != nil || shift != 0 || !bytes.Equal(out, aheadCBOR) {
			t.Fatalf("shift %v err %v; want unchanged", shift, err)
		}
	})
	t.Run("gateway offset, CBOR stays CBOR", func(t *testing.T) {
		out, shift, err := correctTimes(aheadCBOR, rx, 3*time.Second, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if shift != -10*time.Minute+3*time.Second {
			t.Fatalf("shift %v", shift)
		}
		if out[0] < 0x80 {
			t.Fatalf("re-encoded as JSON: %s", out)
		}
		if rs := resolved(t, out); !rs[0].At().Equal(rx.Add(3 * time.Second)) {
			t.Fatalf("time %v, want receipt + offset", rs[0].At())
		}
	})
	t.Run("not SenML", func(t *testing.T) {
		if _, _, err := correctTimes([]byte(`{"hr":72}`), rx, 0, time.Minute); err == nil || !strings.Contains(err.Error(), "decoding") {
			t.Fatalf("err %v", err)
		}
	})
}

func TestBackoff(t *testing.T) {
	lo, hi := 100*time.Millisecond, 2*time.Second
	for f := range 40 {
		ceil := min(hi, lo<<min(f, 20))
		for range 50 {
			d := backoff(f, lo, hi)
			if d < lo || d > ceil {
				t.Fatalf("failure %d: %v outside [%v, %v]", f, d, lo, ceil)
			}
		}
	}
	// Jitter: two gateways failing together do not wait the same.
	seen := map[time.Duration]bool{}
	for range 20 {
		seen[backoff(5, lo, hi)] = true
	}
	if len(seen) < 10 {
		t.Fatalf("only %d distinct waits in 20 draws", len(seen))
	}
	if d := backoff(0, lo, lo); d != lo {
		t.Fatalf("lo == hi: %v", d)
	}
}
