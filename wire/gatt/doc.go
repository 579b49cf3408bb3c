// Package gatt decodes the Bluetooth GATT health characteristics that wearables and home
// devices notify or indicate: Heart Rate (0x2A37), Blood Pressure (0x2A35), Health Thermometer
// (0x2A1C), Glucose (0x2A18), Continuous Glucose Monitoring (0x2AA7), Pulse Oximeter (0x2A5E,
// 0x2A5F, 0x2A60) and Weight Scale (0x2A9D) measurements, with the IEEE 11073-20601 SFLOAT and
// FLOAT numbers they carry.
//
// Each decoder returns a typed struct holding the values in the unit the device sent, with
// that unit named (UCUM), the flags and status bits decoded, and the device's timestamp as
// sent (a local wall-clock time without zone: the gateway knows the device's clock, this
// package does not). Readings turns a decoded measurement into iomt catalog codes and
// canonical units.
//
// Decoders never guess: a payload too short for what its flags announce, a reserved value
// where the specification allows none, a CGM record whose E2E-CRC does not match, or bytes
// left after the last announced field are refused with an *Error naming the characteristic,
// the byte offset and the field. Bits the specifications mark "reserved for future use" in
// flags and status fields are ignored, as the Bluetooth specifications tell a receiver to do;
// they stay visible in the raw flags and status values.
package gatt
