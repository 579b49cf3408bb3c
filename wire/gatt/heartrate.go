package gatt

// HeartRate is a Heart Rate Measurement (0x2A37, Heart Rate Service 1.0).
type HeartRate struct {
	Flags uint8 `json:"flags"`
	// HeartRate in beats per minute, sent as uint8 or uint16 (HeartRate16).
	HeartRate   uint16 `json:"heart_rate"`
	Unit        string `json:"unit"` // "/min"
	HeartRate16 bool   `json:"heart_rate_uint16"`
	// SensorContact is nil when the sensor does not support contact detection, else whether
	// it detects skin contact.
	SensorContact *bool `json:"sensor_contact"`
	// EnergyExpended is cumulative since the last reset, in kJ; 0xFFFF means "at least 65535".
	EnergyExpended     *uint16 `json:"energy_expended,omitempty"`
	EnergyExpendedUnit string  `json:"energy_expended_unit,omitempty"` // "kJ"
	// RRIntervals are beat-to-beat intervals as sent, in 1/1024 s, oldest first.
	RRIntervals    []uint16 `json:"rr_intervals,omitempty"`
	RRIntervalUnit string   `json:"rr_interval_unit,omitempty"` // "1/1024 s"
	// RRIntervalsMS are the same intervals in milliseconds.
	RRIntervalsMS []float64 `json:"rr_intervals_ms,omitempty"`
}

// DecodeHeartRate decodes a Heart Rate Measurement notification.
func DecodeHeartRate(p []byte) (HeartRate, error) {
	r := newReader(UUIDHeartRateMeasurement, p)
	flags, err := r.u8("flags (uint8)")
	if err != nil {
		return HeartRate{}, err
	}
	m := HeartRate{Flags: flags, Unit: "/min", HeartRate16: bit(flags, 0)}
	if m.HeartRate16 {
		if m.HeartRate, err = r.u16("heart rate (uint16)"); err != nil {
			return HeartRate{}, err
		}
	} else {
		v, err := r.u8("heart rate (uint8)")
		if err != nil {
			return HeartRate{}, err
		}
		m.HeartRate = uint16(v)
	}
	// Bits 1-2: 0 and 1 both mean "not supported"; 2 supported, no contact; 3 contact.
	if flags&0x04 != 0 {
		contact := flags&0x02 != 0
		m.SensorContact = &contact
	}
	if bit(flags, 3) {
		v, err := r.u16("energy expended (uint16)")
		if err != nil {
			return HeartRate{}, err
		}
		m.EnergyExpended, m.EnergyExpendedUnit = &v, "kJ"
	}
	if bit(flags, 4) {
		// The intervals fill the rest of the payload; the flag promises at least one.
		n := max(r.left()/2, 1)
		m.RRIntervals = make([]uint16, 0, n)
		m.RRIntervalsMS = make([]float64, 0, n)
		for first := true; first || r.left() > 0; first = false {
			v, err := r.u16("RR interval (uint16)")
			if err != nil {
				return HeartRate{}, err
			}
			m.RRIntervals = append(m.RRIntervals, v)
			m.RRIntervalsMS = append(m.RRIntervalsMS, float64(v)*1000/1024)
		}
		m.RRIntervalUnit = "1/1024 s"
	}
	if err := r.done(); err != nil {
		return HeartRate{}, err
	}
	return m, nil
}

// Readings: heart rate 8867-4 in /min. A rate of 0 is kept: ingest decides what is plausible.
func (m HeartRate) Readings() []Reading {
	return []Reading{{Code: "8867-4", Value: float64(m.HeartRate), Unit: "/min"}}
}
