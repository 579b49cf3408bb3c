package codes

import "github.com/iomt/iomt"

// OximeterStatus is the catalog ID of a pulse oximeter's Device and Sensor Status (IEEE
// 11073-10404 MDC_PULS_OXIM_DEV_STATUS, 2::19532): a BITS-16 whose bit 0 is the most
// significant (HL7 PHD implementation guide). The Bluetooth PLX profile's Device and Sensor
// Status carries the same bits in its low 16.
const OximeterStatus = "MDC_PULS_OXIM_DEV_STATUS"

// Bits of OximeterStatus as a number: bit n of the standard is 1 << (15 − n).
const (
	OxSensorDisconnected   = 1 << 15 // 0 sensor-disconnected: device not connected to sensor
	OxSensorMalfunction    = 1 << 14 // 1 sensor-malfunction
	OxSensorDisplaced      = 1 << 13 // 2 sensor-displaced: incorrectly placed on the user
	OxSensorUnsupported    = 1 << 12 // 3 sensor-unsupported
	OxSensorOff            = 1 << 11 // 4 sensor-off: not connected to the user
	OxInterference         = 1 << 10 // 5 sensor-interference
	OxSearching            = 1 << 9  // 6 signal-searching
	OxPulseQuestionable    = 1 << 8  // 7 signal-pulse-questionable
	OxNonPulsatile         = 1 << 7  // 8 signal-non-pulsatile
	OxErratic              = 1 << 6  // 9 signal-erratic
	OxLowPerfusion         = 1 << 5  // 10 signal-low-perfusion
	OxPoor                 = 1 << 4  // 11 signal-poor
	OxInadequate           = 1 << 3  // 12 signal-inadequate
	OxProcessingIrregular  = 1 << 2  // 13 signal-processing-irregularity
	OxEquipmentMalfunction = 1 << 1  // 14 device-equipment-malfunction
	OxExtendedUpdate       = 1 << 0  // 15 device-extended-update
)

// OximeterQuality reads an oximeter's status as what it says of the readings sent with it:
// probeOff while the sensor is off the patient, disconnected from the device or displaced;
// poor while the device says its signal or its sensor cannot be trusted. Low perfusion alone
// is not a poor signal: it is often the patient's own state (shock, cold hands), whose alarms
// must not be suppressed; nor is an extended display update.
func OximeterQuality(bits uint16) (probeOff, poor bool) {
	probeOff = bits&(OxSensorDisconnected|OxSensorDisplaced|OxSensorOff) != 0
	poor = bits&(OxSensorMalfunction|OxSensorUnsupported|OxInterference|OxSearching|OxPulseQuestionable|
		OxNonPulsatile|OxErratic|OxPoor|OxInadequate|OxProcessingIrregular|OxEquipmentMalfunction) != 0
	return probeOff, poor
}

// OximeterQualityOf reads o as an oximeter's status (OximeterQuality); ok is false when o is
// not one, or its value is not a 16-bit status.
func OximeterQualityOf(o iomt.Observation) (probeOff, poor, ok bool) {
	if o.Code != OximeterStatus || o.Value < 0 || o.Value > 0xFFFF {
		return false, false, false
	}
	probeOff, poor = OximeterQuality(uint16(o.Value))
	return probeOff, poor, true
}
