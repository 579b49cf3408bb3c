// Package gateway holds what the edge gateway's adapters and its store-and-forward spool share:
// the Sink an adapter hands a SenML pack to, and the Class that tells the spool how urgent the
// pack is. Adapters live in subpackages (mllp, ...) and depend on this package only.
package gateway

import (
	"context"
	"fmt"
	"time"

	"github.com/iomt/iomt/wire/senml"
)

// Class says what a pack carries, so the spool can send alarms first and drop waveforms first
// when it runs out of room.
type Class uint8

// The classes of pack, highest priority first. The values are stored by the spool: do not
// renumber them.
const (
	Alarm    Class = 1 // readings a device flagged as abnormal
	Spot     Class = 2 // periodic or spot-check readings
	Waveform Class = 3 // evenly spaced samples (ECG, pleth)
)

func (c Class) String() string {
	switch c {
	case Alarm:
		return "alarm"
	case Spot:
		return "spot"
	case Waveform:
		return "waveform"
	}
	return fmt.Sprintf("class(%d)", uint8(c))
}

// Valid reports whether c is one of the classes above.
func (c Class) Valid() bool { return c >= Alarm && c <= Waveform }

// Sink takes a SenML pack for a platform device. Accept returns nil only once the pack is
// durable (the spool has it on disk): an adapter acknowledges the device only then, so that a
// device whose pack was not accepted sends it again.
type Sink interface {
	Accept(ctx context.Context, device string, pack []byte, class Class) error
}

// Reading is one value an adapter decoded, in catalog terms.
type Reading struct {
	Code  string // catalog id (LOINC where there is one)
	Unit  string // the code's canonical UCUM unit
	Value float64
	At    time.Time
}

// EncodePack writes one device's readings as a SenML JSON pack: base name "{device}:", names
// the catalog ids, base time the first reading's. A reading repeating a (code, time) already in
// the pack is left out — ingest would refuse the pack for it, and devices do send one value
// twice (ECG and invasive pulse rate both map to heart rate). It returns the pack and how many
// readings it holds.
func EncodePack(device string, rs []Reading) ([]byte, int, error) {
	if len(rs) == 0 {
		return nil, 0, fmt.Errorf("encoding SenML for device %s: no readings", device)
	}
	type key struct {
		code string
		ms   int64
	}
	seen := make(map[key]bool, len(rs))
	recs := make(senml.Pack, 0, len(rs))
	vals := make([]float64, 0, len(rs)) // one slab for the values the records point to
	bt := rs[0].At.UnixMilli()
	for _, r := range rs {
		ms := r.At.UnixMilli()
		k := key{r.Code, ms}
		if seen[k] {
			continue
		}
		seen[k] = true
		vals = append(vals, r.Value)
		// Relative time from the millisecond difference: exact, where subtracting two
		// float seconds near 1.7e9 would write 0.123 as 0.12299990654.
		rec := senml.Record{Name: r.Code, Unit: r.Unit, Value: &vals[len(vals)-1], Time: float64(ms-bt) / 1000}
		if len(recs) == 0 {
			rec.BaseName, rec.BaseTime = device+":", float64(bt)/1000
		}
		recs = append(recs, rec)
	}
	data, err := senml.EncodeJSON(recs)
	if err != nil {
		return nil, 0, fmt.Errorf("encoding SenML for device %s: %w", device, err)
	}
	return data, len(recs), nil
}
