package gatt

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/iomt/iomt"
)

// The characteristics this package decodes (Bluetooth Assigned Numbers, 16-bit UUIDs).
const (
	UUIDHeartRateMeasurement     uint16 = 0x2A37
	UUIDBloodPressureMeasurement uint16 = 0x2A35
	UUIDTemperatureMeasurement   uint16 = 0x2A1C
	UUIDGlucoseMeasurement       uint16 = 0x2A18
	UUIDCGMMeasurement           uint16 = 0x2AA7
	UUIDPLXSpotCheck             uint16 = 0x2A5E
	UUIDPLXContinuous            uint16 = 0x2A5F
	UUIDPLXFeatures              uint16 = 0x2A60
	UUIDWeightMeasurement        uint16 = 0x2A9D
)

// ErrUnknownCharacteristic is Decode's refusal of a UUID it has no decoder for. It matches
// iomt.ErrInvalid too.
var ErrUnknownCharacteristic error = &invalidError{err: errors.New("unknown characteristic")}

// invalidError marks an error as bad input (iomt.ErrInvalid) without adding ": invalid" to
// its message.
type invalidError struct{ err error }

func (e *invalidError) Error() string        { return e.err.Error() }
func (e *invalidError) Unwrap() error        { return e.err }
func (e *invalidError) Is(target error) bool { return target == iomt.ErrInvalid }

func invalidf(format string, args ...any) error {
	return &invalidError{err: fmt.Errorf(format, args...)}
}

// Decode decodes payload as the characteristic uuid. The value is one of HeartRate,
// BloodPressure, Temperature, Glucose, CGM, PLXSpotCheck, PLXContinuous, PLXFeatures or
// Weight; every one but PLXFeatures is a Measurement.
func Decode(uuid uint16, payload []byte) (any, error) {
	switch uuid {
	case UUIDHeartRateMeasurement:
		return DecodeHeartRate(payload)
	case UUIDBloodPressureMeasurement:
		return DecodeBloodPressure(payload)
	case UUIDTemperatureMeasurement:
		return DecodeTemperature(payload)
	case UUIDGlucoseMeasurement:
		return DecodeGlucose(payload)
	case UUIDCGMMeasurement:
		return DecodeCGM(payload)
	case UUIDPLXSpotCheck:
		return DecodePLXSpotCheck(payload)
	case UUIDPLXContinuous:
		return DecodePLXContinuous(payload)
	case UUIDPLXFeatures:
		return DecodePLXFeatures(payload)
	case UUIDWeightMeasurement:
		return DecodeWeight(payload)
	}
	return nil, fmt.Errorf("gatt: 0x%04X: %w", uuid, ErrUnknownCharacteristic)
}

// Name is the characteristic's name in the Bluetooth assigned numbers, or "" if unknown here.
func Name(uuid uint16) string {
	switch uuid {
	case UUIDHeartRateMeasurement:
		return "Heart Rate Measurement"
	case UUIDBloodPressureMeasurement:
		return "Blood Pressure Measurement"
	case UUIDTemperatureMeasurement:
		return "Temperature Measurement"
	case UUIDGlucoseMeasurement:
		return "Glucose Measurement"
	case UUIDCGMMeasurement:
		return "CGM Measurement"
	case UUIDPLXSpotCheck:
		return "PLX Spot-Check Measurement"
	case UUIDPLXContinuous:
		return "PLX Continuous Measurement"
	case UUIDPLXFeatures:
		return "PLX Features"
	case UUIDWeightMeasurement:
		return "Weight Measurement"
	}
	return ""
}

// bluetoothBase is the Bluetooth Base UUID's tail: a 16-bit UUID xxxx stands for
// 0000xxxx-0000-1000-8000-00805F9B34FB.
const bluetoothBase = "-0000-1000-8000-00805f9b34fb"

// ParseUUID reads a 16-bit characteristic UUID written as "2A37", "0x2A37" or in the full
// 128-bit form "00002A37-0000-1000-8000-00805F9B34FB" (any case). A 128-bit UUID outside the
// Bluetooth base range is refused: it names a vendor characteristic, not a standard one.
func ParseUUID(s string) (uint16, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	switch {
	case len(t) == 36:
		if !strings.HasPrefix(t, "0000") || t[8:] != bluetoothBase {
			return 0, invalidf("gatt: UUID %q: not a 16-bit UUID on the Bluetooth base", s)
		}
		t = t[4:8]
	case strings.HasPrefix(t, "0x"):
		t = t[2:]
	}
	if len(t) == 0 || len(t) > 4 {
		return 0, invalidf("gatt: UUID %q: want 4 hex digits, 0x and 4 hex digits, or the 128-bit form", s)
	}
	v, err := strconv.ParseUint(t, 16, 16)
	if err != nil {
		return 0, invalidf("gatt: UUID %q: %w", s, err)
	}
	return uint16(v), nil
}

// Measurement is a decoded characteristic that carries patient readings.
type Measurement interface {
	// Readings lists the values that have an iomt catalog code, converted to the code's
	// canonical unit. Special values (NaN, NRes, infinities), "measurement unsuccessful"
	// sentinels and control-solution tests yield no reading.
	Readings() []Reading
}

// Reading is one value of a measurement under an iomt catalog code (codes.New().ByID(Code)),
// in the code's canonical UCUM unit. Range checks are left to ingest, which owns them.
type Reading struct {
	Code  string  `json:"code"`
	Value float64 `json:"value"`
	Unit  string  `json:"unit"`
}

// Conversion factors to the catalog's canonical units; the tests hold them equal to what
// codes.Catalog.Convert does.
const (
	mmHgPerKPa = 1000 / 133.322387415 // ≈ 7.50062: the conventional mmHg, as the catalog
	mgdLPerKgL = 100000               // 1 kg/L = 1000 g/L = 100000 mg/dL
	kgPerLb    = 0.45359237           // international avoirdupois pound
	cmPerInch  = 2.54                 // international inch
)

// appendReading adds a reading when v is a number.
func appendReading(rs []Reading, code string, v float64, unit string) []Reading {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return rs
	}
	return append(rs, Reading{Code: code, Value: v, Unit: unit})
}
