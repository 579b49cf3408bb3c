package gatt

import "github.com/iomt/iomt/codes"

// PLXSpotCheck is a PLX Spot-Check Measurement (0x2A5E, Pulse Oximeter Service 1.0).
type PLXSpotCheck struct {
	Flags uint8 `json:"flags"`
	// SpO2 in SpO2Unit ("%") and PulseRate in PulseRateUnit ("/min").
	SpO2          Float     `json:"spo2"`
	SpO2Unit      string    `json:"spo2_unit"`
	PulseRate     Float     `json:"pulse_rate"`
	PulseRateUnit string    `json:"pulse_rate_unit"`
	Timestamp     *DateTime `json:"timestamp,omitempty"`
	// DeviceClockNotSet (flag bit 4) says Timestamp is not to be trusted.
	DeviceClockNotSet bool `json:"device_clock_not_set"`
	PLXStatus
}

// PLXContinuous is a PLX Continuous Measurement (0x2A5F): the normal reading and, when the
// device averages over other windows, its fast and slow ones.
type PLXContinuous struct {
	Flags         uint8  `json:"flags"`
	SpO2          Float  `json:"spo2"`
	SpO2Unit      string `json:"spo2_unit"`
	PulseRate     Float  `json:"pulse_rate"`
	PulseRateUnit string `json:"pulse_rate_unit"`
	SpO2Fast      *Float `json:"spo2_fast,omitempty"`
	PulseRateFast *Float `json:"pulse_rate_fast,omitempty"`
	SpO2Slow      *Float `json:"spo2_slow,omitempty"`
	PulseRateSlow *Float `json:"pulse_rate_slow,omitempty"`
	PLXStatus
}

// PLXStatus holds the optional fields both PLX measurements end with.
type PLXStatus struct {
	// MeasurementStatus is the field as sent; MeasurementStatusBits names its bits.
	MeasurementStatus     *uint16                `json:"measurement_status,omitempty"`
	MeasurementStatusBits *PLXMeasurementStatus  `json:"measurement_status_bits,omitempty"`
	DeviceSensorStatus    *uint32                `json:"device_sensor_status,omitempty"`
	DeviceSensorBits      *PLXDeviceSensorStatus `json:"device_sensor_status_bits,omitempty"`
	// PulseAmplitudeIndex in "%" (perfusion index).
	PulseAmplitudeIndex *Float `json:"pulse_amplitude_index,omitempty"`
	PAIUnit             string `json:"pulse_amplitude_index_unit,omitempty"`
}

// PLXMeasurementStatus are the Measurement Status bits (5..15; 0..4 are reserved).
type PLXMeasurementStatus struct {
	MeasurementOngoing      bool `json:"measurement_ongoing"`
	EarlyEstimatedData      bool `json:"early_estimated_data"`
	ValidatedData           bool `json:"validated_data"`
	FullyQualifiedData      bool `json:"fully_qualified_data"`
	FromMeasurementStorage  bool `json:"data_from_measurement_storage"`
	ForDemonstration        bool `json:"data_for_demonstration"`
	ForTesting              bool `json:"data_for_testing"`
	CalibrationOngoing      bool `json:"calibration_ongoing"`
	MeasurementUnavailable  bool `json:"measurement_unavailable"`
	QuestionableMeasurement bool `json:"questionable_measurement_detected"`
	InvalidMeasurement      bool `json:"invalid_measurement_detected"`
}

