// Package sensing simulates patients and the medical devices they wear: physiological models
// (ECG, photoplethysmogram, vital signs, glucose–insulin dynamics) driven by scenarios, and
// device behaviour (sampling, battery, clock drift, jitter, faults, disconnections).
//
// A Patient is built from a Scenario, a seed and a start time. The caller owns simulated time:
// each call to Advance moves the patient forward to the given instant and returns what the
// devices sent on the way, so running faster than real time is just advancing faster than the
// wall clock. Everything is deterministic from the seed and the sequence of calls.
//
// Values use the IDs of the codes catalog (package codes) and their canonical UCUM units:
// ECG in mV (lead II), pleth dimensionless ("1"), rates per minute, temperature in Cel,
// pressures in mm[Hg], glucose in mg/dL, weight in kg.
package sensing

import (
	"time"

	"github.com/iomt/iomt/codes"
)

// Device kinds, as in iomt.Device.Kind.
const (
	ECGPatch        = "ecg-patch"        // ECG lead II waveform, heart rate, respiratory rate (impedance)
	PulseOximeter   = "pulse-oximeter"   // SpO2, pulse rate, optional pleth waveform
	BPMonitor       = "bp-monitor"       // NIBP on a schedule and on demand
	Thermometer     = "thermometer"      // body temperature (a wearable patch by default)
	CGM             = "cgm"              // interstitial glucose every 5 minutes
	Glucometer      = "glucometer"       // capillary blood glucose, on demand
	Scale           = "scale"            // body weight, daily
	ActivityTracker = "activity-tracker" // steps per interval, falls
)

// Codes of the codes catalog that the simulated devices emit.
const (
	CodeHeartRate    = "8867-4"
	CodePulseRate    = "8889-8"
	CodeRespRate     = "9279-1"
	CodeSpO2         = "59408-5"
	CodeBodyTemp     = "8310-5"
	CodeSystolic     = "8480-6"
	CodeDiastolic    = "8462-4"
	CodeMeanBP       = "8478-0"
	CodeCGM          = "99504-3"
	CodeBloodGlucose = "2339-0"
	CodeWeight       = "29463-7"
	CodeSteps        = "55423-8"
	CodeECGII        = "MDC_ECG_ELEC_POTL_II"
	CodePleth        = "MDC_PULS_OXIM_PLETH"
	CodeBattery      = "MDC_ATTR_VAL_BATT_CHARGE"
	CodeFall         = "MDC_AI_TYPE_SENSOR_FALL"
	// CodeOximeterStatus is the oximeter's device and sensor status (IEEE 11073-10404 BITS-16,
	// bit 0 most significant), sent while its probe is off and once when it is back on.
	CodeOximeterStatus = codes.OximeterStatus
)

// Faults a device reports about itself in Emission.Faults.
const (
	FaultLeadOff    = "lead-off"    // ECG electrodes off: the waveform is flat or at the rail, no HR
	FaultProbeOff   = "probe-off"   // oximeter probe off the finger: no SpO2 or pulse rate
	FaultLowBattery = "low-battery" // battery below 10 %
)

// ECGRailMV is the value an ECG patch's amplifier saturates at when an electrode comes off and
// the input floats ("lead-off-rail").
const ECGRailMV = 5.0

// Sample is one spot or periodic reading.
type Sample struct {
	Code  string    // codes catalog ID
	Time  time.Time // device clock, UTC, millisecond precision
	Value float64
	Unit  string // canonical UCUM unit of the code
}

// Chunk is a run of evenly spaced waveform samples.
type Chunk struct {
	Code   string
	Start  time.Time     // device clock time of Values[0], UTC, millisecond precision
	Period time.Duration // nominal sample period by the device clock
	Values []float64     // rounded to the catalog scale (0.001)
	Unit   string
}

// Emission is what one device sends at one moment: in a deployment, one SenML pack.
type Emission struct {
	Device  string    // device kind; a patient wears at most one device of each kind
	Seq     uint64    // the device's message sequence number, from 1, for idempotent delivery
	Time    time.Time // true simulated time the device sends (not its clock, which drifts)
	Samples []Sample
	Chunks  []Chunk
	Battery *float64 // percent, when the device reports its battery in this message
	Faults  []string // conditions the device reports, e.g. FaultLeadOff
}
