package gatt

import (
	"encoding/hex"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/iomt/iomt"
)

// The vectors of ../shared/data/gatt_vectors.md, hex copied here so the test runs without the
// data directory; TestVectorFileUnchanged checks that every hex string of the file is here.

func hexb(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatalf("bad hex %q: %v", s, err)
	}
	return b
}

func near(got, want, tol float64) bool { return math.Abs(got-want) <= tol }

type check struct {
	t    *testing.T
	name string
}

func (c check) eq(field string, got, want any) {
	c.t.Helper()
	if got != want {
		c.t.Errorf("%s: %s = %v, want %v", c.name, field, got, want)
	}
}

func (c check) f(field string, got Float, want float64) {
	c.t.Helper()
	if !got.IsNumber() || !near(got.Float64(), want, 1e-9) {
		c.t.Errorf("%s: %s = %v, want %v", c.name, field, got, want)
	}
}

func (c check) fp(field string, got *Float, want float64) {
	c.t.Helper()
	if got == nil {
		c.t.Errorf("%s: %s absent, want %v", c.name, field, want)
		return
	}
	c.f(field, *got, want)
}

func (c check) isNil(field string, ok bool) {
	c.t.Helper()
	if !ok {
		c.t.Errorf("%s: %s present, want absent", c.name, field)
	}
}

func (c check) date(field string, got *DateTime, want DateTime) {
	c.t.Helper()
	if got == nil {
		c.t.Errorf("%s: %s absent, want %v", c.name, field, want)
		return
	}
	if *got != want {
		c.t.Errorf("%s: %s = %v, want %v", c.name, field, *got, want)
	}
}

type vector struct {
	uuid  uint16
	name  string
	hex   string
	check func(c check, v any) // nil: INVALID, must be refused
}

