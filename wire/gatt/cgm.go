package gatt

// CGM is a CGM Measurement notification (0x2AA7, Continuous Glucose Monitoring Service 1.0.1):
// one or more records back to back, each starting with its own size.
type CGM struct {
	Records []CGMRecord `json:"records"`
}

// CGMRecord is one CGM measurement record.
type CGMRecord struct {
	Size  uint8 `json:"size"`
	Flags uint8 `json:"flags"`
	// Glucose is the interstitial glucose concentration in Unit ("mg/dL").
	Glucose Float  `json:"glucose"`
	Unit    string `json:"unit"`
	// TimeOffset is minutes since the session start time (CGM Session Start Time, 0x2AAA).
	TimeOffset uint16 `json:"time_offset_min"`
	// The Sensor Status Annunciation octets the flags announce, as sent; StatusBits names
	// their bits when any is present.
	StatusOctet  *uint8     `json:"status_octet,omitempty"`
	CalTempOctet *uint8     `json:"cal_temp_octet,omitempty"`
	WarningOctet *uint8     `json:"warning_octet,omitempty"`
	StatusBits   *CGMStatus `json:"sensor_status_bits,omitempty"`
	// Trend is the rate of change in TrendUnit ("mg/dL/min").
	Trend     *Float `json:"trend,omitempty"`
	TrendUnit string `json:"trend_unit,omitempty"`
	// Quality is the sensor's confidence in QualityUnit ("%").
	Quality     *Float `json:"quality,omitempty"`
	QualityUnit string `json:"quality_unit,omitempty"`
	// Secured says the record carried an E2E-CRC, which matched (a mismatch is refused).
	Secured bool    `json:"secured"`
	CRC     *uint16 `json:"e2e_crc,omitempty"`
}

// CGMStatus are the Sensor Status Annunciation bits; those of an absent octet stay false.
type CGMStatus struct {
	SessionStopped              bool `json:"session_stopped"`
	DeviceBatteryLow            bool `json:"device_battery_low"`
	SensorTypeIncorrect         bool `json:"sensor_type_incorrect_for_device"`
	SensorMalfunction           bool `json:"sensor_malfunction"`
	DeviceSpecificAlert         bool `json:"device_specific_alert"`
	GeneralDeviceFault          bool `json:"general_device_fault"`
	TimeSyncRequired            bool `json:"time_synchronization_required"`
	CalibrationNotAllowed       bool `json:"calibration_not_allowed"`
	CalibrationRecommended      bool `json:"calibration_recommended"`
	CalibrationRequired         bool `json:"calibration_required"`
	SensorTemperatureTooHigh    bool `json:"sensor_temperature_too_high"`
	SensorTemperatureTooLow     bool `json:"sensor_temperature_too_low"`
	ResultBelowPatientLow       bool `json:"result_lower_than_patient_low_level"`
	ResultAbovePatientHigh      bool `json:"result_higher_than_patient_high_level"`
	ResultBelowHypo             bool `json:"result_lower_than_hypo_level"`
	ResultAboveHyper            bool `json:"result_higher_than_hyper_level"`
	RateOfDecreaseExceeded      bool `json:"rate_of_decrease_exceeded"`
	RateOfIncreaseExceeded      bool `json:"rate_of_increase_exceeded"`
	ResultBelowDeviceCanProcess bool `json:"result_lower_than_device_can_process"`
	ResultAboveDeviceCanProcess bool `json:"result_higher_than_device_can_process"`
}

// cgmMinRecord is size, flags, glucose and time offset.
const cgmMinRecord = 6

// DecodeCGM decodes a CGM Measurement notification. Whether a record carries an E2E-CRC is
// known from the CGM Feature characteristic; the record's size tells the same thing (two bytes
// more than its fields), so this decoder needs no feature state: a record with a CRC is
// verified and refused on mismatch, a size that fits neither is refused.
func DecodeCGM(p []byte) (CGM, error) {
	r := newReader(UUIDCGMMeasurement, p)
	if len(p) == 0 {
		_, err := r.u8("size (uint8)")
		return CGM{}, err
	}
	var m CGM
	for r.off < len(p) {
		rec, err := decodeCGMRecord(&r)
		if err != nil {
			return CGM{}, err
		}
		m.Records = append(m.Records, rec)
	}
	return m, nil
}