// PLXDeviceSensorStatus are the Device and Sensor Status bits (0..15; 16..23 are reserved).
type PLXDeviceSensorStatus struct {
	ExtendedDisplayUpdate     bool `json:"extended_display_update_ongoing"`
	EquipmentMalfunction      bool `json:"equipment_malfunction_detected"`
	SignalProcessingIrregular bool `json:"signal_processing_irregularity_detected"`
	InadequateSignal          bool `json:"inadequate_signal_detected"`
	PoorSignal                bool `json:"poor_signal_detected"`
	LowPerfusion              bool `json:"low_perfusion_detected"`
	ErraticSignal             bool `json:"erratic_signal_detected"`
	NonPulsatileSignal        bool `json:"non_pulsatile_signal_detected"`
	QuestionablePulse         bool `json:"questionable_pulse_detected"`
	SignalAnalysisOngoing     bool `json:"signal_analysis_ongoing"`
	SensorInterference        bool `json:"sensor_interference_detected"`
	SensorUnconnected         bool `json:"sensor_unconnected_to_user"`
	UnknownSensor             bool `json:"unknown_sensor_connected"`
	SensorDisplaced           bool `json:"sensor_displaced"`
	SensorMalfunctioning      bool `json:"sensor_malfunctioning"`
	SensorDisconnected        bool `json:"sensor_disconnected"`
}

func plxMeasurementStatus(v uint16) *PLXMeasurementStatus {
	return &PLXMeasurementStatus{
		MeasurementOngoing:      bit(v, 5),
		EarlyEstimatedData:      bit(v, 6),
		ValidatedData:           bit(v, 7),
		FullyQualifiedData:      bit(v, 8),
		FromMeasurementStorage:  bit(v, 9),
		ForDemonstration:        bit(v, 10),
		ForTesting:              bit(v, 11),
		CalibrationOngoing:      bit(v, 12),
		MeasurementUnavailable:  bit(v, 13),
		QuestionableMeasurement: bit(v, 14),
		InvalidMeasurement:      bit(v, 15),
	}
}

// plxDeviceSensorStatus reads the Device and Sensor Status field, whose low 16 bits are
// IEEE 11073-10404's MDC_PULS_OXIM_DEV_STATUS as the codes catalog numbers them.
func plxDeviceSensorStatus(v uint32) *PLXDeviceSensorStatus {
	return &PLXDeviceSensorStatus{
		ExtendedDisplayUpdate:     v&codes.OxExtendedUpdate != 0,
		EquipmentMalfunction:      v&codes.OxEquipmentMalfunction != 0,
		SignalProcessingIrregular: v&codes.OxProcessingIrregular != 0,
		InadequateSignal:          v&codes.OxInadequate != 0,
		PoorSignal:                v&codes.OxPoor != 0,
		LowPerfusion:              v&codes.OxLowPerfusion != 0,
		ErraticSignal:             v&codes.OxErratic != 0,
		NonPulsatileSignal:        v&codes.OxNonPulsatile != 0,
		QuestionablePulse:         v&codes.OxPulseQuestionable != 0,
		SignalAnalysisOngoing:     v&codes.OxSearching != 0,
		SensorInterference:        v&codes.OxInterference != 0,
		SensorUnconnected:         v&codes.OxSensorOff != 0,
		UnknownSensor:             v&codes.OxSensorUnsupported != 0,
		SensorDisplaced:           v&codes.OxSensorDisplaced != 0,
		SensorMalfunctioning:      v&codes.OxSensorMalfunction != 0,
		SensorDisconnected:        v&codes.OxSensorDisconnected != 0,
	}
}

// read reads the fields both PLX measurements end with, as their flags announce.
func (s *PLXStatus) read(r *reader, status, devSensor, pai bool) error {
	if status {
		v, err := r.u16("measurement status (uint16)")
		if err != nil {
			return err
		}
		s.MeasurementStatus, s.MeasurementStatusBits = &v, plxMeasurementStatus(v)
	}
	if devSensor {
		v, err := r.u24("device and sensor status (uint24)")
		if err != nil {
			return err
		}
		s.DeviceSensorStatus, s.DeviceSensorBits = &v, plxDeviceSensorStatus(v)
	}
	if pai {
		v, err := r.sfloat("pulse amplitude index")
		if err != nil {
			return err
		}
		s.PulseAmplitudeIndex, s.PAIUnit = &v, "%"
	}
	return nil
}

