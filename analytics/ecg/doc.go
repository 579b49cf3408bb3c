// Package ecg analyses one ECG lead as a stream: QRS detection with fiducial points, RR series,
// heart rate and HRV, rhythm (atrial fibrillation, bradycardia, tachycardia, pause and
// asystole) and signal quality (lead-off, saturation, noise).
//
// Everything here is a pure state machine over samples: no I/O, no clocks, no goroutines.
// Time is counted in samples from the first sample given; every parameter is defined in
// seconds or millivolts, so one parameter set serves any sampling rate from 125 to 1000 Hz.
package ecg
