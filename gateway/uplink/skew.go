package uplink

import (
	"fmt"
	"math"
	"time"

	"github.com/iomt/iomt/wire/senml"
)

// relativeLimit is RFC 8428's 2**28 s: a smaller time is relative to "now".
const relativeLimit = 1 << 28

// correctTimes returns the pack with its record times in server time, and the shift applied.
//
// Three things can be wrong with the times of a spooled pack, and the gateway is the last place
// that knows enough to fix them:
//   - relative times (RFC 8428 §4.5.3) mean "before now", and now was when the gateway received
//     the pack, not when the server sees it after an outage: they are made absolute against
//     received;
//   - a device whose clock runs ahead dates readings after the moment they reached the gateway,
//     which cannot be: when the newest is more than maxAhead after received, the pack is moved
//     back so that it is received (times in the past are left alone: a monitor may send
//     stored readings late);
//   - the gateway's own clock may be off the server's: offset (server minus gateway, already
//     0 when below the threshold) is added.
//
// A pack that needs none of this is returned as it is, byte for byte. One that does is
// re-encoded in the same representation (JSON or CBOR) with resolved names, units and absolute
// times, which RFC 8428 makes equivalent.
func correctTimes(payload []byte, received time.Time, offset, maxAhead time.Duration) ([]byte, time.Duration, error) {
	pack, err := senml.Decode(payload)
	if err != nil {
		return nil, 0, fmt.Errorf("decoding the pack: %w", err)
	}
	relative := false
	var bt float64
	for i := range pack {
		r := &pack[i]
		if r.BaseTime != 0 || r.Present&senml.HasBaseTime != 0 {
			bt = r.BaseTime
		}
		if bt+r.Time < relativeLimit {
			relative = true
		}
	}
	recs, err := pack.Resolve(received)
	if err != nil {
		return nil, 0, fmt.Errorf("resolving the pack: %w", err)
	}
	var shift time.Duration
	if maxAhead >= 0 && len(recs) > 0 {
		newest := recs[0].Time
		for _, r := range recs[1:] {
			newest = math.Max(newest, r.Time)
		}
		rx := float64(received.UnixNano()) / 1e9
		if ahead := time.Duration((newest - rx) * 1e9); ahead > maxAhead {
			shift = -ahead.Round(time.Millisecond)
		}
	}
	shift += offset
	if shift == 0 && !relative {
		return payload, 0, nil
	}
	out := make(senml.Pack, len(recs))
	d := shift.Seconds()
	for i, r := range recs {
		out[i] = senml.Record{
			Name: r.Name, Unit: r.Unit, Value: r.Value, StringValue: r.StringValue, BoolValue: r.BoolValue,
			DataValue: r.DataValue, Sum: r.Sum, Time: r.Time + d, UpdateTime: r.UpdateTime,
		}
	}
	var data []byte
	if payload[0] >= 0x80 {
		data, err = senml.EncodeCBOR(out)
	} else {
		data, err = senml.EncodeJSON(out)
	}
	if err != nil {
		return nil, 0, fmt.Errorf("encoding the corrected pack: %w", err)
	}
	return data, shift, nil
}
