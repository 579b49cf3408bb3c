package watch

import (
	"context"
	"log/slog"
	"math"
	"sync"
	"time"

	"github.com/iomt/iomt"
	"github.com/iomt/iomt/analytics/ecg"
)

// ECGLeads are the waveform codes the rhythm monitor reads (codes catalog): one lead is
// enough for rhythm, and lead II is what patches and monitors send by default.
var ecgLeads = map[string]bool{"MDC_ECG_ELEC_POTL_II": true, "MDC_ECG_ELEC_POTL_I": true, "MDC_ECG_ELEC_POTL_V5": true}

// gapTolerance is how far a segment may start from where the previous one ended before the
// monitor restarts: a longer gap would splice two stretches of signal into a false beat.
const gapTolerance = 200 * time.Millisecond

// DefaultECGSilence is how long a lead may send nothing before its monitor is flushed: its
// open episodes end at its last sample and its last minutes are summarised. Devices send a
// segment every few seconds; a minute and a half of nothing is a device that stopped (the
// offline alarm rule says so too), not a late packet.
const DefaultECGSilence = 90 * time.Second

// The ECG watcher's minute summaries are stored as observations of these codes (codes
// catalog) under ECGDevice, as NEWS2 scores are under NEWS2Device. They are codes of their
// own, not heart rate 8867-4, so that NEWS2 keeps scoring the devices' heart rate.
const (
	ECGDevice        = "iomt-ecg" // the device ID ECG summaries are stored under
	ECGHeartRateCode = "76282-3"  // heart rate from the minute's R-R intervals, /min
	ECGSDNNCode      = "76643-6"  // SDNN of the minute's normal-to-normal intervals, ms
)

// What makes a minute worth summarising, and how long it may wait for the rhythm analysis.
const (
	// minGood is the good-quality signal (neither lead-off, saturation, noise nor VF) a minute
	// needs to be summarised at all: three quarters of it.
	minGood = 45 * time.Second
	// minRR is the fewest R-R intervals a heart rate is measured from: the monitor's own
	// rate window.
	minRR = 8
	// minNN is the fewest normal-to-normal intervals SDNN is computed from.
	minNN = 20
	// settleWait is how much signal past a minute's end the summary waits for the AF
	// decision to reach that end (it trails by 20 to 40 beats). Beyond it, as when beats
	// stop (lead-off, asystole), the minute goes out without AF burden and SDNN.
	settleWait = 2 * time.Minute
)

// ECGMinute summarises one minute of a lead's ECG analysis, [Start, Start+1m) of signal
// time, aligned to the minute.
type ECGMinute struct {
	Tenant  string    `json:"tenant,omitempty"`
	Patient string    `json:"patient"`
	Device  string    `json:"device"` // the ECG device
	Lead    string    `json:"lead"`   // its waveform code
	Start   time.Time `json:"start"`
	// Good is how much of the minute the monitor read as good-quality signal: at least
	// three quarters, or there is no summary.
	Good time.Duration `json:"good"`
	// Intervals counts the R-R intervals measured: between two beats of good signal, with
	// no VF or poor signal between them.
	Intervals int `json:"intervals"`
	// HeartRate is 60 over the mean R-R interval (beats per minute), 0 with fewer than 8.
	HeartRate float64 `json:"heartRate"`
	// AFKnown says whether the AF decision reached the end of the minute; AFBurden is then
	// the share of the minute's signal in an AF episode, in percent.
	AFKnown  bool    `json:"afKnown"`
	AFBurden float64 `json:"afBurden"`
	// SDNN (ms) of the normal-to-normal intervals (ecg.NormalRR), only for a minute known
	// to be free of AF and with at least 20 of them; 0 otherwise.
	SDNN float64 `json:"sdnn,omitempty"`
}

// Observations returns what of the minute is stored: its heart rate and SDNN, under
// ECGDevice at the start of the minute, so that a minute computed twice (a handover, a
// second lead) is one reading. AF burden is not among them: no LOINC code or MDC term for
// it is known.
func (m ECGMinute) Observations() []iomt.Observation {
	var out []iomt.Observation
	add := func(code string, v float64, unit string) {
		out = append(out, iomt.Observation{Patient: m.Patient, Device: ECGDevice, Code: code,
			Time: m.Start.UTC().Truncate(iomt.TimePrecision), Value: math.Round(v*10) / 10, Unit: unit})
	}
	if m.HeartRate > 0 {
		add(ECGHeartRateCode, m.HeartRate, "/min")
	}
	if m.SDNN > 0 {
		add(ECGSDNNCode, m.SDNN, "ms")
	}
	return out
}

