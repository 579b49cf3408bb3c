package sensing

import (
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"github.com/iomt/iomt/codes"
)

// Patient is one simulated patient and the devices they wear. It is not safe for concurrent
// use; a simulator drives many patients from a few goroutines, each owning its patients.
type Patient struct {
	sc    Scenario
	start time.Time
	now   float64 // seconds since start reached by Advance
	tick  float64 // next physiology tick
	ph    *physio
	bs    *beats
	devs  []*device
}

// Stream identifiers for the seeded random sources: each model draws from its own, so that
// adding a device does not change the physiology of a patient with the same seed.
const (
	streamPhysio = iota + 1
	streamBeats
	streamDevice // + device index
)

// NewPatient starts the scenario at start. The same scenario, seed and sequence of calls give
// the same output.
func NewPatient(sc Scenario, seed uint64, start time.Time) *Patient {
	sc = sc.Clone()
	// A Scenario built in code rather than loaded may leave quantities out: take the defaults.
	if sc.Baseline == nil {
		sc.Baseline = map[string]float64{}
	}
	for _, q := range Quantities() {
		if _, ok := sc.Baseline[q.Name]; !ok {
			sc.Baseline[q.Name] = q.Default
		}
	}
	if sc.InsulinSensitivity <= 0 {
		sc.InsulinSensitivity = 1
	}
	src := func(stream uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15*stream)) }
	p := &Patient{sc: sc, start: start}
	p.ph = newPhysio(&p.sc, src(streamPhysio))
	for _, d := range sc.Devices {
		if d.Kind == CGM || d.Kind == Glucometer {
			p.ph.gl = newGlucose(&p.sc)
			break
		}
	}
	p.bs = newBeats(src(streamBeats), p.ph)
	p.tick = 1
	for i, spec := range sc.Devices {
		d := newDevice(spec, src(streamDevice+uint64(i)), start)
		if d.ecg != nil {
			// Start the baseline restoration at its running mean (about 0.065 mV·s of wave area
			// per beat), so the first seconds do not drift.
			d.ecg.w = 0.065 * p.ph.cur[qHR] / 60
		}
		p.devs = append(p.devs, d)
	}
	for _, ev := range sc.Timeline {
		at := ev.At.Seconds()
		if ev.Device != "" {
			d := p.device(ev.Device)
			if ev.Fault != "" {
				to := math.Inf(1)
				if ev.For > 0 {
					to = at + ev.For.Seconds()
				}
				d.faults = append(d.faults, faultSpan{from: at, to: to, kind: ev.Fault})
			}
			if ev.Battery != nil || ev.Drain != nil {
				d.batt = append(d.batt, battChange{t: at, level: ev.Battery, drain: ev.Drain})
			}
		}
		if ev.Measure != "" {
			d := p.device(ev.Measure)
			d.addMeasure(at + measureDelay(ev.Measure))
		}
		if ev.Fall {
			d := p.device(ActivityTracker)
			d.falls = append(d.falls, at)
		}
	}
	return p
}

// measureDelay is how long an on-demand measurement takes (a cuff inflates and deflates).
func measureDelay(kind string) float64 {
	if kind == BPMonitor {
		return 40
	}
	return 5
}

func (p *Patient) device(kind string) *device {
	for _, d := range p.devs {
		if d.spec.Kind == kind {
			return d
		}
	}
	return nil
}

// Start returns the simulated time the patient started at.
func (p *Patient) Start() time.Time { return p.start }

// Devices returns the kinds of the devices this patient wears, in scenario order.
func (p *Patient) Devices() []string {
	out := make([]string, len(p.devs))
	for i, d := range p.devs {
		out[i] = d.spec.Kind
	}
	return out
}

// Online reports whether the device is connected at the given time: false while a scripted
// disconnection lasts or once its battery is empty, and for a device the patient lacks.
func (p *Patient) Online(device string, at time.Time) bool {
	d := p.device(device)
	if d == nil {
		return false
	}
	t := at.Sub(p.start).Seconds()
	return !d.offlineAt(t) && d.batteryAt(t) > 0
}

// Measure asks a device for an on-demand measurement started at at (or now, if at is
// already past); the result is emitted when it completes, 40 s later for a cuff.
func (p *Patient) Measure(device string, at time.Time) error {
	if !onDemand(device) {
		return fmt.Errorf("sensing: measure: a %s takes no on-demand measurement", device)
	}
	d := p.device(device)
	if d == nil {
		return fmt.Errorf("sensing: measure: the patient wears no %s", device)
	}
	t := math.Max(at.Sub(p.start).Seconds(), p.now)
	d.addMeasure(t + measureDelay(device))
	return nil
}

