package sensing

import (
	"math"
	"math/rand/v2"
	"slices"
	"time"
)

// device is one simulated device: its schedule, clock, battery, faults and waveform state.
// Times are true seconds since the patient's start unless named dev*.
type device struct {
	spec DeviceSpec
	r    *rand.Rand
	seq  uint64

	sched    float64   // next scheduled message, before jitter; +Inf if on demand only
	sendAt   float64   // sched plus this message's jitter
	measures []float64 // pending on-demand measurements, sorted
	faults   []faultSpan
	batt     []battChange
	drift    float64 // fractional: the device clock advances (1+drift) s per true second
	offset   float64 // device clock minus true time at start, s

	// Waveform sampling by the device clock.
	period    time.Duration
	devStart  time.Time // device-clock time of sample 0, whole milliseconds
	devStartS float64   // devStart − patient start, s
	n         int64     // next sample index
	ecg       *ecgGen
	ppg       *ppgGen

	lastBatt float64 // when battery was last reported, or −Inf
	lastMsg  float64 // when the last message was measured
	cgmErr   float64 // CGM sensor error, correlated between readings
	probeOff bool    // the oximeter last said its probe was off
	falls    []float64
	backlog  []Emission
}

type faultSpan struct {
	from, to float64
	kind     string
}

type battChange struct {
	t            float64
	level, drain *float64
}

func newDevice(spec DeviceSpec, r *rand.Rand, start time.Time) *device {
	d := &device{spec: spec, r: r, drift: spec.DriftPPM * 1e-6, offset: spec.Offset.Seconds(),
		sched: math.Inf(1), lastBatt: math.Inf(-1)}
	if spec.Interval > 0 {
		first := spec.First.Seconds()
		if spec.First < 0 {
			first = r.Float64() * math.Min(spec.Interval.Seconds(), 60)
		}
		d.sched = first
		d.sendAt = d.sched + d.jitter()
	}
	if spec.Rate > 0 && (spec.Kind == ECGPatch || spec.Kind == PulseOximeter) {
		d.period = time.Duration(math.Round(1000/spec.Rate)) * time.Millisecond
		ds := start.Add(spec.Offset)
		if t := ds.Truncate(time.Millisecond); !t.Equal(ds) {
			ds = t.Add(time.Millisecond)
		} else {
			ds = t
		}
		d.devStart = ds
		d.devStartS = ds.Sub(start).Seconds()
		if spec.Kind == ECGPatch {
			d.ecg = newECG(r, spec.Rate)
		} else {
			d.ppg = newPPG(r, spec.Rate)
		}
	}
	return d
}

func (d *device) jitter() float64 {
	if d.spec.Jitter <= 0 {
		return 0
	}
	return d.r.Float64() * d.spec.Jitter.Seconds()
}

// next is when the device next does something: a scheduled message or an on-demand measurement.
func (d *device) next() float64 {
	t := math.Inf(1)
	if !math.IsInf(d.sched, 1) {
		t = d.sendAt
	}
	if len(d.measures) > 0 && d.measures[0] < t {
		t = d.measures[0]
	}
	return t
}

func (d *device) addMeasure(t float64) {
	i, _ := slices.BinarySearch(d.measures, t)
	d.measures = slices.Insert(d.measures, i, t)
}

// sampleTime is the true time of waveform sample n: the device samples on its own clock.
func (d *device) sampleTime(n int64) float64 {
	return (d.devStartS + float64(n)*d.period.Seconds() - d.offset) / (1 + d.drift)
}

// devTime is the device clock reading at true time t, to the millisecond, in UTC.
func (d *device) devTime(start time.Time, t float64) time.Time {
	s := t*(1+d.drift) + d.offset
	return start.Add(time.Duration(s * 1e9)).Round(time.Millisecond).UTC()
}

// faultAt is the fault in force at t other than "offline", the latest begun; "" if none.
func (d *device) faultAt(t float64) string {
	f, from := "", math.Inf(-1)
	for _, s := range d.faults {
		if s.kind != "offline" && t >= s.from && t < s.to && s.from >= from {
			f, from = s.kind, s.from
		}
	}
	return f
}

func (d *device) offlineAt(t float64) bool {
	for _, s := range d.faults {
		if s.kind == "offline" && t >= s.from && t < s.to {
			return true
		}
	}
	return false
}

// batteryAt is the charge at t: linear drain, changed by the timeline, never below 0.
func (d *device) batteryAt(t float64) float64 {
	level, drain, last := d.spec.Battery, d.spec.Drain, 0.0
	for _, c := range d.batt {
		if c.t > t {
			break
		}
		level = math.Max(0, level-drain*(c.t-last)/3600)
		if c.level != nil {
			level = *c.level
		}
		if c.drain != nil {
			drain = *c.drain
		}
		last = c.t
	}
	return math.Max(0, level-drain*(t-last)/3600)
}

// skipWave drops the samples up to t (offline, battery empty) without computing them, and
// lets the waveform generators forget the beats they missed.
func (d *device) skipWave(t float64, bs *beats, ph *physio) {
	if d.period == 0 {
		return
	}
	for d.sampleTime(d.n) <= t {
		d.n++
	}
	for g := d.genBeat(); g != nil && bs.get(*g, ph).r < t-1; {
		*g++
	}
}

func (d *device) genBeat() *int {
	switch {
	case d.ecg != nil:
		return &d.ecg.nextBeat
	case d.ppg != nil:
		return &d.ppg.nextBeat
	}
	return nil
}