// DecodePLXSpotCheck decodes a PLX Spot-Check Measurement indication.
func DecodePLXSpotCheck(p []byte) (PLXSpotCheck, error) {
	r := newReader(UUIDPLXSpotCheck, p)
	flags, err := r.u8("flags (uint8)")
	if err != nil {
		return PLXSpotCheck{}, err
	}
	m := PLXSpotCheck{Flags: flags, SpO2Unit: "%", PulseRateUnit: "/min", DeviceClockNotSet: bit(flags, 4)}
	if m.SpO2, err = r.sfloat("SpO2"); err != nil {
		return PLXSpotCheck{}, err
	}
	if m.PulseRate, err = r.sfloat("pulse rate"); err != nil {
		return PLXSpotCheck{}, err
	}
	if bit(flags, 0) {
		t, err := r.dateTime("timestamp")
		if err != nil {
			return PLXSpotCheck{}, err
		}
		m.Timestamp = &t
	}
	if err := m.PLXStatus.read(&r, bit(flags, 1), bit(flags, 2), bit(flags, 3)); err != nil {
		return PLXSpotCheck{}, err
	}
	if err := r.done(); err != nil {
		return PLXSpotCheck{}, err
	}
	return m, nil
}

// DecodePLXContinuous decodes a PLX Continuous Measurement notification.
func DecodePLXContinuous(p []byte) (PLXContinuous, error) {
	r := newReader(UUIDPLXContinuous, p)
	flags, err := r.u8("flags (uint8)")
	if err != nil {
		return PLXContinuous{}, err
	}
	m := PLXContinuous{Flags: flags, SpO2Unit: "%", PulseRateUnit: "/min"}
	if m.SpO2, err = r.sfloat("SpO2 normal"); err != nil {
		return PLXContinuous{}, err
	}
	if m.PulseRate, err = r.sfloat("pulse rate normal"); err != nil {
		return PLXContinuous{}, err
	}
	if bit(flags, 0) {
		s, err := r.sfloat("SpO2 fast")
		if err != nil {
			return PLXContinuous{}, err
		}
		pr, err := r.sfloat("pulse rate fast")
		if err != nil {
			return PLXContinuous{}, err
		}
		m.SpO2Fast, m.PulseRateFast = &s, &pr
	}
	if bit(flags, 1) {
		s, err := r.sfloat("SpO2 slow")
		if err != nil {
			return PLXContinuous{}, err
		}
		pr, err := r.sfloat("pulse rate slow")
		if err != nil {
			return PLXContinuous{}, err
		}
		m.SpO2Slow, m.PulseRateSlow = &s, &pr
	}
	if err := m.PLXStatus.read(&r, bit(flags, 2), bit(flags, 3), bit(flags, 4)); err != nil {
		return PLXContinuous{}, err
	}
	if err := r.done(); err != nil {
		return PLXContinuous{}, err
	}
	return m, nil
}

// plxReadings gives SpO2 59408-5 in % and pulse rate 8889-8 (by oximetry) in /min, and the
// device and sensor status when the device sent it, which the alarms read (a probe off or a
// poor signal suppresses the oximeter's physiological alarms). Nothing for demonstration or
// test data, which belong in no patient's record; only the status when the probe is off or the
// measurement status says the value is unavailable or invalid: such a value is not the
// patient's.
func plxReadings(spo2, pr Float, s PLXStatus) []Reading {
	b := s.MeasurementStatusBits
	if b != nil && (b.ForDemonstration || b.ForTesting) {
		return nil
	}
	rs := make([]Reading, 0, 3)
	usable := b == nil || !(b.MeasurementUnavailable || b.InvalidMeasurement)
	// The status field's low 16 bits are 11073-10404's BITS-16 (codes.OximeterStatus), bit for bit.
	var bits uint16
	if s.DeviceSensorStatus != nil {
		bits = uint16(*s.DeviceSensorStatus)
		if off, _ := codes.OximeterQuality(bits); off {
			usable = false
		}
	}
	if usable {
		rs = appendReading(rs, "59408-5", spo2.Float64(), "%")
		rs = appendReading(rs, "8889-8", pr.Float64(), "/min")
	}
	if s.DeviceSensorStatus != nil {
		rs = append(rs, Reading{Code: codes.OximeterStatus, Value: float64(bits), Unit: "1"})
	}
	return rs
}