// RequestNIBP starts a non-invasive blood pressure measurement, as a nurse or an alarm rule
// would; it is Measure(BPMonitor, at).
func (p *Patient) RequestNIBP(at time.Time) error { return p.Measure(BPMonitor, at) }

// Advance moves the patient to the simulated time to and returns what the devices sent on the
// way, in time order. Calling it often or rarely gives the same emissions.
func (p *Patient) Advance(to time.Time) []Emission {
	return p.AdvanceAppend(nil, to)
}

// AdvanceAppend is Advance appending to dst, so that a simulator can reuse a slice.
func (p *Patient) AdvanceAppend(dst []Emission, to time.Time) []Emission {
	T := to.Sub(p.start).Seconds()
	for {
		var nd *device
		nt := math.Inf(1)
		for _, d := range p.devs {
			if t := d.next(); t < nt {
				nd, nt = d, t
			}
		}
		// Physiology ticks on a fixed 1 s grid, before any message at the same instant, so
		// results do not depend on how the caller slices time.
		if p.tick <= nt && p.tick <= T {
			p.ph.tick(p.tick)
			p.tick++
			continue
		}
		if nd == nil || nt > T {
			break
		}
		dst = p.emit(dst, nd, nt)
	}
	if T > p.now {
		p.now = T
	}
	return dst
}

func (p *Patient) emit(dst []Emission, d *device, at float64) []Emission {
	measured := len(d.measures) > 0 && d.measures[0] == at && (math.IsInf(d.sched, 1) || at != d.sendAt)
	if measured {
		d.measures = d.measures[1:]
	} else {
		d.sched += d.spec.Interval.Seconds()
		d.sendAt = d.sched + d.jitter()
	}
	for p.bs.last().r < at {
		p.bs.next(p.ph)
	}
	defer p.trimBeats()
	level := d.batteryAt(at)
	if level <= 0 {
		d.skipWave(at, p.bs, p.ph)
		d.lastMsg = at
		return dst
	}
	offline := d.offlineAt(at)
	if offline && !d.spec.StoreForward {
		d.skipWave(at, p.bs, p.ph)
		d.lastMsg = at
		return dst
	}
	e := p.measure(d, at, level)
	if offline {
		const maxBacklog = 3600 // messages a device holds, about an hour of 1 s messages
		if len(d.backlog) >= maxBacklog {
			d.backlog = d.backlog[1:]
		}
		d.backlog = append(d.backlog, e)
		return dst
	}
	for _, b := range d.backlog {
		b.Time = e.Time
		dst = append(dst, b)
	}
	d.backlog = d.backlog[:0]
	return append(dst, e)
}

func (p *Patient) trimBeats() {
	keep := p.bs.base + len(p.bs.list)
	for _, d := range p.devs {
		if g := d.genBeat(); g != nil && *g < keep {
			keep = *g
		}
	}
	p.bs.trim(keep - 16)
}