var vectors = []vector{
	// Heart Rate Measurement — NRF HeartRateMeasurementDataCallbackTest.
	{0x2A37, "_simple", "00 55", func(c check, v any) {
		m := v.(HeartRate)
		c.eq("heart rate", m.HeartRate, uint16(85))
		c.eq("uint16", m.HeartRate16, false)
		c.isNil("sensor contact", m.SensorContact == nil)
		c.isNil("energy", m.EnergyExpended == nil)
		c.isNil("RR", m.RRIntervals == nil)
	}},
	{0x2A37, "_noContact", "04 FF", func(c check, v any) {
		m := v.(HeartRate)
		c.eq("heart rate", m.HeartRate, uint16(255))
		if m.SensorContact == nil || *m.SensorContact {
			c.t.Errorf("%s: contact %v, want supported and not detected", c.name, m.SensorContact)
		}
		c.isNil("energy", m.EnergyExpended == nil)
		c.isNil("RR", m.RRIntervals == nil)
	}},
	{0x2A37, "_uint8", "1E 55 32 00 21 00", func(c check, v any) {
		m := v.(HeartRate)
		c.eq("flags", m.Flags, uint8(0b11110))
		c.eq("heart rate", m.HeartRate, uint16(85))
		if m.SensorContact == nil || !*m.SensorContact {
			c.t.Errorf("%s: contact %v, want detected", c.name, m.SensorContact)
		}
		if m.EnergyExpended == nil || *m.EnergyExpended != 50 {
			c.t.Errorf("%s: energy %v, want 50", c.name, m.EnergyExpended)
		}
		c.eq("energy unit", m.EnergyExpendedUnit, "kJ")
		c.eq("RR", len(m.RRIntervals), 1)
		c.eq("RR[0]", m.RRIntervals[0], uint16(33))
		c.eq("RR unit", m.RRIntervalUnit, "1/1024 s")
		c.eq("RR[0] ms", m.RRIntervalsMS[0], 33*1000/1024.0)
	}},
	{0x2A37, "_uint16", "1F 01 01 32 01 01 00 02 01 FF FF", func(c check, v any) {
		m := v.(HeartRate)
		c.eq("flags", m.Flags, uint8(0b11111))
		c.eq("uint16", m.HeartRate16, true)
		c.eq("heart rate", m.HeartRate, uint16(257))
		if m.SensorContact == nil || !*m.SensorContact {
			c.t.Errorf("%s: contact %v, want detected", c.name, m.SensorContact)
		}
		if m.EnergyExpended == nil || *m.EnergyExpended != 306 {
			c.t.Errorf("%s: energy %v, want 306", c.name, m.EnergyExpended)
		}
		c.eq("RR", len(m.RRIntervals), 3)
		for i, w := range []uint16{1, 258, 65535} {
			c.eq("RR", m.RRIntervals[i], w)
		}
	}},
	{0x2A37, "onInvalidDataReceived", "17 01 01", nil},

	// Blood Pressure Measurement — NRF BloodPressureMeasurementDataCallbackTest.
	{0x2A35, "_full", "1E 8A 00 58 00 78 00 00 00 04 11 14 29 3B 3C 00 01 27 00", func(c check, v any) {
		m := v.(BloodPressure)
		c.eq("unit", m.Unit, "mm[Hg]")
		c.f("systolic", m.Systolic, 138)
		c.f("diastolic", m.Diastolic, 88)
		c.f("MAP", m.MeanArterial, 120)
		c.date("timestamp", m.Timestamp, DateTime{Year: 0, Month: 4, Day: 17, Hours: 20, Minutes: 41, Seconds: 59})
		c.fp("pulse rate", m.PulseRate, 60)
		if m.UserID == nil || *m.UserID != 1 {
			c.t.Errorf("%s: user %v, want 1", c.name, m.UserID)
		}
		if m.Status == nil || *m.Status != 0x0027 {
			c.t.Fatalf("%s: status %v, want 0x0027", c.name, m.Status)
		}
		c.eq("status bits", *m.StatusBits, BloodPressureStatus{BodyMovement: true, CuffTooLoose: true, IrregularPulse: true, PulseRateInRange: true, ImproperPosition: true})
	}},
	{0x2A35, "_some", "15 BD F0 0B 00 9F F0 3C 00 12 00", func(c check, v any) {
		m := v.(BloodPressure)
		c.eq("unit", m.Unit, "kPa")
		c.f("systolic", m.Systolic, 18.9)
		c.f("diastolic", m.Diastolic, 11.0)
		c.f("MAP", m.MeanArterial, 15.9)
		c.fp("pulse rate", m.PulseRate, 60)
		c.isNil("user", m.UserID == nil)
		c.isNil("timestamp", m.Timestamp == nil)
		if m.Status == nil || *m.Status != 0x0012 {
			c.t.Fatalf("%s: status %v, want 0x0012", c.name, m.Status)
		}
		c.eq("status bits", *m.StatusBits, BloodPressureStatus{CuffTooLoose: true, PulseRateTooLow: true, PulseRateRangeRaw: 2})
	}},
	{0x2A35, "_minimal", "00 BD F0 0B 00 9F F0", func(c check, v any) {
		m := v.(BloodPressure)
		c.eq("unit", m.Unit, "mm[Hg]")
		c.f("systolic", m.Systolic, 18.9)
		c.f("diastolic", m.Diastolic, 11.0)
		c.f("MAP", m.MeanArterial, 15.9)
		c.isNil("pulse", m.PulseRate == nil)
		c.isNil("user", m.UserID == nil)
		c.isNil("status", m.Status == nil)
		c.isNil("timestamp", m.Timestamp == nil)
	}},
	{0x2A35, "onInvalidDataReceived_toShort", "01 02 03 04 05 06", nil},
	{0x2A35, "onInvalidDataReceived_noTimestamp", "03 02 03 04 05 06 07", nil},

	// Glucose Measurement — NRF GlucoseMeasurementDataCallbackTest.
	{0x2A18, "onGlucoseMeasurementReceived", "1B 01 00 E3 07 02 1B 0B 0A 1E FB FF 1E 00 12 05 01", func(c check, v any) {
		m := v.(Glucose)
		c.eq("flags", m.Flags, uint8(0b011011))
		c.eq("sequence", m.SequenceNumber, uint16(1))
		c.eq("base time", m.BaseTime, DateTime{Year: 2019, Month: 2, Day: 27, Hours: 11, Minutes: 10, Seconds: 30})
		if m.TimeOffset == nil || *m.TimeOffset != -5 {
			c.t.Errorf("%s: time offset %v, want -5", c.name, m.TimeOffset)
		}
		c.eq("time", m.Time, "2019-02-27T11:05:30")
		c.fp("concentration", m.Concentration, 30)
		c.eq("unit", m.Unit, "kg/L")
		c.eq("type", m.Type, uint8(2))
		c.eq("type name", m.TypeName, "capillary plasma")
		c.eq("location", m.SampleLocation, uint8(1))
		c.eq("location name", m.SampleLocationName, "finger")
		if m.Status == nil || *m.Status != 261 {
			c.t.Fatalf("%s: status %v, want 261", c.name, m.Status)
		}
		c.eq("battery low", m.StatusBits.DeviceBatteryLow, true)
		c.eq("general device fault", m.StatusBits.GeneralDeviceFault, false)
		c.eq("temperature too low", m.StatusBits.TemperatureTooLow, true)
		c.eq("context follows", m.ContextFollows, true)
	}},
	{0x2A18, "onInvalidDataReceived", "1B 00 00 E2 07 04 1A 0B 09 1E 1E 00 12 05 01", nil},

	// Temperature Measurement — NRF TemperatureMeasurementDataCallbackTest.
	{0x2A1C, "onTemperatureMeasurementReceived", "06 B0 0E 00 FE DC 07 0C 05 0B 32 1B 04", func(c check, v any) {
		m := v.(Temperature)
		c.eq("unit", m.Unit, "Cel")
		c.f("temperature", m.Temperature, 37.60)
		c.eq("temperature exact", m.Temperature.String(), "37.60")
		c.date("timestamp", m.Timestamp, DateTime{Year: 2012, Month: 12, Day: 5, Hours: 11, Minutes: 50, Seconds: 27})
		if m.Type == nil || *m.Type != 4 {
			c.t.Errorf("%s: type %v, want 4", c.name, m.Type)
		}
		c.eq("type name", m.TypeName, "finger")
	}},
	{0x2A1C, "onInvalidDataReceived", "06 B0 0E 00 FE DC 07 0C 05 0B 32 1B", nil},

	// CGM Measurement — NRF ContinuousGlucoseMeasurementDataCallbackTest.
	{0x2AA7, "_full", "0F E3 D2 E4 05 00 02 14 FF 02 F0 E5 F3 8E 3F", func(c check, v any) {
		m := v.(CGM)
		c.eq("records", len(m.Records), 1)
		r := m.Records[0]
		c.eq("size", r.Size, uint8(15))
		c.eq("flags", r.Flags, uint8(0xE3))
		c.f("glucose", r.Glucose, 12.34)
		c.eq("unit", r.Unit, "mg/dL")
		c.eq("time offset", r.TimeOffset, uint16(5))
		s := r.StatusBits
		c.eq("session stopped", s.SessionStopped, false)
		c.eq("battery low", s.DeviceBatteryLow, true)
		c.eq("temp too high", s.SensorTemperatureTooHigh, true)
		c.eq("temp too low", s.SensorTemperatureTooLow, false)
		c.eq("calibration recommended", s.CalibrationRecommended, true)
		c.eq("status octet", *r.StatusOctet, uint8(0x02))
		c.eq("cal/temp octet", *r.CalTempOctet, uint8(0x14))
		c.eq("warning octet", *r.WarningOctet, uint8(0xFF))
		c.fp("trend", r.Trend, 0.2)
		c.fp("quality", r.Quality, 99.7)
		c.eq("secured", r.Secured, true)
		c.eq("crc", *r.CRC, uint16(0x3F8E))
	}},
	{0x2AA7, "_small", "06 00 0C 10 06 00", func(c check, v any) {
		m := v.(CGM)
		c.eq("records", len(m.Records), 1)
		r := m.Records[0]
		c.eq("size", r.Size, uint8(6))
		c.f("glucose", r.Glucose, 120)
		c.eq("time offset", r.TimeOffset, uint16(6))
		c.isNil("trend", r.Trend == nil)
		c.isNil("quality", r.Quality == nil)
		c.isNil("status", r.StatusBits == nil)
		c.eq("secured", r.Secured, false)
	}},
	{0x2AA7, "_double", "06 00 0C 10 05 00 06 00 0C 10 06 00", func(c check, v any) {
		m := v.(CGM)
		c.eq("records", len(m.Records), 2)
		c.f("glucose[0]", m.Records[0].Glucose, 120)
		c.eq("time offset[0]", m.Records[0].TimeOffset, uint16(5))
		c.f("glucose[1]", m.Records[1].Glucose, 120)
		c.eq("time offset[1]", m.Records[1].TimeOffset, uint16(6))
	}},
	{0x2AA7, "_crcError", "08 00 0C 10 06 00 58 6F", nil},
	{0x2AA7, "onInvalidDataReceived_tooShort", "06 E3 0C 10 00", nil},
	{0x2AA7, "onInvalidDataReceived", "07 E3 0C 10 06 00 00", nil},

	// PLX Continuous — SPZ PLXTests.
	{0x2A5F, "testVerySimpleMeasurementCoding (encode)", "00 E8 F3 84 F3", func(c check, v any) {
		m := v.(PLXContinuous)
		c.eq("flags", m.Flags, uint8(0))
		c.f("SpO2", m.SpO2, 100)
		c.f("PR", m.PulseRate, 90)
		c.isNil("fast", m.SpO2Fast == nil)
		c.isNil("slow", m.SpO2Slow == nil)
		c.isNil("status", m.MeasurementStatus == nil)
		c.isNil("PAI", m.PulseAmplitudeIndex == nil)
	}},
	{0x2A5F, "testVerySimpleMeasurementCoding (decode)", "00 64 00 5A 00", func(c check, v any) {
		m := v.(PLXContinuous)
		c.f("SpO2", m.SpO2, 100)
		c.f("PR", m.PulseRate, 90)
	}},
	{0x2A5F, "testSimpleMeasurementCoding", "1C 5F 00 5A 00 20 00 00 00 00 57 F0", func(c check, v any) {
		m := v.(PLXContinuous)
		c.eq("flags", m.Flags, uint8(0x1C))
		c.f("SpO2", m.SpO2, 95)
		c.f("PR", m.PulseRate, 90)
		c.eq("measurement status", *m.MeasurementStatus, uint16(0x0020))
		c.eq("status bits", *m.MeasurementStatusBits, PLXMeasurementStatus{MeasurementOngoing: true})
		c.eq("device status", *m.DeviceSensorStatus, uint32(0))
		c.eq("device status bits", *m.DeviceSensorBits, PLXDeviceSensorStatus{})
		c.fp("PAI", m.PulseAmplitudeIndex, 8.7)
	}},
	{0x2A5F, "testFullMeasurementCoding", "1F DE F3 CA F3 CA F3 5A F5 D4 F3 B2 F2 20 01 00 00 00 7A E3", func(c check, v any) {
		m := v.(PLXContinuous)
		c.eq("flags", m.Flags, uint8(0x1F))
		c.f("SpO2", m.SpO2, 99)
		c.f("PR", m.PulseRate, 97)
		c.fp("SpO2 fast", m.SpO2Fast, 97)
		c.fp("PR fast", m.PulseRateFast, 137)
		c.fp("SpO2 slow", m.SpO2Slow, 98)
		c.fp("PR slow", m.PulseRateSlow, 69)
		c.eq("measurement status", *m.MeasurementStatus, uint16(0x0120))
		c.eq("status bits", *m.MeasurementStatusBits, PLXMeasurementStatus{MeasurementOngoing: true, FullyQualifiedData: true})
		c.eq("device status bits", *m.DeviceSensorBits, PLXDeviceSensorStatus{})
		c.fp("PAI", m.PulseAmplitudeIndex, 8.9)
	}},

	// PLX Spot-Check and Features — SPZ PLXTests.
	{0x2A5E, "testSpotCheckMeasurementCoding", "0F AC F3 BE F5 E8 07 0B 1D 17 08 39 20 40 22 00 00 66 E3", func(c check, v any) {
		m := v.(PLXSpotCheck)
		c.eq("flags", m.Flags, uint8(0x0F))
		c.f("SpO2", m.SpO2, 94)
		c.f("PR", m.PulseRate, 147)
		c.date("timestamp", m.Timestamp, DateTime{Year: 2024, Month: 11, Day: 29, Hours: 23, Minutes: 8, Seconds: 57})
		c.eq("measurement status", *m.MeasurementStatus, uint16(0x4020))
		c.eq("status bits", *m.MeasurementStatusBits, PLXMeasurementStatus{MeasurementOngoing: true, QuestionableMeasurement: true})
		c.eq("device status", *m.DeviceSensorStatus, uint32(0x22))
		c.eq("device status bits", *m.DeviceSensorBits, PLXDeviceSensorStatus{EquipmentMalfunction: true, LowPerfusion: true})
		c.fp("PAI", m.PulseAmplitudeIndex, 8.7)
	}},
	{0x2A60, "testPLXFeaturesCoding", "A3 00 40 10 80 01 00", func(c check, v any) {
		m := v.(PLXFeatures)
		c.eq("supported", m.Supported, uint16(0x00A3))
		c.eq("measurement status support", m.HasMeasurementStatus, true)
		c.eq("device sensor support", m.HasDeviceSensorStatus, true)
		c.eq("slow", m.SpO2PRSlow, true)
		c.eq("multiple bonds", m.MultipleBonds, true)
		c.eq("fast", m.SpO2PRFast, false)
		c.eq("storage", m.MeasurementStorage, false)
		c.eq("timestamp", m.SpotCheckTimestamp, false)
		c.eq("PAI", m.PulseAmplitudeIndex, false)
		c.eq("measurement status support value", *m.MeasurementStatusSupport, uint16(0x1040))
		c.eq("measurement status support bits", *m.MeasurementStatusBits, PLXMeasurementStatus{CalibrationOngoing: true, EarlyEstimatedData: true})
		c.eq("device sensor support value", *m.DeviceSensorSupport, uint32(0x000180))
		c.eq("device sensor support bits", *m.DeviceSensorStatusBits, PLXDeviceSensorStatus{NonPulsatileSignal: true, QuestionablePulse: true})
	}},

	// Weight Measurement — IMM WeightMeasurementTest.
	{0x2A9D, "test_constructor001", "00 00 00", weightCheck(false, 0, 0, "kg", false, nil, nil, nil, nil)},
	{0x2A9D, "test_constructor002", "00 FF FF", weightCheck(false, 0xFFFF, 327.675, "kg", true, nil, nil, nil, nil)},
	{0x2A9D, "test_constructor003", "01 00 00", weightCheck(true, 0, 0, "[lb_av]", false, nil, nil, nil, nil)},
	{0x2A9D, "test_constructor004", "01 FF FF", weightCheck(true, 0xFFFF, 655.35, "[lb_av]", true, nil, nil, nil, nil)},
	{0x2A9D, "test_constructor101", "02 00 00 2E 06 00 00 00 00 00", weightCheck(false, 0, 0, "kg", false, &DateTime{Year: 1582}, nil, nil, nil)},
	{0x2A9D, "test_constructor102", "02 00 00 0F 27 01 01 17 3B 3B", weightCheck(false, 0, 0, "kg", false, &DateTime{Year: 9999, Month: 1, Day: 1, Hours: 23, Minutes: 59, Seconds: 59}, nil, nil, nil)},
	{0x2A9D, "test_constructor201", "04 00 00 FF", weightCheck(false, 0, 0, "kg", false, nil, ptr(uint8(255)), nil, nil)},
	{0x2A9D, "test_constructor203", "04 00 00 FE", weightCheck(false, 0, 0, "kg", false, nil, ptr(uint8(254)), nil, nil)},
	{0x2A9D, "test_constructor302", "08 00 00 FF FF FF FF", weightCheck(false, 0, 0, "kg", false, nil, nil, ptr(6553.5), &heightWant{65.535, "m"})},
	{0x2A9D, "test_constructor304", "09 00 00 FF FF FF FF", weightCheck(true, 0, 0, "[lb_av]", false, nil, nil, ptr(6553.5), &heightWant{6553.5, "[in_i]"})},
	{0x2A9D, "test_constructor403", "02 01 02 04 03 05 06 07 08 09", weightCheck(false, 513, 2.565, "kg", false, &DateTime{Year: 772, Month: 5, Day: 6, Hours: 7, Minutes: 8, Seconds: 9}, nil, nil, nil)},
	{0x2A9D, "test_constructor405", "04 01 02 0A", weightCheck(false, 513, 2.565, "kg", false, nil, ptr(uint8(10)), nil, nil)},
	{0x2A9D, "test_constructor415", "0E 01 02 04 03 05 06 07 08 09 0A 0B 0C 0D 0E", weightCheck(false, 513, 2.565, "kg", false, &DateTime{Year: 772, Month: 5, Day: 6, Hours: 7, Minutes: 8, Seconds: 9}, ptr(uint8(10)), ptr(308.3), &heightWant{3.597, "m"})},
	{0x2A9D, "test_constructor416", "0F 01 02 04 03 05 06 07 08 09 0A 0B 0C 0D 0E", weightCheck(true, 513, 5.13, "[lb_av]", false, &DateTime{Year: 772, Month: 5, Day: 6, Hours: 7, Minutes: 8, Seconds: 9}, ptr(uint8(10)), ptr(308.3), &heightWant{359.7, "[in_i]"})},
}

