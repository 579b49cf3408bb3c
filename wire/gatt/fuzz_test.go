package gatt

import (
	"encoding/json"
	"errors"
	"math"
	"testing"
)

// fuzzDecoder runs Decode for one characteristic on arbitrary bytes. A refusal must be an
// *Error within the payload; a success must marshal to JSON, give finite readings, carry no
// reserved special value, and account for every byte: size(v) recomputes the payload length
// from the decoded flags and fields, independently of the decoder's walk.
func fuzzDecoder(f *testing.F, uuid uint16, size func(t *testing.T, v any) int) {
	for _, v := range vectors {
		if v.uuid == uuid {
			f.Add(hexb(f, v.hex))
		}
	}
	f.Fuzz(func(t *testing.T, p []byte) {
		v, err := Decode(uuid, p)
		if err != nil {
			var ge *Error
			if !errors.As(err, &ge) || ge.UUID != uuid || ge.Offset < 0 || ge.Offset > len(p) || ge.Field == "" || ge.Reason == "" {
				t.Fatalf("refusal %v is not a well-formed *Error", err)
			}
			return
		}
		if n := size(t, v); n != len(p) {
			t.Fatalf("decoded %+v accounts for %d bytes of %d", v, n, len(p))
		}
		b, err := json.Marshal(v)
		if err != nil || !json.Valid(b) {
			t.Fatalf("JSON: %v", err)
		}
		if m, ok := v.(Measurement); ok {
			for _, r := range m.Readings() {
				if math.IsNaN(r.Value) || math.IsInf(r.Value, 0) || r.Code == "" || r.Unit == "" {
					t.Fatalf("reading %+v", r)
				}
			}
		}
	})
}

