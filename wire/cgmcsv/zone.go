package cgmcsv

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// ParseZone reads a patient's time zone: an IANA name (Europe/Paris) or a fixed offset
// written UTC±hh:mm (the zone of data stored as fixed-offset wall clock, as iglu's are).
// "Local" is refused: a report must name the zone it used, and the machine's is not the
// patient's.
func ParseZone(s string) (*time.Location, error) {
	if s == "" {
		// LoadLocation would read "" as UTC: a zone must be named.
		return nil, errors.New("empty time zone")
	}
	if s == "Local" {
		return nil, errors.New(`"Local" would be this machine's zone, which the report cannot name: give an IANA name (Europe/Paris) or an offset (UTC+01:00)`)
	}
	if rest, ok := strings.CutPrefix(s, "UTC"); ok && rest != "" {
		t, err := time.Parse("-07:00", rest)
		if err != nil {
			return nil, fmt.Errorf("fixed offset %q is not UTC±hh:mm", s)
		}
		_, off := t.Zone()
		return time.FixedZone(s, off), nil
	}
	loc, err := time.LoadLocation(s)
	if err != nil {
		return nil, fmt.Errorf("unknown time zone %q", s)
	}
	return loc, nil
}