// measure builds the message a device sends at true time at.
func (p *Patient) measure(d *device, at, level float64) Emission {
	d.seq++
	e := Emission{Device: d.spec.Kind, Seq: d.seq, Time: p.start.Add(time.Duration(at * 1e9)).UTC()}
	ph := p.ph
	now := d.devTime(p.start, at)
	raw := d.faultAt(at) // "lead-off-rail" reports as lead-off but draws the rail
	fault := raw
	if fault != "" {
		if fault == "lead-off-rail" {
			fault = FaultLeadOff
		}
		e.Faults = append(e.Faults, fault)
	}
	if level < 10 {
		e.Faults = append(e.Faults, FaultLowBattery)
	}
	// Battery goes out once a minute, or with every message of a slower device.
	if at-d.lastBatt >= 60 {
		b := math.Round(level)
		e.Battery = &b
		d.lastBatt = at
	}
	add := func(code string, v float64) {
		e.Samples = append(e.Samples, Sample{Code: code, Time: now, Value: v, Unit: unitOf(code)})
	}
	switch d.spec.Kind {
	case ECGPatch:
		if d.ecg != nil {
			e.Chunks = append(e.Chunks, p.wave(d, at, CodeECGII, raw))
		}
		if fault == "" {
			if hr := p.bs.rateAt(at, 0); hr > 0 {
				add(CodeHeartRate, math.Round(hr))
			}
			add(CodeRespRate, math.Round(ph.cur[qRR]+0.5*d.r.NormFloat64()))
		}
	case PulseOximeter:
		if d.ppg != nil {
			e.Chunks = append(e.Chunks, p.wave(d, at, CodePleth, fault))
		}
		if fault == "" {
			add(CodeSpO2, math.Round(clamp(ph.cur[qSpO2]+0.4*d.r.NormFloat64(), 50, 100)))
			if pr := p.bs.rateAt(at, 0.5); pr > 0 {
				add(CodePulseRate, math.Round(pr))
			}
		}
		// It says when the probe is off, and once more when it is back on, as a Bluetooth
		// PLX oximeter's status field does; a status of 0 with every message would only add
		// load.
		if off := fault == FaultProbeOff; off || d.probeOff {
			v := 0.0
			if off {
				v = codes.OxSensorOff
			}
			add(CodeOximeterStatus, v)
			d.probeOff = off
		}
	case BPMonitor:
		sbp := math.Round(ph.cur[qSBP] + 4*d.r.NormFloat64())
		dbp := math.Round(math.Min(ph.cur[qDBP]+3*d.r.NormFloat64(), sbp-10))
		add(CodeSystolic, sbp)
		add(CodeDiastolic, dbp)
		add(CodeMeanBP, math.Round(dbp+(sbp-dbp)/3))
		if hr := p.bs.rateAt(at, 0.5); hr > 0 {
			add(CodeHeartRate, math.Round(hr))
		}
	case Thermometer:
		add(CodeBodyTemp, math.Round((ph.cur[qTemp]+0.05*d.r.NormFloat64())*10)/10)
	case CGM:
		// Sensor error: correlated between 5-minute readings (drift, biofouling), SD ≈ 6 mg/dL.
		d.cgmErr = 0.7*d.cgmErr + 4.3*d.r.NormFloat64()
		add(CodeCGM, math.Round(clamp(ph.gl.Gi+d.cgmErr, 40, 400)))
	case Glucometer:
		add(CodeBloodGlucose, math.Round(clamp(ph.gl.G*(1+0.04*d.r.NormFloat64()), 20, 600)))
	case Scale:
		add(CodeWeight, math.Round((ph.cur[qWeight]+0.1*d.r.NormFloat64())*10)/10)
	case ActivityTracker:
		steps := ph.cur[qSteps] * (at - d.lastMsg) / 60 * (1 + 0.08*d.r.NormFloat64())
		add(CodeSteps, math.Max(0, math.Round(steps)))
		for len(d.falls) > 0 && d.falls[0] <= at {
			e.Samples = append(e.Samples, Sample{Code: CodeFall, Time: d.devTime(p.start, d.falls[0]), Value: 1, Unit: unitOf(CodeFall)})
			d.falls = d.falls[1:]
		}
	}
	d.lastMsg = at
	return e
}

// wave renders the device's waveform samples due by true time at.
func (p *Patient) wave(d *device, at float64, code, fault string) Chunk {
	n0 := d.n
	c := Chunk{Code: code, Start: d.devStart.Add(time.Duration(n0) * d.period).UTC(), Period: d.period, Unit: unitOf(code)}
	count := 0
	for d.sampleTime(d.n+int64(count)) <= at {
		count++
	}
	c.Values = make([]float64, count)
	d.n += int64(count)
	if fault != "" {
		// Lead off or probe off: a flat line, at the rail for a floating input.
		if fault == "lead-off-rail" {
			for i := range c.Values {
				c.Values[i] = ECGRailMV
			}
		}
		d.skipWave(at, p.bs, p.ph)
		return c
	}
	for i := range c.Values {
		t := d.sampleTime(n0 + int64(i))
		var v float64
		if d.ecg != nil {
			v = d.ecg.sample(t, p.ph, p.bs)
		} else {
			v = d.ppg.sample(t, p.ph, p.bs)
		}
		c.Values[i] = math.Round(v*1000) / 1000
	}
	return c
}

func unitOf(code string) string {
	switch code {
	case CodeHeartRate, CodePulseRate, CodeRespRate:
		return "/min"
	case CodeSpO2, CodeBattery:
		return "%"
	case CodeBodyTemp:
		return "Cel"
	case CodeSystolic, CodeDiastolic, CodeMeanBP:
		return "mm[Hg]"
	case CodeCGM, CodeBloodGlucose:
		return "mg/dL"
	case CodeWeight:
		return "kg"
	case CodeSteps:
		return "{steps}"
	case CodeECGII:
		return "mV"
	case CodePleth, CodeFall, CodeOximeterStatus:
		return "1"
	}
	return ""
}