func ptr[T any](v T) *T { return &v }

type heightWant struct {
	v    float64
	unit string
}

func weightCheck(imperial bool, raw uint16, w float64, unit string, unsuccessful bool, ts *DateTime, user *uint8, bmi *float64, h *heightWant) func(check, any) {
	return func(c check, v any) {
		m := v.(Weight)
		c.eq("imperial", m.Imperial, imperial)
		c.eq("weight raw", m.WeightRaw, raw)
		c.eq("weight", m.Weight, w) // exact: decimal resolution applied with one rounding
		c.eq("weight unit", m.WeightUnit, unit)
		c.eq("unsuccessful", m.Unsuccessful, unsuccessful)
		if ts == nil {
			c.isNil("timestamp", m.Timestamp == nil)
		} else {
			c.date("timestamp", m.Timestamp, *ts)
		}
		if user == nil {
			c.isNil("user", m.UserID == nil)
		} else if m.UserID == nil || *m.UserID != *user {
			c.t.Errorf("%s: user %v, want %d", c.name, m.UserID, *user)
		}
		if bmi == nil {
			c.isNil("BMI", m.BMI == nil)
			c.isNil("height", m.Height == nil)
			return
		}
		if m.BMI == nil || m.Height == nil {
			c.t.Fatalf("%s: BMI/height absent", c.name)
		}
		c.eq("BMI", *m.BMI, *bmi)
		c.eq("BMI unit", m.BMIUnit, "kg/m2")
		c.eq("height", *m.Height, h.v)
		c.eq("height unit", m.HeightUnit, h.unit)
	}
}

