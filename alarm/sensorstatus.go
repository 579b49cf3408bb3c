package alarm

import "github.com/iomt/iomt/codes"

// OximeterStatusCode is a pulse oximeter's Device and Sensor Status (codes.OximeterStatus);
// Observe reads it as signal-quality events of the device that sent it.
const OximeterStatusCode = codes.OximeterStatus

// SignalQualityEvent is the kind of the events the quality rules read:
// {"device", "kind": lead-off|probe-off|noise|saturation, "active"}.
const SignalQualityEvent = "signal-quality"