// Rhythm is a rhythm or signal-quality episode of a patient's ECG as the live views hear it.
type Rhythm struct {
	Patient string    `json:"patient"`
	Device  string    `json:"device"`
	Kind    string    `json:"kind"`   // af, bradycardia, tachycardia, pause, asystole, vf, lead-off, saturation, noise
	State   string    `json:"state"`  // started or ended
	Active  bool      `json:"active"` // State == "started", as alarm rules read it
	Onset   time.Time `json:"onset"`
	Offset  time.Time `json:"offset,omitzero"` // when it ended
	// SignalEnded says the episode ended because the lead's signal stopped (the device fell
	// silent, or a gap restarted the monitor), not because the rhythm changed: Offset is the
	// last sample seen.
	SignalEnded bool `json:"signalEnded,omitempty"`
}

// ECG runs the streaming rhythm monitor (analytics/ecg) on each patient's ECG as it arrives
// on the bus and tells when episodes (AF, brady- and tachycardia, pause, asystole, VF, lead-off,
// noise) start and end, and what each minute of good signal measured (ECGMinute).
type ECG struct {
	// Owns, if set, says whether this node still owns the patient's partition; Forget drops
	// the monitors of patients it does not own, so a handed-back patient starts clean.
	Owns func(patient string) bool
	// Minutes, if set, hears each lead's minute summaries in order, once the minute has been
	// analysed: some 30 s after its end (the AF decision lags), or when the lead's monitor
	// restarts after a gap in the signal, or when the lead falls silent. Set it before the
	// first Deliver.
	Minutes func(ECGMinute)
	// Silence is how long a lead may send nothing (wall clock) before FlushSilent flushes its
	// monitor; DefaultECGSilence if zero.
	Silence time.Duration

	notify func(Rhythm)
	log    *slog.Logger
	now    func() time.Time // the wall clock; a field so that tests can move it

	// mu guards the leads and is held until what a Deliver or FlushSilent found has been
	// told, so that a lead's episodes and minutes are told in order even when a silence flush
	// and the lead coming back race.
	mu    sync.Mutex
	leads map[leadKey]*lead
}

type leadKey struct{ patient, device, code string }

type lead struct {
	m      *ecg.Monitor  // nil once flushed for silence: the next segment starts a new one
	seen   time.Time     // wall-clock time of the last segment
	start  time.Time     // time of the monitor's sample 0
	period time.Duration // sample period
	next   time.Time     // where the next segment should start
	tenant string

	// The minute summaries being gathered.
	labelled int64     // end of the seconds the monitor has labelled (samples)
	prevBeat int64     // the beat the next R-R interval starts from; -1: none usable
	afOnset  int64     // onset of the open AF episode; -1: none
	af       []span    // closed AF episodes that may overlap a pending minute
	mins     []*minute // minutes not yet summarised, oldest first
	done     time.Time // end of the last minute summarised: later output for it is ignored
}

type span struct{ on, off int64 }

// minute gathers one minute of a lead.
type minute struct {
	start time.Time
	good  int64     // samples of good signal
	rr    []float64 // R-R intervals ending in the minute, seconds
}

// NewECG returns a watcher; notify hears every episode start and end.
func NewECG(notify func(Rhythm), log *slog.Logger) *ECG {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &ECG{notify: notify, log: log, now: time.Now, leads: map[leadKey]*lead{}}
}

// Deliver is the bus handler.
func (w *ECG) Deliver(_ context.Context, b iomt.Batch) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	var told []Rhythm
	var mins []ECGMinute
	now := w.now()
	for _, wf := range b.Waveforms {
		if !ecgLeads[wf.Code] || wf.Period <= 0 || len(wf.Samples) == 0 {
			continue
		}
		k := leadKey{wf.Patient, wf.Device, wf.Code}
		l := w.leads[k]
		gap := l != nil && (l.m == nil || wf.Period != l.period || absDur(wf.Start.Sub(l.next)) > gapTolerance)
		if l == nil || gap {
			fs := float64(time.Second) / float64(wf.Period)
			m, err := ecg.NewMonitor(ecg.DefaultConfig(fs))
			if err != nil {
				// A rate the detector does not take (outside 125–1000 Hz): nothing to analyse.
				w.log.Debug("ecg monitor", "device", wf.Device, "err", err)
				continue
			}
			old := l
			l = &lead{m: m, start: wf.Start, period: wf.Period, prevBeat: -1, afOnset: -1}
			if gap {
				if old.m != nil {
					t, ms := w.flush(k, old)
					told, mins = append(told, t...), append(mins, ms...)
				}
				l.done = old.done // a minute is summarised once, by the monitor that saw it first
			}
			w.leads[k] = l
		}
		l.tenant, l.seen = b.Tenant, now
		x := make([]float64, len(wf.Samples))
		for i, s := range wf.Samples {
			x[i] = float64(s) * wf.Scale // the catalog's canonical ECG unit is mV, as the monitor wants
		}
		out := l.m.Process(x)
		told = append(told, w.episodes(k, l, out, -1)...)
		mins = append(mins, l.summarise(k, out, false)...)
		l.next = wf.End()
	}
	w.tell(told, mins)
	return nil
}

