package alarm

import (
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/iomt/iomt"
	"github.com/iomt/iomt/codes"
)

// An oximeter's own status bits (MDC_PULS_OXIM_DEV_STATUS) act as signal-quality events on
// that device: with the sensor off the patient, a low SpO2 sent with it raises nothing and the
// technical "sensor off" alarm is raised instead; with a poor signal the same; low perfusion
// alone suppresses nothing; once the status is clear, the low SpO2 alarms after its own delay.
func TestOximeterStatusSuppresses(t *testing.T) {
	c := newClock()
	e := newEngine(t, c, Config{})
	run := func(status float64, d time.Duration) []string {
		t.Helper()
		var got []string
		for end := c.now.Add(d); c.now.Before(end); {
			c.Add(time.Second)
			got = append(got, kinds(e.Observe(batch("p", "ox", c.now, obs(spo2, 80), obs(codes.OximeterStatus, status))))...)
			got = append(got, kinds(e.Tick(c.now))...)
		}
		return got
	}
	// Sensor not connected to the user (bit 4 of the standard: 0x0800).
	if got := run(0x0800, time.Minute); !slices.Equal(got, []string{"raised:lead-off:low"}) {
		t.Fatalf("probe off with SpO2 80: %v, want the sensor-off alarm alone", got)
	}
	// Back on, but the signal is poor (bit 11: 0x0010): the sensor-off alarm clears, the
	// poor-signal one is raised after its delay, SpO2 still raises nothing.
	got := run(0x0010, time.Minute)
	if !slices.Contains(got, "resolved:lead-off:low") || !slices.Contains(got, "raised:poor-signal:low") || slices.ContainsFunc(got, func(k string) bool { return k == "raised:spo2-low:high" || k == "raised:spo2-low:medium" }) {
		t.Fatalf("poor signal with SpO2 80: %v", got)
	}
	// Low perfusion alone (bit 10: 0x0020) is the patient's state, not a poor signal: SpO2 80
	// alarms after its 15 s delay.
	got = run(0x0020, 20*time.Second)
	if !slices.Contains(got, "resolved:poor-signal:low") || !slices.Contains(got, "raised:spo2-low:high") {
		t.Fatalf("low perfusion with SpO2 80: %v", got)
	}
}

// A monitor that sends ECG and SpO2 under one device: the oximeter's all-clear status ends
// neither the ECG's lead-off nor its suppression of the ECG's readings; the lead's own
// all-clear does.
func TestOximeterStatusLeavesECGLeadOff(t *testing.T) {
	c := newClock()
	e := newEngine(t, c, Config{})
	leadOff := func(active bool) []string {
		d, _ := json.Marshal(map[string]any{"device": "mon", "kind": "lead-off", "active": active})
		return kinds(e.Event(iomt.Event{Tenant: iomt.DefaultTenant, Patient: "p", Kind: SignalQualityEvent, Time: c.now, Data: d}))
	}
	leadOff(true)
	var got []string
	for range 60 {
		c.Add(time.Second)
		got = append(got, kinds(e.Observe(batch("p", "mon", c.now, obs(spo2, 97), obs(codes.OximeterStatus, 0), obs(hr, 190))))...)
		got = append(got, kinds(e.Tick(c.now))...)
	}
	if !slices.Equal(got, []string{"raised:lead-off:low"}) {
		t.Fatalf("lead off, oximeter clear, HR 190 from the same device: %v, want the sensor-off alarm alone", got)
	}
	if got := leadOff(false); !slices.Equal(got, []string{"resolved:lead-off:low"}) {
		t.Fatalf("lead back on: %v", got)
	}
}