// Readings: SpO2 59408-5 (%), pulse rate 8889-8 (/min) and the device and sensor status; see
// plxReadings for when the values are left out.
func (m PLXSpotCheck) Readings() []Reading { return plxReadings(m.SpO2, m.PulseRate, m.PLXStatus) }

// Readings: the normal SpO2 59408-5 (%) and pulse rate 8889-8 (/min), as for PLXSpotCheck;
// the fast and slow averages are other views of the same signal and are not stored twice.
func (m PLXContinuous) Readings() []Reading {
	return plxReadings(m.SpO2, m.PulseRate, m.PLXStatus)
}

// PLXFeatures is the PLX Features characteristic (0x2A60): what the oximeter supports, read
// once after connecting.
type PLXFeatures struct {
	Supported                uint16  `json:"supported_features"`
	MeasurementStatusSupport *uint16 `json:"measurement_status_support,omitempty"`
	DeviceSensorSupport      *uint32 `json:"device_sensor_status_support,omitempty"`
	// Named bits of Supported.
	HasMeasurementStatus   bool                   `json:"measurement_status_support_present"`
	HasDeviceSensorStatus  bool                   `json:"device_sensor_status_support_present"`
	MeasurementStorage     bool                   `json:"measurement_storage_for_spot_check"`
	SpotCheckTimestamp     bool                   `json:"timestamp_for_spot_check"`
	SpO2PRFast             bool                   `json:"spo2pr_fast"`
	SpO2PRSlow             bool                   `json:"spo2pr_slow"`
	PulseAmplitudeIndex    bool                   `json:"pulse_amplitude_index"`
	MultipleBonds          bool                   `json:"multiple_bonds"`
	MeasurementStatusBits  *PLXMeasurementStatus  `json:"measurement_status_support_bits,omitempty"`
	DeviceSensorStatusBits *PLXDeviceSensorStatus `json:"device_sensor_status_support_bits,omitempty"`
}

// DecodePLXFeatures decodes the PLX Features characteristic.
func DecodePLXFeatures(p []byte) (PLXFeatures, error) {
	r := newReader(UUIDPLXFeatures, p)
	f, err := r.u16("supported features (uint16)")
	if err != nil {
		return PLXFeatures{}, err
	}
	m := PLXFeatures{
		Supported:             f,
		HasMeasurementStatus:  bit(f, 0),
		HasDeviceSensorStatus: bit(f, 1),
		MeasurementStorage:    bit(f, 2),
		SpotCheckTimestamp:    bit(f, 3),
		SpO2PRFast:            bit(f, 4),
		SpO2PRSlow:            bit(f, 5),
		PulseAmplitudeIndex:   bit(f, 6),
		MultipleBonds:         bit(f, 7),
	}
	if m.HasMeasurementStatus {
		v, err := r.u16("measurement status support (uint16)")
		if err != nil {
			return PLXFeatures{}, err
		}
		m.MeasurementStatusSupport, m.MeasurementStatusBits = &v, plxMeasurementStatus(v)
	}
	if m.HasDeviceSensorStatus {
		v, err := r.u24("device and sensor status support (uint24)")
		if err != nil {
			return PLXFeatures{}, err
		}
		m.DeviceSensorSupport, m.DeviceSensorStatusBits = &v, plxDeviceSensorStatus(v)
	}
	if err := r.done(); err != nil {
		return PLXFeatures{}, err
	}
	return m, nil
}