// tell hands episodes and minute summaries on.
func (w *ECG) tell(told []Rhythm, mins []ECGMinute) {
	for _, r := range told {
		w.notify(r)
	}
	if w.Minutes != nil {
		for _, m := range mins {
			w.Minutes(m)
		}
	}
}

// flush ends a lead's stream: the episodes still open end at its last sample, marked
// SignalEnded, and its pending minutes are summarised.
func (w *ECG) flush(k leadKey, l *lead) ([]Rhythm, []ECGMinute) {
	out := l.m.Flush()
	// Flush closes what is still open at the last sample.
	return w.episodes(k, l, out, l.m.Samples()), l.summarise(k, out, true)
}

// FlushSilent flushes the monitors of the leads that have sent nothing for Silence before
// now, so that what they last showed is told without waiting for them to send again: open
// episodes end (SignalEnded) and the last minutes are summarised. A lead that sends again
// starts a new monitor.
func (w *ECG) FlushSilent(now time.Time) {
	silence := w.Silence
	if silence <= 0 {
		silence = DefaultECGSilence
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	var told []Rhythm
	var mins []ECGMinute
	for k, l := range w.leads {
		if l.m == nil || now.Sub(l.seen) < silence {
			continue
		}
		t, ms := w.flush(k, l)
		told, mins = append(told, t...), append(mins, ms...)
		l.m = nil
		w.log.Info("ecg lead silent: monitor flushed", "patient", k.patient, "device", k.device, "code", k.code, "last", l.next)
	}
	w.tell(told, mins)
}

// Forget drops the monitors of patients this node no longer owns; call it now and then.
func (w *ECG) Forget() {
	if w.Owns == nil {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for k := range w.leads {
		if !w.Owns(k.patient) {
			delete(w.leads, k)
		}
	}
}

// Run calls Forget and FlushSilent every interval until ctx ends.
func (w *ECG) Run(ctx context.Context, interval time.Duration) {
	every(ctx, interval, func(time.Time) {
		w.Forget()
		w.FlushSilent(w.now())
	})
}

// episodes turns what the monitor released into Rhythms; an episode ending at signalEnd (the
// last sample, when the monitor was flushed; −1 otherwise) ended with the signal.
func (w *ECG) episodes(k leadKey, l *lead, out ecg.Output, signalEnd int64) []Rhythm {
	at := l.at
	var rs []Rhythm
	for _, e := range out.Started {
		rs = append(rs, Rhythm{Patient: k.patient, Device: k.device, Kind: e.Kind.String(), State: "started", Active: true, Onset: at(e.Onset)})
	}
	for _, e := range out.Episodes {
		rs = append(rs, Rhythm{Patient: k.patient, Device: k.device, Kind: e.Kind.String(), State: "ended", Onset: at(e.Onset), Offset: at(e.Offset),
			SignalEnded: e.Offset == signalEnd})
	}
	return rs
}

// summarise takes what the monitor released (labelled seconds, beats, AF episodes) into the
// pending minutes and returns the minutes now complete, in order; final says the monitor
// was flushed, so everything it will say has been said.
func (l *lead) summarise(k leadKey, out ecg.Output, final bool) []ECGMinute {
	// Beats come with the label of their second, in order; a second of VF has none.
	bi := 0
	for _, s := range out.Seconds {
		for ; bi < len(out.Beats) && out.Beats[bi].Sample < s.End; bi++ {
			l.beat(out.Beats[bi])
		}
		if s.VF || s.Poor {
			l.prevBeat = -1 // no interval spans signal that could not be read
		} else if mn := l.minute(l.at((s.Start + s.End) / 2)); mn != nil {
			mn.good += s.End - s.Start
		}
		l.labelled = max(l.labelled, s.End)
	}
	for ; bi < len(out.Beats); bi++ {
		l.beat(out.Beats[bi])
	}
	for _, e := range out.Started {
		if e.Kind == ecg.AF {
			l.afOnset = e.Onset
		}
	}
	for _, e := range out.Episodes {
		if e.Kind == ecg.AF {
			l.af = append(l.af, span{e.Onset, e.Offset})
			l.afOnset = -1
		}
	}

	settled := l.m.AFSettled()
	second := l.sample(l.start.Add(time.Second)) // the labels come a second at a time
	wait := l.sample(l.start.Add(settleWait))
	var done []ECGMinute
	for len(l.mins) > 0 {
		mn := l.mins[0]
		end := l.sample(mn.start.Add(time.Minute))
		afKnown := final || settled >= end
		if !final && (l.labelled < end+second || !afKnown && l.labelled < end+wait) {
			break
		}
		if s, ok := l.summary(k, mn, afKnown); ok {
			done = append(done, s)
		}
		l.mins = l.mins[1:]
		l.done = mn.start.Add(time.Minute)
	}
	// Forget the AF episodes that ended before every minute still pending.
	from := l.labelled
	if len(l.mins) > 0 {
		from = l.sample(l.mins[0].start)
	}
	keep := l.af[:0]
	for _, a := range l.af {
		if a.off > from {
			keep = append(keep, a)
		}
	}
	l.af = keep
	return done
}

// beat takes the next beat released by the monitor.
func (l *lead) beat(b ecg.Beat) {
	if b.Poor {
		l.prevBeat = -1
		return
	}
	if l.prevBeat >= 0 {
		if mn := l.minute(l.at(b.Sample)); mn != nil {
			mn.rr = append(mn.rr, float64(b.Sample-l.prevBeat)*l.period.Seconds())
		}
	}
	l.prevBeat = b.Sample
}

// minute returns the pending minute holding t, nil if that minute was summarised already.
func (l *lead) minute(t time.Time) *minute {
	start := t.Truncate(time.Minute)
	if start.Before(l.done) {
		return nil
	}
	i := len(l.mins)
	for i > 0 && l.mins[i-1].start.After(start) {
		i--
	}
	if i > 0 && l.mins[i-1].start.Equal(start) {
		return l.mins[i-1]
	}
	mn := &minute{start: start}
	l.mins = append(l.mins, nil)
	copy(l.mins[i+1:], l.mins[i:])
	l.mins[i] = mn
	return mn
}

// summary measures a minute; ok is false when too little of it was good signal.
func (l *lead) summary(k leadKey, mn *minute, afKnown bool) (ECGMinute, bool) {
	good := time.Duration(mn.good) * l.period
	if good < minGood {
		return ECGMinute{}, false
	}
	s := ECGMinute{Tenant: l.tenant, Patient: k.patient, Device: k.device, Lead: k.code, Start: mn.start,
		Good: good, Intervals: len(mn.rr), AFKnown: afKnown}
	if len(mn.rr) >= minRR {
		var sum float64
		for _, v := range mn.rr {
			sum += v
		}
		s.HeartRate = 60 * float64(len(mn.rr)) / sum
	}
	if !afKnown {
		return s, true
	}
	// AF burden over the part of the minute the monitor saw.
	lo := max(l.sample(mn.start), 0)
	hi := min(l.sample(mn.start.Add(time.Minute)), l.labelled)
	if hi <= lo {
		return s, true
	}
	var in int64
	spans := l.af
	if l.afOnset >= 0 {
		spans = append(spans[:len(spans):len(spans)], span{l.afOnset, hi})
	}
	for _, a := range spans {
		in += max(0, min(a.off, hi)-max(a.on, lo))
	}
	s.AFBurden = 100 * float64(in) / float64(hi-lo)
	if in == 0 {
		if nn := ecg.NormalRR(mn.rr); len(nn) >= minNN {
			s.SDNN = 1000 * ecg.SDNN(nn)
		}
	}
	return s, true
}

// at is the time of a sample of the lead's monitor; sample is the first sample at or after t.
func (l *lead) at(sample int64) time.Time { return l.start.Add(time.Duration(sample) * l.period) }

func (l *lead) sample(t time.Time) int64 {
	d := t.Sub(l.start)
	n := int64(d / l.period)
	if d > 0 && d%l.period != 0 {
		n++
	}
	return n
}

func absDur(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}
