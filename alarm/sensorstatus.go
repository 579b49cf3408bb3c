package alarm

// OximeterStatusCode is a pulse oximeter's Device and Sensor Status: IEEE 11073-10404
// MDC_PULS_OXIM_DEV_STATUS (partition 2, term 19532; 150604), a BITS-16 whose bit 0 is the
// most significant (HL7 PHD implementation guide, "Pulse Oximeter Device and Sensor status").
// The Bluetooth PLX profile's Device and Sensor Status field carries the same bits in its low
// 16, so a gateway forwards it as it is.
const OximeterStatusCode = "MDC_PULS_OXIM_DEV_STATUS"

// SignalQualityEvent is the kind of the events the quality rules read:
// {"device", "kind": lead-off|probe-off|noise|saturation, "active"}.
const SignalQualityEvent = "signal-quality"

// Bits of MDC_PULS_OXIM_DEV_STATUS as a number: bit n of the standard is 1 << (15 − n).
const (
	oxSensorDisconnected   = 1 << 15 // 0 sensor-disconnected: device not connected to sensor
	oxSensorMalfunction    = 1 << 14 // 1 sensor-malfunction
	oxSensorDisplaced      = 1 << 13 // 2 sensor-displaced: incorrectly placed on the user
	oxSensorUnsupported    = 1 << 12 // 3 sensor-unsupported
	oxSensorOff            = 1 << 11 // 4 sensor-off: not connected to the user
	oxInterference         = 1 << 10 // 5 sensor-interference
	oxSearching            = 1 << 9  // 6 signal-searching
	oxPulseQuestionable    = 1 << 8  // 7 signal-pulse-questionable
	oxNonPulsatile         = 1 << 7  // 8 signal-non-pulsatile
	oxErratic              = 1 << 6  // 9 signal-erratic
	oxLowPerfusion         = 1 << 5  // 10 signal-low-perfusion
	oxPoor                 = 1 << 4  // 11 signal-poor
	oxInadequate           = 1 << 3  // 12 signal-inadequate
	oxProcessingIrregular  = 1 << 2  // 13 signal-processing-irregularity
	oxEquipmentMalfunction = 1 << 1  // 14 device-equipment-malfunction
)

// oximeterQuality reads a status as the quality rules' conditions: probe-off while the sensor
// is off the patient, disconnected from the device or displaced; a poor signal ("noise")
// while the device says its signal or its sensor cannot be trusted. Low perfusion alone is not
// a poor signal here: it is often the patient's own state (shock, cold hands), whose alarms
// must not be suppressed; nor is an extended display update.
func oximeterQuality(bits uint16) (probeOff, poor bool) {
	probeOff = bits&(oxSensorDisconnected|oxSensorDisplaced|oxSensorOff) != 0
	poor = bits&(oxSensorMalfunction|oxSensorUnsupported|oxInterference|oxSearching|oxPulseQuestionable|
		oxNonPulsatile|oxErratic|oxPoor|oxInadequate|oxProcessingIrregular|oxEquipmentMalfunction) != 0
	return probeOff, poor
}
