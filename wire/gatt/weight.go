package gatt

// Weight is a Weight Measurement (0x2A9D, Weight Scale Service 1.0).
type Weight struct {
	Flags uint8 `json:"flags"`
	// Imperial is flag bit 0: weight in lb (0.01) and height in inches (0.1) instead of kg
	// (0.005) and metres (0.001).
	Imperial bool `json:"imperial"`
	// WeightRaw is the uint16 as sent; Weight is WeightRaw × resolution in WeightUnit.
	WeightRaw  uint16  `json:"weight_raw"`
	Weight     float64 `json:"weight"`
	WeightUnit string  `json:"weight_unit"` // "kg" or "[lb_av]"
	// Unsuccessful is true when the scale sent 0xFFFF, "measurement unsuccessful": Weight
	// then holds the arithmetic of the sentinel, not a weight, and yields no reading.
	Unsuccessful bool      `json:"measurement_unsuccessful"`
	Timestamp    *DateTime `json:"timestamp,omitempty"`
	// UserID is the scale's user index; 255 means unknown user.
	UserID *uint8 `json:"user_id,omitempty"`
	// BMI in BMIUnit ("kg/m2", 0.1 resolution) and Height in HeightUnit ("m" or "[in_i]").
	BMIRaw     *uint16  `json:"bmi_raw,omitempty"`
	BMI        *float64 `json:"bmi,omitempty"`
	BMIUnit    string   `json:"bmi_unit,omitempty"`
	HeightRaw  *uint16  `json:"height_raw,omitempty"`
	Height     *float64 `json:"height,omitempty"`
	HeightUnit string   `json:"height_unit,omitempty"`
}

// DecodeWeight decodes a Weight Measurement indication.
func DecodeWeight(p []byte) (Weight, error) {
	r := newReader(UUIDWeightMeasurement, p)
	flags, err := r.u8("flags (uint8)")
	if err != nil {
		return Weight{}, err
	}
	m := Weight{Flags: flags, Imperial: bit(flags, 0)}
	if m.WeightRaw, err = r.u16("weight (uint16)"); err != nil {
		return Weight{}, err
	}
	// Dividing an exact integer by a power of ten rounds once, so 513 × 0.005 prints 2.565.
	if m.Imperial {
		m.Weight, m.WeightUnit = float64(m.WeightRaw)/100, "[lb_av]"
	} else {
		m.Weight, m.WeightUnit = float64(uint32(m.WeightRaw)*5)/1000, "kg"
	}
	m.Unsuccessful = m.WeightRaw == 0xFFFF
	if bit(flags, 1) {
		t, err := r.dateTime("timestamp")
		if err != nil {
			return Weight{}, err
		}
		m.Timestamp = &t
	}
	if bit(flags, 2) {
		v, err := r.u8("user ID (uint8)")
		if err != nil {
			return Weight{}, err
		}
		m.UserID = &v
	}
	if bit(flags, 3) {
		bmi, err := r.u16("BMI (uint16)")
		if err != nil {
			return Weight{}, err
		}
		h, err := r.u16("height (uint16)")
		if err != nil {
			return Weight{}, err
		}
		b := float64(bmi) / 10
		m.BMIRaw, m.BMI, m.BMIUnit = &bmi, &b, "kg/m2"
		hv, unit := float64(h)/1000, "m"
		if m.Imperial {
			hv, unit = float64(h)/10, "[in_i]"
		}
		m.HeightRaw, m.Height, m.HeightUnit = &h, &hv, unit
	}
	if err := r.done(); err != nil {
		return Weight{}, err
	}
	return m, nil
}

// Readings: body weight 29463-7 in kg (lb × 0.45359237), and when sent, BMI 39156-5 in kg/m2
// and body height 8302-2 in cm (m × 100, in × 2.54). An unsuccessful measurement yields none.
func (m Weight) Readings() []Reading {
	if m.Unsuccessful {
		return nil
	}
	rs := make([]Reading, 0, 3)
	w := m.Weight
	if m.Imperial {
		w *= kgPerLb
	}
	rs = append(rs, Reading{Code: "29463-7", Value: w, Unit: "kg"})
	if m.BMI != nil {
		rs = append(rs, Reading{Code: "39156-5", Value: *m.BMI, Unit: "kg/m2"})
	}
	if m.Height != nil {
		h := *m.Height * 100
		if m.Imperial {
			h = *m.Height * cmPerInch
		}
		rs = append(rs, Reading{Code: "8302-2", Value: h, Unit: "cm"})
	}
	return rs
}