func TestVectors(t *testing.T) {
	for _, v := range vectors {
		t.Run(Name(v.uuid)+"/"+v.name, func(t *testing.T) {
			got, err := Decode(v.uuid, hexb(t, v.hex))
			if v.check == nil {
				if err == nil {
					t.Fatalf("INVALID vector decoded: %+v", got)
				}
				checkRefusal(t, v.uuid, err)
				t.Logf("refused: %v", err)
				return
			}
			if err != nil {
				t.Fatalf("refused: %v", err)
			}
			v.check(check{t: t, name: v.name}, got)
		})
	}
}

// checkRefusal holds every refusal to the promised shape: an *Error naming the
// characteristic, and matching iomt.ErrInvalid.
func checkRefusal(t *testing.T, uuid uint16, err error) {
	t.Helper()
	var ge *Error
	if !errors.As(err, &ge) {
		t.Fatalf("refusal %v is not a *gatt.Error", err)
	}
	if ge.UUID != uuid || ge.Field == "" || ge.Reason == "" {
		t.Fatalf("refusal %#v lacks characteristic, field or reason", ge)
	}
	if !errors.Is(err, iomt.ErrInvalid) {
		t.Fatalf("refusal %v does not match iomt.ErrInvalid", err)
	}
}

// TestVectorFileUnchanged keeps the table above in step with the shared vector file: every
// hex string in it must be one of ours.
func TestVectorFileUnchanged(t *testing.T) {
	path := filepath.Join("..", "..", "..", "shared", "data", "gatt_vectors.md")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Skipf("shared data absent (%v): the vectors are copied into this test and ran anyway", err)
	}
	have := map[string]bool{}
	for _, v := range vectors {
		have[strings.ToUpper(v.hex)] = true
	}
	n := 0
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(line, "| ") || strings.HasPrefix(line, "| test |") {
			continue
		}
		cells := strings.Split(line, "|")
		if len(cells) < 4 {
			continue
		}
		h := strings.Trim(strings.TrimSpace(cells[2]), "`")
		if _, err := hex.DecodeString(strings.ReplaceAll(h, " ", "")); err != nil || h == "" {
			continue
		}
		n++
		if !have[strings.ToUpper(h)] {
			t.Errorf("vector %q (%s) is not in the test table", h, strings.TrimSpace(cells[1]))
		}
	}
	if n != len(vectors) {
		t.Errorf("file has %d vectors, table %d", n, len(vectors))
	}
}
