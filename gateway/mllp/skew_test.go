package mllp

import (
	"testing"
	"time"
)

// A monitor 90 s fast is corrected from its first message; delays of queued messages do not
// spoil the estimate; a monitor whose messages arrive late (slow clock or a replayed queue) is
// left alone; offsets within the tolerance are ignored.
func TestSkewCorrection(t *testing.T) {
	var s skews
	now := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	if d := s.correction("fast", now.Add(90*time.Second), now, 2*time.Second); d != -90*time.Second {
		t.Fatalf("fast clock: correction %v, want -90s", d)
	}
	// A queued message of the fast monitor (sent 5 min ago by its clock) keeps the estimate.
	if d := s.correction("fast", now.Add(90*time.Second-5*time.Minute), now.Add(time.Second), 2*time.Second); d != -90*time.Second {
		t.Fatalf("queued message: correction %v, want -90s", d)
	}
	if d := s.correction("late", now.Add(-time.Hour), now, 2*time.Second); d != 0 {
		t.Fatalf("late messages: correction %v, want none", d)
	}
	if d := s.correction("close", now.Add(1500*time.Millisecond), now, 2*time.Second); d != 0 {
		t.Fatalf("1.5 s ahead: correction %v, want none", d)
	}
	if d := s.correction("off", now.Add(time.Hour), now, -1); d != 0 {
		t.Fatalf("correction turned off: %v", d)
	}
}
