// Package glucose computes what clinicians read from continuous glucose monitor (CGM) data:
// the international consensus metrics (Battelino et al., Diabetes Care 2019), the ambulatory
// glucose profile (AGP), daily profiles, the variability indices MAGE, CONGA and MODD as the R
// package iglu defines them, and streaming alerts with a predicted-low forecast.
//
// Everything here is pure: functions and small state machines over Readings (an instant and a
// value in mg/dL), no I/O. Time of day (AGP, daily profiles, the interpolation grid) is taken in
// the *time.Location the caller gives, the patient's own zone.
//
// # Missing data, as iglu handles it
//
// Time-independent metrics (mean, SD, CV, GMI, time in ranges, quantiles) use every reading as
// it is, gaps or not. Time-dependent ones (CONGA, MODD, MAGE, the AGP) first put each subject on
// an equally spaced grid (iglu's CGMS2DayByDay): the step is the median sampling interval rounded
// to whole minutes, the grid starts at midnight of the first day, values are linearly
// interpolated between readings, and no value is made up between two readings more than 45
// minutes apart. MAGE further splits the grid into segments at gaps longer than 180 minutes and
// weights each segment's MAGE by its length. Data sufficiency is iglu's active_percent: the share
// of the expected readings, between the first and last, that are present.
package glucose