func noReserved(t *testing.T, fs ...*Float) {
	t.Helper()
	for _, f := range fs {
		if f != nil && f.Special == Reserved {
			t.Fatal("reserved special value accepted")
		}
	}
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

func FuzzHeartRate(f *testing.F) {
	fuzzDecoder(f, UUIDHeartRateMeasurement, func(t *testing.T, v any) int {
		m := v.(HeartRate)
		if m.HeartRate16 != bit(m.Flags, 0) || !m.HeartRate16 && m.HeartRate > 255 {
			t.Fatalf("heart rate %d with flags %#x", m.HeartRate, m.Flags)
		}
		if (m.SensorContact != nil) != bit(m.Flags, 2) || len(m.RRIntervals) != len(m.RRIntervalsMS) || bit(m.Flags, 4) != (len(m.RRIntervals) > 0) {
			t.Fatalf("inconsistent %+v", m)
		}
		return 2 + b2i(m.HeartRate16) + 2*b2i(m.EnergyExpended != nil) + 2*len(m.RRIntervals)
	})
}

func FuzzBloodPressure(f *testing.F) {
	fuzzDecoder(f, UUIDBloodPressureMeasurement, func(t *testing.T, v any) int {
		m := v.(BloodPressure)
		noReserved(t, &m.Systolic, &m.Diastolic, &m.MeanArterial, m.PulseRate)
		if m.StatusBits != nil && m.StatusBits.PulseRateRangeRaw == 3 {
			t.Fatal("reserved pulse rate range accepted")
		}
		return 7 + 7*b2i(m.Timestamp != nil) + 2*b2i(m.PulseRate != nil) + b2i(m.UserID != nil) + 2*b2i(m.Status != nil)
	})
}

func FuzzTemperature(f *testing.F) {
	fuzzDecoder(f, UUIDTemperatureMeasurement, func(t *testing.T, v any) int {
		m := v.(Temperature)
		noReserved(t, &m.Temperature)
		if m.Type != nil && (*m.Type < 1 || *m.Type > 9) {
			t.Fatalf("temperature type %d accepted", *m.Type)
		}
		return 5 + 7*b2i(m.Timestamp != nil) + b2i(m.Type != nil)
	})
}

func FuzzGlucose(f *testing.F) {
	fuzzDecoder(f, UUIDGlucoseMeasurement, func(t *testing.T, v any) int {
		m := v.(Glucose)
		noReserved(t, m.Concentration)
		if m.Concentration != nil && (m.TypeName == "" || m.SampleLocationName == "") {
			t.Fatalf("reserved type/location accepted: %+v", m)
		}
		return 10 + 2*b2i(m.TimeOffset != nil) + 3*b2i(m.Concentration != nil) + 2*b2i(m.Status != nil)
	})
}

func FuzzCGM(f *testing.F) {
	fuzzDecoder(f, UUIDCGMMeasurement, func(t *testing.T, v any) int {
		m := v.(CGM)
		n := 0
		for _, r := range m.Records {
			noReserved(t, &r.Glucose, r.Trend, r.Quality)
			fields := 6 + b2i(r.StatusOctet != nil) + b2i(r.CalTempOctet != nil) + b2i(r.WarningOctet != nil) +
				2*b2i(r.Trend != nil) + 2*b2i(r.Quality != nil)
			if int(r.Size) != fields+2*b2i(r.Secured) {
				t.Fatalf("record size %d, fields %d, secured %v", r.Size, fields, r.Secured)
			}
			n += int(r.Size)
		}
		if len(m.Records) == 0 {
			t.Fatal("no records")
		}
		return n
	})
}

func FuzzPLXSpotCheck(f *testing.F) {
	fuzzDecoder(f, UUIDPLXSpotCheck, func(t *testing.T, v any) int {
		m := v.(PLXSpotCheck)
		noReserved(t, &m.SpO2, &m.PulseRate, m.PulseAmplitudeIndex)
		if m.DeviceSensorStatus != nil && *m.DeviceSensorStatus > 0xFFFFFF {
			t.Fatal("device status wider than 24 bits")
		}
		return 5 + 7*b2i(m.Timestamp != nil) + 2*b2i(m.MeasurementStatus != nil) + 3*b2i(m.DeviceSensorStatus != nil) + 2*b2i(m.PulseAmplitudeIndex != nil)
	})
}

func FuzzPLXContinuous(f *testing.F) {
	fuzzDecoder(f, UUIDPLXContinuous, func(t *testing.T, v any) int {
		m := v.(PLXContinuous)
		noReserved(t, &m.SpO2, &m.PulseRate, m.SpO2Fast, m.PulseRateFast, m.SpO2Slow, m.PulseRateSlow, m.PulseAmplitudeIndex)
		return 5 + 4*b2i(m.SpO2Fast != nil) + 4*b2i(m.SpO2Slow != nil) + 2*b2i(m.MeasurementStatus != nil) + 3*b2i(m.DeviceSensorStatus != nil) + 2*b2i(m.PulseAmplitudeIndex != nil)
	})
}

func FuzzPLXFeatures(f *testing.F) {
	fuzzDecoder(f, UUIDPLXFeatures, func(t *testing.T, v any) int {
		m := v.(PLXFeatures)
		return 2 + 2*b2i(m.MeasurementStatusSupport != nil) + 3*b2i(m.DeviceSensorSupport != nil)
	})
}

func FuzzWeight(f *testing.F) {
	fuzzDecoder(f, UUIDWeightMeasurement, func(t *testing.T, v any) int {
		m := v.(Weight)
		if m.Weight < 0 || m.Weight > 655.35 || m.Unsuccessful != (m.WeightRaw == 0xFFFF) {
			t.Fatalf("weight %+v", m)
		}
		return 3 + 7*b2i(m.Timestamp != nil) + b2i(m.UserID != nil) + 4*b2i(m.BMI != nil)
	})
}

// FuzzSFloat: every SFLOAT prints as an exact decimal whose parse equals Float64.
func FuzzSFloat(f *testing.F) {
	f.Add(uint16(0x07FF), uint32(0xFE000EB0))
	f.Fuzz(func(t *testing.T, s uint16, l uint32) {
		for _, x := range []Float{SFloat(s), Float32(l)} {
			b, err := x.MarshalJSON()
			if err != nil || !json.Valid(b) {
				t.Fatalf("%+v: JSON %s %v", x, b, err)
			}
			if x.IsNumber() {
				var v float64
				if err := json.Unmarshal(b, &v); err != nil || v != x.Float64() {
					t.Fatalf("%+v: %s parses to %v, Float64 %v", x, b, v, x.Float64())
				}
			}
		}
	})
}
