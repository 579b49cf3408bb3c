package alarm

import (
	"testing"
	"time"

	"github.com/iomt/iomt"
	"github.com/iomt/iomt/sensing"
)

var t0 = time.Date(2026, 11, 24, 8, 0, 0, 0, time.UTC)

// fakeClock is the wall clock the tests move by hand.
type fakeClock struct{ now time.Time }

func (c *fakeClock) Now() time.Time          { return c.now }
func (c *fakeClock) Add(d time.Duration)     { c.now = c.now.Add(d) }
func (c *fakeClock) Set(t time.Time)         { c.now = t }
func newClock() *fakeClock                   { return &fakeClock{now: t0} }
func obs(code string, v float64) observation { return observation{code, v} }

type observation struct {
	code string
	v    float64
}

// batch is one device message of readings taken at the clock's time.
func batch(patient, device string, at time.Time, os ...observation) iomt.Batch {
	b := iomt.Batch{Tenant: iomt.DefaultTenant, Patient: patient, Device: device, Received: at}
	for _, o := range os {
		b.Observations = append(b.Observations, iomt.Observation{Patient: patient, Device: device, Code: o.code, Time: at, Value: o.v})
	}
	return b
}

func newEngine(t testing.TB, c *fakeClock, cfg Config) *Engine {
	t.Helper()
	cfg.Clock = c.Now
	e, err := NewEngine(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// emissionBatch turns what a simulated device sent into the batch ingest would publish.
func emissionBatch(patient string, em sensing.Emission) iomt.Batch {
	dev := patient + "-" + em.Device
	b := iomt.Batch{Tenant: iomt.DefaultTenant, Patient: patient, Device: dev, Received: em.Time}
	for _, s := range em.Samples {
		b.Observations = append(b.Observations, iomt.Observation{Patient: patient, Device: dev, Code: s.Code, Time: s.Time, Value: s.Value, Unit: s.Unit})
	}
	return b
}

func count(chs []Change, kind ChangeKind) map[string]int {
	m := map[string]int{}
	for _, c := range chs {
		if c.Kind == kind {
			m[c.Alarm.Rule]++
		}
	}
	return m
}
