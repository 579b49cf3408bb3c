package gatt

// Temperature is a Temperature Measurement (0x2A1C, Health Thermometer Service 1.0).
type Temperature struct {
	Flags       uint8     `json:"flags"`
	Temperature Float     `json:"temperature"`
	Unit        string    `json:"unit"` // "Cel" or "[degF]"
	Timestamp   *DateTime `json:"timestamp,omitempty"`
	// Type is the body site (Temperature Type, 1..9) and TypeName its name.
	Type     *uint8 `json:"temperature_type,omitempty"`
	TypeName string `json:"temperature_type_name,omitempty"`
}

// temperatureTypeName names the Temperature Type values; 0 and 10..255 are reserved.
func temperatureTypeName(t uint8) string {
	switch t {
	case 1:
		return "armpit"
	case 2:
		return "body (general)"
	case 3:
		return "ear (usually earlobe)"
	case 4:
		return "finger"
	case 5:
		return "gastro-intestinal tract"
	case 6:
		return "mouth"
	case 7:
		return "rectum"
	case 8:
		return "toe"
	case 9:
		return "tympanum (ear drum)"
	}
	return ""
}

// DecodeTemperature decodes a Temperature Measurement indication.
func DecodeTemperature(p []byte) (Temperature, error) {
	r := newReader(UUIDTemperatureMeasurement, p)
	flags, err := r.u8("flags (uint8)")
	if err != nil {
		return Temperature{}, err
	}
	m := Temperature{Flags: flags, Unit: "Cel"}
	if bit(flags, 0) {
		m.Unit = "[degF]"
	}
	if m.Temperature, err = r.float("temperature"); err != nil {
		return Temperature{}, err
	}
	if bit(flags, 1) {
		t, err := r.dateTime("timestamp")
		if err != nil {
			return Temperature{}, err
		}
		m.Timestamp = &t
	}
	if bit(flags, 2) {
		at := r.off
		v, err := r.u8("temperature type (uint8)")
		if err != nil {
			return Temperature{}, err
		}
		m.TypeName = temperatureTypeName(v)
		if m.TypeName == "" {
			return Temperature{}, r.fail(at, "temperature type (uint8)", "%d is reserved (valid 1..9)", v)
		}
		m.Type = &v
	}
	if err := r.done(); err != nil {
		return Temperature{}, err
	}
	return m, nil
}

// Readings: body temperature 8310-5 in Cel ((°F − 32) × 5/9).
func (m Temperature) Readings() []Reading {
	v := m.Temperature.Float64()
	if m.Unit == "[degF]" {
		v = (v - 32) * 5 / 9
	}
	return appendReading(nil, "8310-5", v, "Cel")
}
