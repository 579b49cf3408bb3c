package mllp

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/iomt/iomt/gateway"
	"github.com/iomt/iomt/gateway/identity"
	"github.com/iomt/iomt/wire/hl7v2"
)

// UnknownKey is HL7 table 0357's "unknown key identifier": the message is well formed but
// names a device or patient the gateway has no mapping for.
const UnknownKey hl7v2.ErrorCode = 204

// pack is one SenML pack for one platform device.
type pack struct {
	device   string
	via      string
	data     []byte
	class    gateway.Class
	readings int
}

// reading is a mapped single-value OBX with what decides its pack and class.
type reading struct {
	equipment string
	code      string
	unit      string
	value     float64
	at        time.Time
	abnormal  bool
}

// convert maps the report's readings to platform devices and encodes one pack per device.
// Refusals are *hl7v2.Error (AE with a reason); a resolver failure other than an unknown
// identity is returned as is (AE 207, to be retried).
func (s *Server) convert(ctx context.Context, m *hl7v2.Message, rep *hl7v2.Report) ([]pack, error) {
	var rs []reading
	var unmapped []string
	for _, o := range rep.Orders {
		for _, obs := range o.Observations {
			if obs.Unmapped != "" && len(unmapped) < 3 {
				unmapped = append(unmapped, fmt.Sprintf("OBX %s %s: %s", obs.SetID, obs.Code.Text, obs.Unmapped))
			}
			// The same selection as Report.Readings: arrays (pleth) need a sample period that
			// PCD-01 carries elsewhere, so they are not forwarded yet.
			if obs.Mapped == nil || obs.Mapped.Values != nil || obs.Time == nil {
				continue
			}
			rs = append(rs, reading{
				equipment: obs.Device, code: obs.Mapped.Code, unit: obs.Mapped.Unit, value: obs.Mapped.Value,
				at: obs.Time.Time.Truncate(time.Millisecond), abnormal: abnormal(obs.Flags),
			})
		}
	}
	if len(rs) == 0 {
		reason := "no reading the gateway can forward: no numeric observation maps to the codes catalog"
		if len(unmapped) > 0 {
			reason += " (" + strings.Join(unmapped, "; ") + ")"
		}
		return nil, &hl7v2.Error{Code: hl7v2.ApplicationError, Reason: reason}
	}

	msh := m.Header()
	base := identity.HL7Sender{
		Application: identity.HD{Namespace: msh.Get(3, 1), UniversalID: msh.Get(3, 2)},
		Facility:    identity.HD{Namespace: msh.Get(4, 1), UniversalID: msh.Get(4, 2)},
	}
	for _, id := range rep.Patient.Identifiers {
		base.Patients = append(base.Patients, identity.PatientID{ID: id.ID, Authority: id.Authority})
	}
	// One message may carry several MDSs (a gateway for several devices): each equipment id
	// is resolved on its own and its readings go in that device's pack.
	byEquipment := map[string]identity.Binding{}
	var order []string
	groups := map[string][]reading{}
	vias := map[string]string{}
	for _, r := range rs {
		b, ok := byEquipment[r.equipment]
		if !ok {
			q := base
			if r.equipment != "" {
				q.Equipment = []string{r.equipment}
			}
			var err error
			b, err = s.cfg.Resolver.ResolveHL7(ctx, q)
			if errors.Is(err, identity.ErrUnknown) {
				return nil, &hl7v2.Error{Code: UnknownKey, Segment: "MSH", SegmentSeq: 1, Field: 3, Reason: "sending device not known to this gateway", Err: err}
			}
			if err != nil {
				return nil, fmt.Errorf("resolving the sender's device: %w", err)
			}
			byEquipment[r.equipment] = b
		}
		if _, seen := groups[b.Device]; !seen {
			order = append(order, b.Device)
			vias[b.Device] = b.Via
		}
		groups[b.Device] = append(groups[b.Device], r)
	}
	out := make([]pack, 0, len(order))
	for _, dev := range order {
		p, err := encode(dev, groups[dev])
		if err != nil {
			return nil, err
		}
		p.via = vias[dev]
		out = append(out, p)
	}
	return out, nil
}

// abnormal reports whether OBX-8 flags the value (anything but empty or N, normal): the spool
// sends such packs first.
func abnormal(flags []string) bool {
	for _, f := range flags {
		if f != "" && f != "N" {
			return true
		}
	}
	return false
}

// encode writes one device's readings as a SenML JSON pack (gateway.EncodePack); a pack
// holding a reading the monitor flagged abnormal is sent as an alarm.
func encode(device string, rs []reading) (pack, error) {
	p := pack{device: device, class: gateway.Spot}
	gr := make([]gateway.Reading, len(rs))
	for i, r := range rs {
		gr[i] = gateway.Reading{Code: r.code, Unit: r.unit, Value: r.value, At: r.at}
		if r.abnormal {
			p.class = gateway.Alarm
		}
	}
	var err error
	if p.data, p.readings, err = gateway.EncodePack(device, gr); err != nil {
		return pack{}, err
	}
	return p, nil
}
