package glucose

import "github.com/iomt/iomt"

// Settings returns the monitor's settings.
func (m *Monitor) Settings() Settings { return m.s }

// SetThresholds changes the four glucose thresholds (mg/dL) of a running monitor, as when a
// clinician sets a patient's own; invalid ones are refused and change nothing. History,
// latches and snoozes are kept: an alert already raised is not raised again for the change,
// and the next reading is judged on the new thresholds (a condition the change ends clears
// then, one it starts is raised then).
func (m *Monitor) SetThresholds(l iomt.GlucoseLimits) error {
	s := m.s
	s.GlucoseLimits = l
	if err := s.Validate(); err != nil {
		return err
	}
	m.s = s
	return nil
}
