package gatt

// BloodPressure is a Blood Pressure Measurement (0x2A35, Blood Pressure Service 1.0).
type BloodPressure struct {
	Flags uint8 `json:"flags"`
	// Systolic, Diastolic and MeanArterial are in Unit, "mm[Hg]" or "kPa". A device that
	// does not compute one of them sends NaN.
	Systolic     Float  `json:"systolic"`
	Diastolic    Float  `json:"diastolic"`
	MeanArterial Float  `json:"mean_arterial"`
	Unit         string `json:"unit"`
	// Timestamp is the device's local time of the measurement.
	Timestamp *DateTime `json:"timestamp,omitempty"`
	// PulseRate in beats per minute.
	PulseRate     *Float `json:"pulse_rate,omitempty"`
	PulseRateUnit string `json:"pulse_rate_unit,omitempty"` // "/min"
	// UserID is the device's user index; 255 means unknown user.
	UserID *uint8 `json:"user_id,omitempty"`
	// Status is the Measurement Status field as sent, with its bits decoded in StatusBits.
	Status     *uint16              `json:"measurement_status,omitempty"`
	StatusBits *BloodPressureStatus `json:"measurement_status_bits,omitempty"`
}

// BloodPressureStatus are the Measurement Status bits of a blood pressure measurement.
type BloodPressureStatus struct {
	BodyMovement      bool  `json:"body_movement_detected"`
	CuffTooLoose      bool  `json:"cuff_fit_too_loose"`
	IrregularPulse    bool  `json:"irregular_pulse_detected"`
	PulseRateInRange  bool  `json:"pulse_rate_within_range"`
	PulseRateTooHigh  bool  `json:"pulse_rate_exceeds_upper_limit"`
	PulseRateTooLow   bool  `json:"pulse_rate_below_lower_limit"`
	ImproperPosition  bool  `json:"improper_measurement_position"`
	PulseRateRangeRaw uint8 `json:"pulse_rate_range"` // bits 3-4 as sent: 0 in range, 1 above, 2 below
}

// DecodeBloodPressure decodes a Blood Pressure Measurement indication.
func DecodeBloodPressure(p []byte) (BloodPressure, error) {
	r := newReader(UUIDBloodPressureMeasurement, p)
	flags, err := r.u8("flags (uint8)")
	if err != nil {
		return BloodPressure{}, err
	}
	m := BloodPressure{Flags: flags, Unit: "mm[Hg]"}
	if bit(flags, 0) {
		m.Unit = "kPa"
	}
	if m.Systolic, err = r.sfloat("systolic"); err != nil {
		return BloodPressure{}, err
	}
	if m.Diastolic, err = r.sfloat("diastolic"); err != nil {
		return BloodPressure{}, err
	}
	if m.MeanArterial, err = r.sfloat("mean arterial pressure"); err != nil {
		return BloodPressure{}, err
	}
	if bit(flags, 1) {
		t, err := r.dateTime("timestamp")
		if err != nil {
			return BloodPressure{}, err
		}
		m.Timestamp = &t
	}
	if bit(flags, 2) {
		v, err := r.sfloat("pulse rate")
		if err != nil {
			return BloodPressure{}, err
		}
		m.PulseRate, m.PulseRateUnit = &v, "/min"
	}
	if bit(flags, 3) {
		v, err := r.u8("user ID (uint8)")
		if err != nil {
			return BloodPressure{}, err
		}
		m.UserID = &v
	}
	if bit(flags, 4) {
		at := r.off
		v, err := r.u16("measurement status (uint16)")
		if err != nil {
			return BloodPressure{}, err
		}
		rng := uint8(v>>3) & 3
		// Range value 3 is reserved: the device claims something the specification does
		// not define, so the pulse rate cannot be interpreted.
		if rng == 3 {
			return BloodPressure{}, r.fail(at, "measurement status pulse rate range (bits 3-4)", "is the reserved value 3")
		}
		m.Status = &v
		m.StatusBits = &BloodPressureStatus{
			BodyMovement:      bit(v, 0),
			CuffTooLoose:      bit(v, 1),
			IrregularPulse:    bit(v, 2),
			PulseRateInRange:  rng == 0,
			PulseRateTooHigh:  rng == 1,
			PulseRateTooLow:   rng == 2,
			ImproperPosition:  bit(v, 5),
			PulseRateRangeRaw: rng,
		}
	}
	if err := r.done(); err != nil {
		return BloodPressure{}, err
	}
	return m, nil
}

// Readings: systolic 8480-6, diastolic 8462-4, mean 8478-0 in mm[Hg] (kPa × 7.50062), and the
// cuff's pulse rate as heart rate 8867-4 (a non-invasive pulse rate, MDC_PULS_RATE_NON_INV,
// which the catalog files under 8867-4; 8889-8 is reserved for oximetry).
func (m BloodPressure) Readings() []Reading {
	f := 1.0
	if m.Unit == "kPa" {
		f = mmHgPerKPa
	}
	rs := make([]Reading, 0, 4)
	rs = appendReading(rs, "8480-6", m.Systolic.Float64()*f, "mm[Hg]")
	rs = appendReading(rs, "8462-4", m.Diastolic.Float64()*f, "mm[Hg]")
	rs = appendReading(rs, "8478-0", m.MeanArterial.Float64()*f, "mm[Hg]")
	if m.PulseRate != nil {
		rs = appendReading(rs, "8867-4", m.PulseRate.Float64(), "/min")
	}
	return rs
}
