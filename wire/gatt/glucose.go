package gatt

import (
	"time"

	"github.com/iomt/iomt"
)

// Glucose is a Glucose Measurement (0x2A18, Glucose Service 1.0).
type Glucose struct {
	Flags          uint8    `json:"flags"`
	SequenceNumber uint16   `json:"sequence_number"`
	BaseTime       DateTime `json:"base_time"`
	// TimeOffset is added to BaseTime to give the time of the measurement, in minutes.
	TimeOffset *int16 `json:"time_offset_min,omitempty"`
	// Time is BaseTime + TimeOffset as a local wall-clock time "YYYY-MM-DDThh:mm:ss", when
	// BaseTime is a complete date.
	Time string `json:"time,omitempty"`
	// Concentration is in Unit, "kg/L" or "mol/L", as the specification defines them.
	Concentration *Float `json:"concentration,omitempty"`
	Unit          string `json:"unit,omitempty"`
	// Type (low nibble) and SampleLocation (high nibble) of the Type-Sample Location field.
	Type               uint8  `json:"type,omitempty"`
	TypeName           string `json:"type_name,omitempty"`
	SampleLocation     uint8  `json:"sample_location,omitempty"`
	SampleLocationName string `json:"sample_location_name,omitempty"`
	// Status is the Sensor Status Annunciation as sent; StatusBits names its bits.
	Status     *uint16        `json:"sensor_status,omitempty"`
	StatusBits *GlucoseStatus `json:"sensor_status_bits,omitempty"`
	// ContextFollows says a Glucose Measurement Context (0x2A34) with the same sequence
	// number follows.
	ContextFollows bool `json:"context_information_follows"`
}

// GlucoseStatus are the Sensor Status Annunciation bits of a glucose measurement.
type GlucoseStatus struct {
	DeviceBatteryLow       bool `json:"device_battery_low"`
	SensorMalfunction      bool `json:"sensor_malfunction"`
	SampleSizeInsufficient bool `json:"sample_size_insufficient"`
	StripInsertionError    bool `json:"strip_insertion_error"`
	StripTypeIncorrect     bool `json:"strip_type_incorrect"`
	ResultTooHigh          bool `json:"result_higher_than_device_can_process"`
	ResultTooLow           bool `json:"result_lower_than_device_can_process"`
	TemperatureTooHigh     bool `json:"sensor_temperature_too_high"`
	TemperatureTooLow      bool `json:"sensor_temperature_too_low"`
	ReadInterrupted        bool `json:"sensor_read_interrupted"`
	GeneralDeviceFault     bool `json:"general_device_fault"`
	TimeFault              bool `json:"time_fault"`
}

func glucoseTypeName(t uint8) string {
	switch t {
	case 1:
		return "capillary whole blood"
	case 2:
		return "capillary plasma"
	case 3:
		return "venous whole blood"
	case 4:
		return "venous plasma"
	case 5:
		return "arterial whole blood"
	case 6:
		return "arterial plasma"
	case 7:
		return "undetermined whole blood"
	case 8:
		return "undetermined plasma"
	case 9:
		return "interstitial fluid (ISF)"
	case 10:
		return "control solution"
	}
	return ""
}

func glucoseLocationName(l uint8) string {
	switch l {
	case 1:
		return "finger"
	case 2:
		return "alternate site test (AST)"
	case 3:
		return "earlobe"
	case 4:
		return "control solution"
	case 15:
		return "not available"
	}
	return ""
}

// DecodeGlucose decodes a Glucose Measurement notification.
func DecodeGlucose(p []byte) (Glucose, error) {
	r := newReader(UUIDGlucoseMeasurement, p)
	flags, err := r.u8("flags (uint8)")
	if err != nil {
		return Glucose{}, err
	}
	m := Glucose{Flags: flags, ContextFollows: bit(flags, 4)}
	if m.SequenceNumber, err = r.u16("sequence number (uint16)"); err != nil {
		return Glucose{}, err
	}
	if m.BaseTime, err = r.dateTime("base time"); err != nil {
		return Glucose{}, err
	}
	var offset time.Duration
	typeAt := -1
	if bit(flags, 0) {
		v, err := r.u16("time offset (sint16)")
		if err != nil {
			return Glucose{}, err
		}
		o := int16(v)
		m.TimeOffset = &o
		offset = time.Duration(o) * time.Minute
	}
	if t, ok := m.BaseTime.Time(time.UTC); ok {
		m.Time = t.Add(offset).Format("2006-01-02T15:04:05")
	}
	if bit(flags, 1) {
		c, err := r.sfloat("glucose concentration")
		if err != nil {
			return Glucose{}, err
		}
		m.Concentration, m.Unit = &c, "kg/L"
		if bit(flags, 2) {
			m.Unit = "mol/L"
		}
		typeAt = r.off
		ts, err := r.u8("type-sample location (nibbles)")
		if err != nil {
			return Glucose{}, err
		}
		m.Type, m.SampleLocation = ts&0x0F, ts>>4
	}
	if bit(flags, 3) {
		v, err := r.u16("sensor status annunciation (uint16)")
		if err != nil {
			return Glucose{}, err
		}
		m.Status = &v
		m.StatusBits = &GlucoseStatus{
			DeviceBatteryLow:       bit(v, 0),
			SensorMalfunction:      bit(v, 1),
			SampleSizeInsufficient: bit(v, 2),
			StripInsertionError:    bit(v, 3),
			StripTypeIncorrect:     bit(v, 4),
			ResultTooHigh:          bit(v, 5),
			ResultTooLow:           bit(v, 6),
			TemperatureTooHigh:     bit(v, 7),
			TemperatureTooLow:      bit(v, 8),
			ReadInterrupted:        bit(v, 9),
			GeneralDeviceFault:     bit(v, 10),
			TimeFault:              bit(v, 11),
		}
	}
	if err := r.done(); err != nil {
		return Glucose{}, err
	}
	// Checked after the length so that a payload shorter than its flags is reported as such,
	// not as whatever byte happens to sit where the type should be.
	if typeAt >= 0 {
		if m.TypeName = glucoseTypeName(m.Type); m.TypeName == "" {
			return Glucose{}, r.fail(typeAt, "type (low nibble)", "%d is reserved (valid 1..10)", m.Type)
		}
		if m.SampleLocationName = glucoseLocationName(m.SampleLocation); m.SampleLocationName == "" {
			return Glucose{}, r.fail(typeAt, "sample location (high nibble)", "%d is reserved (valid 1..4, 15)", m.SampleLocation)
		}
	}
	return m, nil
}

// Code is the catalog code the sample type calls for: 2339-0 for whole blood (and any type
// the meter could not determine as plasma), 2345-7 for plasma, 99504-3 for interstitial
// fluid; "" for a control-solution test, which is a check of the meter, not of the patient.
func (m Glucose) Code() string {
	if m.Type == 10 || m.SampleLocation == 4 {
		return ""
	}
	switch m.Type {
	case 2, 4, 6, 8:
		return "2345-7"
	case 9:
		return "99504-3"
	}
	return "2339-0"
}

// Readings: the concentration in mg/dL (kg/L × 100000; mol/L × 1000 × 18.016) under Code.
func (m Glucose) Readings() []Reading {
	code := m.Code()
	if m.Concentration == nil || code == "" {
		return nil
	}
	v := m.Concentration.Float64()
	if m.Unit == "mol/L" {
		v *= 1000 * iomt.MgdLPerMmolL
	} else {
		v *= mgdLPerKgL
	}
	return appendReading(nil, code, v, "mg/dL")
}