func decodeCGMRecord(r *reader) (CGMRecord, error) {
	start := r.off
	r.end = len(r.b)
	size, err := r.u8("size (uint8)")
	if err != nil {
		return CGMRecord{}, err
	}
	if size < cgmMinRecord {
		return CGMRecord{}, r.fail(start, "size (uint8)", "%d is less than the %d bytes every record has", size, cgmMinRecord)
	}
	if int(size) > len(r.b)-start {
		return CGMRecord{}, r.fail(start, "size (uint8)", "%d but %d bytes left in the payload", size, len(r.b)-start)
	}
	// Fields are read within the record so that a short record is not completed from the next.
	r.end = start + int(size)
	rec := CGMRecord{Size: size, Unit: "mg/dL"}
	if rec.Flags, err = r.u8("flags (uint8)"); err != nil {
		return CGMRecord{}, err
	}
	if rec.Glucose, err = r.sfloat("glucose concentration"); err != nil {
		return CGMRecord{}, err
	}
	if rec.TimeOffset, err = r.u16("time offset (uint16)"); err != nil {
		return CGMRecord{}, err
	}
	f := rec.Flags
	var ssa uint32
	// The annunciation octets come in the order Status, Cal/Temp, Warning (bits 0-7, 8-15,
	// 16-23 of the Sensor Status Annunciation), each only if its flag is set.
	for _, o := range []struct {
		flag  uint
		shift uint
		field string
		dst   **uint8
	}{
		{7, 0, "sensor status annunciation status octet (uint8)", &rec.StatusOctet},
		{6, 8, "sensor status annunciation cal/temp octet (uint8)", &rec.CalTempOctet},
		{5, 16, "sensor status annunciation warning octet (uint8)", &rec.WarningOctet},
	} {
		if !bit(f, o.flag) {
			continue
		}
		v, err := r.u8(o.field)
		if err != nil {
			return CGMRecord{}, err
		}
		*o.dst = &v
		ssa |= uint32(v) << o.shift
	}
	if f&0xE0 != 0 {
		rec.StatusBits = &CGMStatus{
			SessionStopped:              bit(ssa, 0),
			DeviceBatteryLow:            bit(ssa, 1),
			SensorTypeIncorrect:         bit(ssa, 2),
			SensorMalfunction:           bit(ssa, 3),
			DeviceSpecificAlert:         bit(ssa, 4),
			GeneralDeviceFault:          bit(ssa, 5),
			TimeSyncRequired:            bit(ssa, 8),
			CalibrationNotAllowed:       bit(ssa, 9),
			CalibrationRecommended:      bit(ssa, 10),
			CalibrationRequired:         bit(ssa, 11),
			SensorTemperatureTooHigh:    bit(ssa, 12),
			SensorTemperatureTooLow:     bit(ssa, 13),
			ResultBelowPatientLow:       bit(ssa, 16),
			ResultAbovePatientHigh:      bit(ssa, 17),
			ResultBelowHypo:             bit(ssa, 18),
			ResultAboveHyper:            bit(ssa, 19),
			RateOfDecreaseExceeded:      bit(ssa, 20),
			RateOfIncreaseExceeded:      bit(ssa, 21),
			ResultBelowDeviceCanProcess: bit(ssa, 22),
			ResultAboveDeviceCanProcess: bit(ssa, 23),
		}
	}
	if bit(f, 0) {
		v, err := r.sfloat("trend information")
		if err != nil {
			return CGMRecord{}, err
		}
		rec.Trend, rec.TrendUnit = &v, "mg/dL/min"
	}
	if bit(f, 1) {
		v, err := r.sfloat("quality")
		if err != nil {
			return CGMRecord{}, err
		}
		rec.Quality, rec.QualityUnit = &v, "%"
	}
	switch r.left() {
	case 0:
	case 2:
		at := r.off
		sent, _ := r.u16("E2E-CRC (uint16)")
		if got := CRC16MCRF4XX(r.b[start:at]); got != sent {
			return CGMRecord{}, r.fail(at, "E2E-CRC (uint16)", "0x%04X does not match 0x%04X computed over bytes %d..%d", sent, got, start, at-1)
		}
		rec.Secured, rec.CRC = true, &sent
	default:
		return CGMRecord{}, r.fail(r.off, "end of record", "expected, %d bytes left before the size %d is reached (an E2E-CRC is 2)", r.left(), size)
	}
	return rec, nil
}

// Readings: each record's glucose as interstitial glucose 99504-3 in mg/dL. The time of each
// is its TimeOffset after the session start, which the caller knows.
func (m CGM) Readings() []Reading {
	rs := make([]Reading, 0, len(m.Records))
	for _, rec := range m.Records {
		rs = appendReading(rs, "99504-3", rec.Glucose.Float64(), "mg/dL")
	}
	return rs
}
