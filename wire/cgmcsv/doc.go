// Package cgmcsv imports continuous glucose monitor readings from CSV: a generic
// id,time,glucose table, Dexcom Clarity exports and LibreView exports.
//
// Every reading comes out in mg/dL with an absolute instant. Timestamps that carry no UTC offset
// (Clarity and LibreView write local wall-clock time) are read in Options.Location, which the
// caller must give: guessing a zone silently shifts every time-of-day metric. In the hour that
// repeats when clocks go back, a wall-clock time names two instants; exports list readings in
// time order, so a time that would step back before the previous reading is read as the later
// one. A file that starts inside that hour cannot be told apart and is read at the earlier one.
// LibreView writes dates month-first or day-first after the account's locale; of the layouts
// that read every row, the one whose readings span the shortest time is taken, since an export
// covers one contiguous wear period.
//
// Sensors report values outside their measuring range as text. Those readings are kept, with the
// range limit substituted and the Marker set, so that time below 54 and above 250 stay right:
// Dexcom "Low" is 40 mg/dL and "High" 400 mg/dL; Libre "LO" is 40 mg/dL and "HI" 500 mg/dL.
// Rows that carry no sensor glucose (headers, device and patient rows, insulin, carbs, alerts,
// calibrations, scans, strip readings) are skipped and each skip is reported with its line and
// reason.
package cgmcsv
