package alarm

import (
	"testing"
	"time"
)

// A patient's silence given back after a restart (once, however often it is loaded) silences
// the alarms raised while it lasts; one that ended, or one naming a single alarm, is ignored;
// after it ends, notifications resume.
func TestRestoredSilenceCoversNewAlarms(t *testing.T) {
	c := newClock()
	e := newEngine(t, c, Config{Router: testRouter(t)})
	until := c.now.Add(5*time.Minute + 123*time.Microsecond)
	s := Silence{Scope: Scope{Patient: "p"}, Who: "ann", Why: "repositioning", Until: until}
	ended := Silence{Scope: Scope{Patient: "p", Rule: "hr-high"}, Who: "ann", Until: c.now.Add(-time.Second)}
	one := Silence{Scope: Scope{Alarm: "al_x"}, Who: "ann", Until: until}
	e.RestoreSilences([]Silence{s, ended, one})
	e.RestoreSilences([]Silence{s}) // the partition loaded again
	got := e.Silences("p")
	if len(got) != 1 || got[0].Scope != s.Scope || !got[0].Until.Equal(until.Truncate(time.Millisecond)) || got[0].Who != "ann" {
		t.Fatalf("silences held: %+v, want the one in force, once, to the millisecond", got)
	}
	// Silencing the same scope to the same end through the API does not add it again.
	if _, err := e.Silence(s); err != nil {
		t.Fatal(err)
	}
	if n := len(e.Silences("")); n != 1 {
		t.Fatalf("%d silences after the same silence again, want 1", n)
	}

	chs := feed(e, c, "p", "ox", spo2, 80, 20*time.Second)
	raised := count(chs, Raised)
	if raised["spo2-low"] != 1 {
		t.Fatalf("no alarm raised under the silence: %v", kinds(chs))
	}
	for _, ch := range chs {
		if len(ch.Deliveries) > 0 {
			t.Fatalf("%s %s notified during a restored silence: %d deliveries", ch.Kind, ch.Alarm.Rule, len(ch.Deliveries))
		}
		if ch.Kind == Raised && !ch.Alarm.SilencedUntil.Equal(until.Truncate(time.Millisecond)) {
			t.Fatalf("raised with SilencedUntil %v, want %v", ch.Alarm.SilencedUntil, until)
		}
	}
	c.Set(until.Add(time.Second))
	chs = e.Tick(c.now)
	if count(chs, SilenceExpired)["spo2-low"] != 1 {
		t.Fatalf("at the end of the silence: %v", kinds(chs))
	}
	for _, ch := range chs {
		if ch.Kind == SilenceExpired && len(recipients(ch.Deliveries)) == 0 {
			t.Fatal("no one told when the silence ended")
		}
	}
	if n := len(e.Silences("")); n != 0 {
		t.Fatalf("%d silences held after their end", n)
	}
}

// A node releasing a patient (the partition moved) drops the patient's silences with the rest:
// the new owner holds them now.
func TestReleaseDropsSilences(t *testing.T) {
	c := newClock()
	e := newEngine(t, c, Config{})
	e.RestoreSilences([]Silence{
		{Scope: Scope{Patient: "p"}, Who: "ann", Until: c.now.Add(time.Minute)},
		{Scope: Scope{Patient: "q", Device: "ecg"}, Who: "ann", Until: c.now.Add(time.Minute)},
	})
	if got := e.Patients(); len(got) != 2 {
		t.Fatalf("patients held: %v, want p and q (silences are state)", got)
	}
	if tn, ok := e.Tenant("p"); ok {
		t.Fatalf("tenant of a patient known only by a silence: %q", tn)
	}
	e.Release("p")
	if got := e.Silences(""); len(got) != 1 || got[0].Patient != "q" {
		t.Fatalf("silences after releasing p: %+v", got)
	}
	e.Observe(batch("q", "ox", c.now, obs(spo2, 97)))
	if tn, ok := e.Tenant("q"); !ok || tn == "" {
		t.Fatalf("tenant of a patient with readings: %q %v", tn, ok)
	}
}
